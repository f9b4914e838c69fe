"""Checkers for the applications exercises (chapter 6): the confusion matrix of a classifier and the
few-shot prompt of the in-context-learning model.

Used in chapter 6, Applications.
"""
from __future__ import annotations

import torch

from ..prompts import few_shot_prompt
from ._core import Case, Verdict, call_learner, case_generator, run_cases, run_probes, tensor_problem


# ------------------------------------------------------------------------------ confusion matrix
def confusion_matrix(labels, predictions, num_classes):
    """Reference: (C, C) int64 counts, entry [i, j] = number of examples of true class i predicted as j."""
    counts = torch.zeros(num_classes, num_classes, dtype=torch.long)
    counts.index_put_((labels.long(), predictions.long()), torch.ones(len(labels), dtype=torch.long),
                      accumulate=True)
    return counts


def _confusion_cases() -> list[Case]:
    g = case_generator(6)
    labels = torch.randint(0, 3, (40,), generator=g)
    noisy = torch.where(torch.rand(40, generator=g) < 0.7, labels, torch.randint(0, 3, (40,), generator=g))
    only_zero_one = torch.tensor([0, 1, 1, 0, 1, 1, 1, 0])
    return [
        Case("2 classes, 6 examples", (torch.tensor([1, 0, 1, 1, 0, 0]), torch.tensor([1, 1, 0, 1, 1, 0]), 2)),
        Case("3 classes, 40 examples", (labels, noisy, 3)),
        Case("4 classes, but classes 2 and 3 never occur", (only_zero_one, only_zero_one.flip(0), 4), hidden=True),
        Case("2 classes, every prediction wrong", (torch.tensor([0, 0, 0, 1]), torch.tensor([1, 1, 1, 0]), 2),
             hidden=True),
    ]


_CONFUSION_MISTAKES = [
    ("rows are the true classes and columns the predictions (entry [i, j] counts true i predicted as j); "
     "yours is transposed.", lambda y, p, c: confusion_matrix(y, p, c).T),
    ("return counts, not fractions: do not divide each row by its total.",
     lambda y, p, c: confusion_matrix(y, p, c).double() / confusion_matrix(y, p, c).sum(1, keepdim=True).clamp(min=1)),
    ("return counts, not fractions: do not divide by the number of examples.",
     lambda y, p, c: confusion_matrix(y, p, c).double() / len(y)),
]


def _confusion_problem(got, expected):
    if isinstance(got, torch.Tensor) and got.shape != expected.shape and got.dim() == 2:
        return (f"the matrix has shape {tuple(got.shape)} but expected (num_classes, num_classes) = "
                f"{tuple(expected.shape)}: size it by num_classes, not by the largest label that occurs")
    return tensor_problem(got, expected, "the matrix", atol=1e-6, rtol=1e-6)


def check_confusion_matrix(fn, cases: str = "all") -> Verdict:
    """Check fn(labels, predictions, num_classes) -> (num_classes, num_classes) tensor of counts,
    entry [i, j] = number of examples whose true class is i and predicted class is j.

    cases: "all", or the "visible" or "hidden" ones (classes that never occur, every prediction wrong) of
    a graded assignment."""
    return run_cases("check_confusion_matrix", fn, _confusion_cases(), confusion_matrix, _confusion_problem,
                     _CONFUSION_MISTAKES,
                     fallback_hint="for each example add 1 at [label, prediction] of a zero (C, C) tensor.",
                     which=cases)


# ------------------------------------------------------------------------------- few-shot prompt
def _prompt_cases() -> list[Case]:
    return [
        Case("3 examples", ([("c", "q"), ("a", "w"), ("d", "e")], "a")),
        Case("1 example", ([("k", "b")], "k")),
        Case("no example (zero-shot)", ([], "z"), hidden=True),
        Case("5 examples, the query not among them", (
            [("g", "x"), ("b", "m"), ("g", "x"), ("t", "m"), ("b", "m")], "h"), hidden=True),
    ]


def _first_difference(got: str, expected: str) -> str:
    """Where two strings first differ, shown with repr so that spaces are visible."""
    i = next((k for k, (a, b) in enumerate(zip(got, expected)) if a != b), min(len(got), len(expected)))
    return (f"your prompt is {got!r} but the expected one is {expected!r}; they first differ at "
            f"character {i} ({got[i:i + 6]!r} instead of {expected[i:i + 6]!r})")


def _prompt_hint(got: str, expected: str, examples, query) -> str | None:
    """A hint for the usual mistakes, recognised by comparing got with variants of the expected prompt."""
    if got.startswith(expected) and len(got) == len(expected) + 1 and got[-1] != " ":
        return "the prompt ends with the query's '>': the answer after it is what the model must write."
    if got in (expected + " ", expected[:-1]):
        return "end the prompt right after the query's '>', with nothing after it."
    if not examples and got.strip() == expected:
        return "with no examples the prompt is only the query and its '>': no space before it."
    if examples and got.startswith(f"{query}>"):
        return "the examples come first, in their order, and the query last."
    squeeze = lambda text: "".join(ch for ch in text if ch not in " ,;\n\t")  # noqa: E731
    if squeeze(got) == squeeze(expected):
        return "separate the examples by exactly one space, with no space around '>' and no other punctuation."
    if squeeze(got.replace("->", ">").replace(":", ">").replace("=", ">")) == squeeze(expected):
        return "write each example as x>y, with '>' between input and output."
    return None


def check_few_shot_prompt(fn, cases: str = "all") -> Verdict:
    """Check fn(examples, query) -> str, the prompt of section 6.5: "x1>y1 x2>y2 query>".

    cases: "all", or the "visible" or "hidden" ones (zero-shot, five examples) of a graded assignment."""
    def probe(case):
        expected = few_shot_prompt(*case.args)
        ok, got = call_learner(fn, case)
        if not ok:
            return got, None
        if not isinstance(got, str):
            return f"your function returned a {type(got).__name__}, expected a str", None
        if got != expected:
            return _first_difference(got, expected), _prompt_hint(got, expected, *case.args)
        return None

    return run_probes("check_few_shot_prompt", _prompt_cases(), probe, cases)
