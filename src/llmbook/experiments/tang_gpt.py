"""Pretrain the shipped model ``tang-gpt``: a GPT on the training Tang poems, one token per character.

    python -m llmbook.experiments.tang_gpt                              # about an hour on one CPU core
    python -m llmbook.experiments.tang_gpt --scale gpu --device cuda    # a bigger one on a GPU

The recipe (settings, scoring, card) is in ``llmbook.experiments.real_text``; the result is
``llmbook.pretrained.load("tang-gpt")``.

Used in the front matter, on the page Data and models.
"""
from .real_text import main

if __name__ == "__main__":
    main("tang-gpt")
