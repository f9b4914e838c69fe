"""Pretrain the shipped model ``shakespeare-bert``: a BERT on Shakespeare, masked-token prediction only.

    python -m llmbook.experiments.shakespeare_bert                              # about an hour on one CPU core
    python -m llmbook.experiments.shakespeare_bert --scale gpu --device cuda    # a bigger one on a GPU

The recipe (settings, scoring, card) is in ``llmbook.experiments.real_text``; the result is
``llmbook.pretrained.load("shakespeare-bert")``.

Used in the front matter, on the page Data and models.
"""
from .real_text import main

if __name__ == "__main__":
    main("shakespeare-bert")
