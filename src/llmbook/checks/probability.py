"""Checkers for the language-modelling-as-probability exercises (chapters 1-2): softmax, cross-entropy, perplexity,
perplexity restated in other units (another tokenizer's tokens, characters).

Used in chapters 1, Background: from n-grams to large language models, and 2, Core concepts.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ._core import Case, Verdict, case_generator, run_cases, scalar_problem, tensor_problem


# ------------------------------------------------------------------------------------ softmax
def _naive_softmax(x, dim=-1):
    e = torch.exp(x)
    return e / e.sum(dim=dim, keepdim=True)


def _global_max_softmax(x, dim=-1):
    e = torch.exp(x - x.max())
    return e / e.sum(dim=dim, keepdim=True)


_SOFTMAX_MISTAKES = [
    ("exp(1000) overflows to inf; subtract the maximum along dim first (softmax(x) = softmax(x - max), "
     "x.max(dim=dim, keepdim=True).values).", _naive_softmax),
    ("subtract the maximum along dim (keepdim=True), not the maximum of the whole tensor: a row far "
     "below the global maximum underflows to 0 / 0.", _global_max_softmax),
    ("keep the summed dim (sum(dim=dim, keepdim=True)) so that each row is divided by its own sum.",
     lambda x, dim=-1: torch.exp(x) / torch.exp(x).sum(dim=dim)),
    ("divide by the sum along dim only, not by the sum of the whole tensor.",
     lambda x, dim=-1: torch.exp(x) / torch.exp(x).sum()),
    ("use the dim argument; your function always normalizes over the last dim.",
     lambda x, dim=-1: torch.softmax(x, dim=-1)),
]


def check_softmax(fn, cases: str = "all") -> Verdict:
    """Check fn(x, dim=-1) -> softmax of x along dim, numerically stable for large inputs.

    cases: "all", or the "visible" or "hidden" ones (the large inputs) of a graded assignment."""
    g = case_generator(1)
    square = torch.randn(3, 3, generator=g)
    all_cases = [
        Case("x (5,), default dim", (torch.randn(5, generator=g),)),
        Case("x (3, 3), dim=-1", (square, -1)),
        Case("x (3, 4), dim=-1", (torch.randn(3, 4, generator=g), -1)),
        Case("x (3, 4), dim=0", (torch.randn(3, 4, generator=g), 0)),
        Case("x (2, 3, 4), dim=1", (torch.randn(2, 3, 4, generator=g), 1)),
        Case("x = [1000, 1001, 1002]: large inputs", (torch.tensor([1000.0, 1001.0, 1002.0]), -1), hidden=True),
        Case("x = [[1000, 1001], [0, 1]]: rows on different scales",
             (torch.tensor([[1000.0, 1001.0], [0.0, 1.0]]), -1), hidden=True),
    ]
    return run_cases("check_softmax", fn, all_cases, lambda x, dim=-1: torch.softmax(x.double(), dim=dim),
                     tensor_problem, _SOFTMAX_MISTAKES, which=cases)


# ------------------------------------------------------------------------------ cross-entropy
_CROSS_ENTROPY_MISTAKES = [
    ("average over the N positions (mean), not the sum.",
     lambda logits, t: F.cross_entropy(logits.double(), t, reduction="sum")),
    ("cross-entropy is minus the mean log-probability of the targets; your sign is flipped.",
     lambda logits, t: -F.cross_entropy(logits.double(), t)),
    ("the loss is minus the *log* of the target's probability; you averaged the probabilities.",
     lambda logits, t: -torch.softmax(logits.double(), -1)[torch.arange(len(t)), t].mean()),
    ("pick each row's own target: logits[torch.arange(N), targets] (or gather), not logits[:, targets].",
     lambda logits, t: -torch.log_softmax(logits.double(), -1)[:, t].mean()),
    ("compute log-softmax stably: logits - logsumexp(logits) (or torch.log_softmax); exp of a large "
     "logit overflows, and log(softmax) of a tiny probability is log(0) = -inf.",
     lambda logits, t: -torch.log(torch.exp(logits) / torch.exp(logits).sum(-1, keepdim=True))
     [torch.arange(len(t)), t].mean()),
    ("compute log-softmax stably: logits - logsumexp(logits) (or torch.log_softmax); log(softmax) "
     "of a tiny probability is log(0) = -inf.",
     lambda logits, t: -torch.log(torch.softmax(logits, -1))[torch.arange(len(t)), t].mean()),
]


def check_cross_entropy(fn, cases: str = "all") -> Verdict:
    """Check fn(logits (N, V), targets (N,)) -> the mean cross-entropy, a single number.

    cases: "all", or the "visible" or "hidden" ones (one position, large logits) of a graded assignment."""
    g = case_generator(3)

    def case(label, N, V, scale=1.0, hidden=False):
        return Case(label, (torch.randn(N, V, generator=g) * scale, torch.randint(V, (N,), generator=g)),
                    hidden=hidden)

    all_cases = [
        case("logits (4, 5)", 4, 5),
        case("logits (1, 3): a single position", 1, 3, hidden=True),
        case("logits (16, 100)", 16, 100),
        case("logits (6, 2): two classes", 6, 2),
        case("logits (8, 10) * 1000: large logits", 8, 10, scale=1000.0, hidden=True),
    ]
    return run_cases("check_cross_entropy", fn, all_cases, lambda logits, t: F.cross_entropy(logits.double(), t),
                     scalar_problem, _CROSS_ENTROPY_MISTAKES, which=cases)


# ---------------------------------------------------------------------------------- perplexity
_PERPLEXITY_MISTAKES = [
    ("perplexity is exp(-mean(log p)); with log-probabilities <= 0 it is >= 1. Check the sign.",
     lambda lp: torch.exp(lp.double().mean())),
    ("average the log-probabilities (mean over N) before exponentiating, not the sum.",
     lambda lp: torch.exp(-lp.double().sum())),
    ("exponentiate the mean, not average the exponentials: exp(-mean(log p)) != mean(exp(-log p)).",
     lambda lp: torch.exp(-lp.double()).mean()),
    ("these are natural-log probabilities: use exp, not 2 ** (...).",
     lambda lp: 2 ** (-lp.double().mean())),
    ("that is the cross-entropy (the mean negative log-likelihood); perplexity is its exponential.",
     lambda lp: -lp.double().mean()),
]


def check_perplexity(fn, cases: str = "all") -> Verdict:
    """Check fn(log_probs (N,)) -> exp(-mean(log_probs)): log_probs are the natural-log
    probabilities the model gave each target token.

    cases: "all", or the "visible" or "hidden" ones (one token, float64) of a graded assignment."""
    g = case_generator(4)
    random_lp = torch.log_softmax(torch.randn(12, 7, generator=g), -1)[:, 0]  # (12,) each <= 0
    all_cases = [
        Case("log_probs = log(1/10) * 5: uniform over 10 tokens (perplexity 10)", (torch.full((5,), math.log(0.1)),)),
        Case("log_probs (12,)", (random_lp,)),
        Case("log_probs (1,): one token", (torch.tensor([-2.0]),), hidden=True),
        Case("log_probs = [0, 0, 0]: certain predictions (perplexity 1)", (torch.zeros(3),)),
        Case("log_probs (4,) in float64", (torch.tensor([-0.1, -3.0, -0.5, -1.25], dtype=torch.float64),),
             hidden=True),
    ]
    return run_cases("check_perplexity", fn, all_cases, lambda lp: torch.exp(-lp.double().mean()),
                     scalar_problem, _PERPLEXITY_MISTAKES, which=cases)


# ----------------------------------------------------------- perplexity in other units (chapter 2)
_CONVERSION_MISTAKES = [
    ("perplexity is per unit: the same probability counted in other units gives another perplexity. "
     "Keep the total -ln P(text) = n_from * ln(ppl) and divide it by n_to.",
     lambda ppl, n_from, n_to: float(ppl)),
    ("the exponent is n_from / n_to (the total nats stay, the number of units changes), not n_to / n_from.",
     lambda ppl, n_from, n_to: float(ppl) ** (n_to / n_from)),
    ("perplexity is the exponential of nats per unit: scale the exponent ln(ppl), not the perplexity itself.",
     lambda ppl, n_from, n_to: float(ppl) * n_from / n_to),
    ("perplexity is the exponential of nats per unit: scale the exponent ln(ppl), not the perplexity itself.",
     lambda ppl, n_from, n_to: float(ppl) * n_to / n_from),
    ("use one base throughout: ln(ppl) with exp, or log2(ppl) with 2 ** (...), not ln with 2 **.",
     lambda ppl, n_from, n_to: 2 ** (math.log(ppl) * n_from / n_to)),
]


def check_perplexity_conversion(fn, cases: str = "all") -> Verdict:
    """Check fn(ppl, n_from, n_to) -> ppl ** (n_from / n_to): a perplexity measured over n_from units
    (tokens of one tokenizer) restated per unit when the same text is counted as n_to units.

    cases: "all", or the "visible" or "hidden" ones (perplexity 1, equal counts) of a graded assignment."""
    all_cases = [
        Case("ppl = 39.3 over 2,000 tokens, restated over 4,844 characters", (39.3, 2000, 4844)),
        Case("ppl = 4.5 over 1,000 characters, restated over 250 tokens", (4.5, 1000, 250)),
        Case("ppl = 16.0 over 300 tokens, restated over 600 bytes", (16.0, 300, 600)),
        Case("ppl = 1.0: a certain model stays certain in any unit", (1.0, 120, 500), hidden=True),
        Case("ppl = 7.25, n_from = n_to = 64: nothing to convert", (7.25, 64, 64), hidden=True),
    ]
    return run_cases("check_perplexity_conversion", fn, all_cases,
                     lambda ppl, n_from, n_to: float(ppl) ** (n_from / n_to), scalar_problem,
                     _CONVERSION_MISTAKES, which=cases)
