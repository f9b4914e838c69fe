"""Character n-gram baselines on Shakespeare: interpolated Kneser–Ney models of orders 1 to 8 fitted to
the training works, scored on the validation and test works in bits per character, with the share of
held-out n-grams never seen in training and a sample from each order.

    python -m llmbook.experiments.ngram_baseline     # about two minutes on one CPU core

The shipped ``shakespeare-gpt`` must beat the best of these orders on the same test text.

Used in chapter 1, Background: from n-grams to large language models, and in the front matter, on
the page Pretrained models.
"""
from __future__ import annotations

from .. import corpora
from ..ngrams import KneserNey, unseen_share
from . import run_and_save

FULL = dict(max_order=8, sample_chars=200, prompt="HAMLET.\n")


def run(max_order: int, sample_chars: int, prompt: str) -> dict:
    train = corpora.shakespeare("train")
    model = KneserNey(max_order).fit(train)
    orders = list(range(1, max_order + 1))
    held_out = {split: corpora.shakespeare(split) for split in ("validation", "test")}
    return {
        "settings": dict(max_order=max_order, sample_chars=sample_chars, prompt=prompt,
                         discounts={n: c.discount for n, c in enumerate(model.raw, start=1)}),
        "bits_per_char": {split: {n: model.bits_per_char(text, n) for n in orders}
                          for split, text in held_out.items()},
        "unseen_share": {n: unseen_share(train, held_out["test"], n) for n in orders},
        "samples": {n: model.sample(sample_chars, prompt, seed=0, order=n) for n in orders},
    }


if __name__ == "__main__":
    run_and_save("ngram_baseline", run, **FULL)
