"""Pretrain the shipped model ``shakespeare-gpt``: a GPT on Shakespeare (byte-level BPE, 2,048 ids).

    python -m llmbook.experiments.shakespeare_gpt                              # about an hour on one CPU core
    python -m llmbook.experiments.shakespeare_gpt --scale gpu --device cuda    # a bigger one on a GPU

The recipe (settings, scoring, card) is in ``llmbook.experiments.real_text``; the result is
``llmbook.pretrained.load("shakespeare-gpt")``.

Used in the front matter, on the page Data and models.
"""
from .real_text import main

if __name__ == "__main__":
    main("shakespeare-gpt")
