"""Checkers of chapter 6 (applications): each accepts a correct answer and rejects the typical wrong
ones with a message that names the mistake."""
import pytest
import torch
from checker_verdicts import assert_fails, assert_passes

from llmbook import checks
from llmbook.checks.applications import confusion_matrix
from llmbook.prompts import few_shot_prompt


# ------------------------------------------------------------------------------ confusion matrix
def bincount_confusion(labels, predictions, num_classes):
    flat = labels * num_classes + predictions
    return torch.bincount(flat, minlength=num_classes * num_classes).view(num_classes, num_classes)


def loop_confusion(labels, predictions, num_classes):
    counts = [[0] * num_classes for _ in range(num_classes)]
    for y, p in zip(labels.tolist(), predictions.tolist()):
        counts[y][p] += 1
    return torch.tensor(counts)


def test_reference_confusion_matrix_counts_true_rows_predicted_columns():
    C = confusion_matrix(torch.tensor([0, 0, 1, 1, 1]), torch.tensor([0, 1, 1, 1, 0]), 3)
    assert C.tolist() == [[1, 1, 0], [1, 2, 0], [0, 0, 0]]


@pytest.mark.parametrize("fn", [confusion_matrix, bincount_confusion, loop_confusion])
def test_confusion_matrix_checker_accepts_correct_answers(capsys, fn):
    assert_passes(capsys, checks.check_confusion_matrix, fn)


@pytest.mark.parametrize("wrong, fragments", [
    (lambda y, p, c: bincount_confusion(y, p, c).T, ["case 1", "transposed"]),
    (lambda y, p, c: bincount_confusion(y, p, c) / bincount_confusion(y, p, c).sum(1, keepdim=True),
     ["counts, not fractions", "row"]),
    (lambda y, p, c: bincount_confusion(y, p, c) / len(y), ["counts, not fractions", "number of examples"]),
    (lambda y, p, c: bincount_confusion(y, p, int(max(y.max(), p.max())) + 1),
     ["case 3", "size it by num_classes"]),
    (lambda y, p, c: bincount_confusion(p, y, c) * 0, ["differs from the reference"]),
    (lambda y, p, c: 1 / 0, ["raised ZeroDivisionError"]),
    (lambda y, p, c: bincount_confusion(y, p, c).tolist(), ["is a list, expected a torch.Tensor"]),
])
def test_confusion_matrix_checker_names_the_mistake(capsys, wrong, fragments):
    assert_fails(capsys, checks.check_confusion_matrix, wrong, *fragments)


# ------------------------------------------------------------------------------- few-shot prompt
def test_reference_prompt_format():
    assert few_shot_prompt([("c", "q"), ("a", "w")], "c") == "c>q a>w c>"
    assert few_shot_prompt([], "z") == "z>"


def joined_prompt(examples, query):
    return " ".join([f"{x}>{y}" for x, y in examples] + [f"{query}>"])


def test_few_shot_prompt_checker_accepts_correct_answers(capsys):
    assert_passes(capsys, checks.check_few_shot_prompt, few_shot_prompt)
    assert_passes(capsys, checks.check_few_shot_prompt, joined_prompt)


@pytest.mark.parametrize("wrong, fragments", [
    (lambda ex, q: few_shot_prompt(ex, q) + " ", ["case 1", "nothing after it"]),
    (lambda ex, q: few_shot_prompt(ex, q)[:-1], ["case 1", "right after the query's '>'"]),
    (lambda ex, q: few_shot_prompt(ex, q) + dict(ex).get(q, "?"), ["case 1", "what the model must write"]),
    (lambda ex, q: " ".join(f"{x}>{y}" for x, y in ex) + f" {q}>", ["case 3", "no space before it"]),
    (lambda ex, q: f"{q}> " + " ".join(f"{x}>{y}" for x, y in ex), ["case 1", "the query last"]),
    (lambda ex, q: ", ".join([f"{x}>{y}" for x, y in ex] + [f"{q}>"]), ["exactly one space"]),
    (lambda ex, q: " ".join([f"{x} > {y}" for x, y in ex] + [f"{q} >"]), ["no space around '>'"]),
    (lambda ex, q: " ".join([f"{x}->{y}" for x, y in ex] + [f"{q}->"]), ["write each example as x>y"]),
    (lambda ex, q: None, ["returned a NoneType, expected a str"]),
])
def test_few_shot_prompt_checker_names_the_mistake(capsys, wrong, fragments):
    line = assert_fails(capsys, checks.check_few_shot_prompt, wrong, *fragments)
    assert "Hint" in line or "returned" in line
