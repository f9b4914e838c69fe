"""Every generator of llmbook.data returns the same data for the same seed, and other data for another."""
import pytest
import torch

from llmbook.data import (
    addition_task,
    chinese_corpus,
    copy_task,
    date_task,
    nsp_pairs,
    reverse_task,
    sentiment_task,
    toy_grammar_corpus,
)

GENERATORS = {
    "toy_grammar": lambda seed: toy_grammar_corpus(50, seed=seed),
    "chinese": lambda seed: chinese_corpus(50, seed=seed),
    "copy": lambda seed: copy_task(8, 10, 20, seed=seed),
    "reverse": lambda seed: reverse_task(8, 10, 20, seed=seed),
    "date": lambda seed: date_task(20, seed=seed),
    "addition": lambda seed: addition_task(20, 3, seed=seed),
    "sentiment": lambda seed: sentiment_task(20, seed=seed),
    "nsp": lambda seed: nsp_pairs([["a", "b", "c"], ["d", "e", "f"]], 30, seed=seed),
}


def _same(a, b) -> bool:
    if isinstance(a, tuple) and isinstance(a[0], torch.Tensor):
        return all(torch.equal(x, y) for x, y in zip(a, b))
    return a == b


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_generators_are_deterministic_and_depend_on_the_seed(name):
    make = GENERATORS[name]
    assert _same(make(0), make(0))
    assert not _same(make(0), make(1))
