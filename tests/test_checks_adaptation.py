"""Checkers of chapter 10: each accepts a correct answer and rejects typical wrong ones with a hint that
names the mistake; an exception in the learner's code is reported, not raised."""
import pytest
import torch
import torch.nn.functional as F
from checker_verdicts import assert_fails, assert_passes

from llmbook import checks
from llmbook.alignment import dpo_loss
from llmbook.lora import LoRALinear


# ------------------------------------------------------------------------------------ LoRA forward
def lora_forward(x, weight, bias, A, B, alpha):
    return x @ weight.T + bias + (alpha / A.shape[0]) * (x @ A.T @ B.T)


def test_lora_checker_accepts_the_formula_and_the_package_layer(capsys):
    assert_passes(capsys, checks.check_lora_forward, lora_forward)

    def with_module(x, weight, bias, A, B, alpha):
        base = torch.nn.Linear(weight.shape[1], weight.shape[0])
        layer = LoRALinear(base, A.shape[0], alpha)
        with torch.no_grad():
            base.weight.copy_(weight), base.bias.copy_(bias), layer.A.copy_(A), layer.B.copy_(B)
            return layer(x)

    assert_passes(capsys, checks.check_lora_forward, with_module)


@pytest.mark.parametrize("wrong, fragment", [
    (lambda x, w, b, A, B, alpha: x @ w.T + b + alpha * (x @ A.T @ B.T), "not by alpha"),
    (lambda x, w, b, A, B, alpha: x @ w.T + b + x @ A.T @ B.T, "left the scale out"),
    (lambda x, w, b, A, B, alpha: x @ w.T + b + A.shape[0] / alpha * (x @ A.T @ B.T), "r / alpha"),
    (lambda x, w, b, A, B, alpha: (alpha / A.shape[0]) * (x @ A.T @ B.T), "do not replace it"),
    (lambda x, w, b, A, B, alpha: x @ w.T + (alpha / A.shape[0]) * (x @ A.T @ B.T), "bias"),
])
def test_lora_checker_names_the_mistake(capsys, wrong, fragment):
    assert_fails(capsys, checks.check_lora_forward, wrong, "case 1", fragment)


def test_lora_checker_reports_an_exception(capsys):
    assert_fails(capsys, checks.check_lora_forward, lambda x, w, b, A, B, alpha: x @ A @ B,
                 "raised RuntimeError")


# ------------------------------------------------------------------------------ prompt-masked labels
def test_prompt_mask_checker_accepts_a_list_and_a_tensor(capsys):
    assert_passes(capsys, checks.check_prompt_mask, lambda p, r: [-100] * len(p) + list(r))
    assert_passes(capsys, checks.check_prompt_mask,
                  lambda p, r: torch.cat([torch.full((len(p),), -100), torch.tensor(r)]))


@pytest.mark.parametrize("wrong, fragment", [
    (lambda p, r: [0] * len(p) + list(r), "not 0"),
    (lambda p, r: list(p) + [-100] * len(r), "masked the response"),
    (lambda p, r: [-100] * (len(p) - 1) + list(p[-1:]) + list(r), "one position too few"),
    (lambda p, r: [-100] * (len(p) + 1) + list(r[1:]), "one position too many"),
    (lambda p, r: list(p) + list(r), "labels = [-100] * len(prompt_ids)"),
])
def test_prompt_mask_checker_names_the_mistake(capsys, wrong, fragment):
    assert_fails(capsys, checks.check_prompt_mask, wrong, "case 1", fragment)


def test_prompt_mask_checker_refuses_a_string(capsys):
    assert_fails(capsys, checks.check_prompt_mask, lambda p, r: "labels", "the labels are a str")


# ------------------------------------------------------------------------------------------ DPO loss
def test_dpo_checker_accepts_the_formula_and_the_package_loss(capsys):
    assert_passes(capsys, checks.check_dpo_loss,
                  lambda pc, pr, rc, rr, beta: -F.logsigmoid(beta * ((pc - rc) - (pr - rr))).mean())
    assert_passes(capsys, checks.check_dpo_loss, lambda *a: dpo_loss(*a)[0])
    assert_passes(capsys, checks.check_dpo_loss,  # log(1 + exp(-z)) is the same number
                  lambda pc, pr, rc, rr, beta: torch.log1p(torch.exp(-beta * ((pc - rc) - (pr - rr)))).mean().item())


@pytest.mark.parametrize("wrong, fragment", [
    (lambda pc, pr, rc, rr, beta: -F.logsigmoid(beta * ((pr - rr) - (pc - rc))).mean(), "sign is reversed"),
    (lambda pc, pr, rc, rr, beta: -F.logsigmoid(beta * (pc - pr)).mean(), "reference model is missing"),
    (lambda pc, pr, rc, rr, beta: -beta * F.logsigmoid((pc - rc) - (pr - rr)).mean(), "inside the log-sigmoid"),
    (lambda pc, pr, rc, rr, beta: -torch.sigmoid(beta * ((pc - rc) - (pr - rr))).mean(), "not -sigmoid"),
    (lambda pc, pr, rc, rr, beta: -F.logsigmoid(beta * ((pc - rc) - (pr - rr))).sum(), "do not sum"),
    (lambda pc, pr, rc, rr, beta: -F.logsigmoid(beta * ((pc - rc) - (pr - rr))), "single number"),
])
def test_dpo_checker_names_the_mistake(capsys, wrong, fragment):
    assert_fails(capsys, checks.check_dpo_loss, wrong, "case 1", fragment)


def test_dpo_checker_hidden_and_visible_cases(capsys):
    right = lambda *a: dpo_loss(*a)[0]  # noqa: E731
    assert_passes(capsys, checks.check_dpo_loss, right, cases="visible")
    assert_passes(capsys, checks.check_dpo_loss, right, cases="hidden")
