"""Checkers for the adaptation exercises (chapter 10): a LoRA layer's output, the labels of an instruction
example with the prompt masked, and the DPO loss.

Used in chapter 10, Adapting and aligning models.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ._core import Case, Verdict, case_generator, run_cases, scalar_problem, tensor_problem


# ------------------------------------------------------------------------------------ LoRA forward
def _lora_forward(x, weight, bias, A, B, alpha, scale=None):
    """Reference: x W^T + b + (alpha / r) x A^T B^T, with r = A.shape[0] (float64)."""
    x, weight, bias, A, B = (t.double() for t in (x, weight, bias, A, B))
    s = alpha / A.shape[0] if scale is None else scale
    return x @ weight.T + bias + s * (x @ A.T @ B.T)


_LORA_MISTAKES = [
    ("the update is scaled by alpha / r, not by alpha: LoRA divides by the rank so that alpha can stay "
     "fixed when you change r.", lambda x, w, b, A, B, alpha: _lora_forward(x, w, b, A, B, alpha, scale=alpha)),
    ("the low-rank path is scaled by alpha / r; you left the scale out.",
     lambda x, w, b, A, B, alpha: _lora_forward(x, w, b, A, B, alpha, scale=1.0)),
    ("the scale is alpha / r, you used r / alpha.",
     lambda x, w, b, A, B, alpha: _lora_forward(x, w, b, A, B, alpha, scale=A.shape[0] / alpha)),
    ("LoRA adds to the frozen layer's output: keep x W^T + b and add the low-rank path, do not replace it.",
     lambda x, w, b, A, B, alpha: _lora_forward(x, w * 0, b * 0, A, B, alpha)),
    ("keep the base layer's bias b.", lambda x, w, b, A, B, alpha: _lora_forward(x, w, b * 0, A, B, alpha)),
]


def _lora_cases() -> list[Case]:
    g = case_generator(10)
    cases = []
    for label, (n, d_in, d_out, r, alpha, hidden) in (("x (4, 6), d_out 5, r 2, alpha 4", (4, 6, 5, 2, 4.0, False)),
                                                      ("x (3, 8), d_out 8, r 4, alpha 1", (3, 8, 8, 4, 1.0, False)),
                                                      ("x (1, 5), d_out 3, r 1, alpha 2", (1, 5, 3, 1, 2.0, True)),
                                                      ("x (2, 7), d_out 4, r 3, alpha 12", (2, 7, 4, 3, 12.0, True))):
        tensors = tuple(torch.randn(*shape, generator=g)
                        for shape in ((n, d_in), (d_out, d_in), (d_out,), (r, d_in), (d_out, r)))
        cases.append(Case(label, (*tensors, alpha), hidden=hidden))
    return cases


def check_lora_forward(fn, cases: str = "all") -> Verdict:
    """Check fn(x (N, d_in), weight (d_out, d_in), bias (d_out,), A (r, d_in), B (d_out, r), alpha) ->
    (N, d_out): the output of a linear layer with a LoRA update."""
    return run_cases("check_lora_forward", fn, _lora_cases(), _lora_forward, tensor_problem, _LORA_MISTAKES,
                     fallback_hint="y = x @ weight.T + bias + (alpha / r) * (x @ A.T @ B.T), r = A.shape[0].",
                     which=cases)


# ------------------------------------------------------------------------------ prompt-masked labels
def _masked_labels(prompt_ids, response_ids, shift=0, fill=-100, keep="response"):
    n_prompt = len(prompt_ids) + shift
    ids = list(prompt_ids) + list(response_ids)
    if keep == "response":
        labels = [fill] * n_prompt + ids[n_prompt:]
    else:
        labels = ids[:n_prompt] + [fill] * (len(ids) - n_prompt)
    return torch.tensor(labels)


def _labels_problem(got, expected):
    if isinstance(got, (list, tuple)):
        got = torch.tensor(list(got))
    if not isinstance(got, torch.Tensor):
        return f"the labels are a {type(got).__name__}, expected a list or a tensor of ints"
    return tensor_problem(got, expected, "the labels", atol=0, rtol=0)


_MASK_MISTAKES = [
    ("masked positions hold -100 (the ignore index of cross-entropy), not 0: 0 is a real token id.",
     lambda p, r: _masked_labels(p, r, fill=0)),
    ("you masked the response and kept the prompt: the loss must be on the response only.",
     lambda p, r: _masked_labels(p, r, keep="prompt")),
    ("one position too few is masked: the last prompt token (the assistant marker) is still scored.",
     lambda p, r: _masked_labels(p, r, shift=-1)),
    ("one position too many is masked: the first response token must be scored.",
     lambda p, r: _masked_labels(p, r, shift=1)),
]


def _mask_cases() -> list[Case]:
    return [Case("prompt of 4 tokens, response of 3", ([1, 5, 6, 2], [7, 8, 3])),
            Case("prompt of 2 tokens, response of 5", ([1, 2], [9, 9, 4, 0, 3])),
            Case("prompt of 6 tokens, response of 1", ([1, 4, 4, 4, 4, 2], [3]), hidden=True),
            Case("a response that repeats prompt tokens", ([1, 7, 8, 2], [7, 8, 7, 3]), hidden=True)]


def check_prompt_mask(fn, cases: str = "all") -> Verdict:
    """Check fn(prompt_ids: list, response_ids: list) -> labels for prompt + response: -100 on every
    prompt position, the token id on every response position."""
    return run_cases("check_prompt_mask", fn, _mask_cases(), _masked_labels, _labels_problem, _MASK_MISTAKES,
                     fallback_hint="labels = [-100] * len(prompt_ids) + list(response_ids).", which=cases)


# ------------------------------------------------------------------------------------------ DPO loss
def _dpo(pc, pr, rc, rr, beta, kind="right"):
    pc, pr, rc, rr = (t.double() for t in (pc, pr, rc, rr))
    if kind == "no reference":
        rc, rr = rc * 0, rr * 0
    margin = (pc - rc) - (pr - rr)
    if kind == "swapped":
        margin = -margin
    if kind == "beta outside":
        return -beta * F.logsigmoid(margin).mean()
    if kind == "sigmoid":
        return -torch.sigmoid(beta * margin).mean()
    loss = -F.logsigmoid(beta * margin)
    return loss.sum() if kind == "sum" else loss.mean()


def _dpo_reference(pc, pr, rc, rr, beta):
    return _dpo(pc, pr, rc, rr, beta)


_DPO_MISTAKES = [
    ("the sign is reversed: the loss must fall when the chosen response's log-ratio rises above the "
     "rejected one's (margin = (pc - rc) - (pr - rr)).", lambda *a: _dpo(*a, kind="swapped")),
    ("the reference model is missing: the implicit reward is beta (log pi - log pi_ref), a log-RATIO.",
     lambda *a: _dpo(*a, kind="no reference")),
    ("beta multiplies the margin inside the log-sigmoid, -log sigmoid(beta * margin); you multiplied the "
     "loss by beta.", lambda *a: _dpo(*a, kind="beta outside")),
    ("the loss is -log sigmoid(...), the Bradley-Terry negative log-likelihood, not -sigmoid(...).",
     lambda *a: _dpo(*a, kind="sigmoid")),
    ("average over the pairs (mean), do not sum.", lambda *a: _dpo(*a, kind="sum")),
]


def _dpo_cases() -> list[Case]:
    g = case_generator(11)
    cases = []
    for label, (n, beta, hidden) in (("8 pairs, beta 0.1", (8, 0.1, False)), ("5 pairs, beta 1", (5, 1.0, False)),
                                     ("1 pair, beta 0.5", (1, 0.5, True)), ("64 pairs, beta 3", (64, 3.0, True))):
        logps = tuple(-20 + 5 * torch.randn(n, generator=g) for _ in range(4))
        cases.append(Case(label, (*logps, beta), hidden=hidden))
    return cases


def check_dpo_loss(fn, cases: str = "all") -> Verdict:
    """Check fn(policy_chosen, policy_rejected, ref_chosen, ref_rejected (each (B,)), beta) -> the mean DPO
    loss, one number."""
    return run_cases("check_dpo_loss", fn, _dpo_cases(), _dpo_reference,
                     lambda got, exp: scalar_problem(got, exp, "the loss"), _DPO_MISTAKES,
                     fallback_hint="margin = (pc - rc) - (pr - rr); loss = -F.logsigmoid(beta * margin).mean().",
                     which=cases)
