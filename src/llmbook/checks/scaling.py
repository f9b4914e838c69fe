"""Checkers for the scaling exercises (chapter 8): rounding to fp8, fitting a power law, and the
compute-optimal split of a training budget.

Used in chapter 8, Scaling and unit scaling.
"""
from __future__ import annotations

import math

import torch

from ..precision import round_to
from ..scaling_laws import compute_optimal, fit_power_law
from ._core import Case, Verdict, case_generator, pair_problem, run_cases, tensor_problem


# ------------------------------------------------------------------------------ fp8 rounding
def _round_bits(x, mantissa_bits=3, min_exponent=-6, max_value=448.0, subnormals=True, mode="even",
                saturate=True):
    """Round x to a float format by arithmetic, with switches that reproduce the usual mistakes."""
    x = x.double()
    a = x.abs()
    if subnormals:
        a = a.clamp(min=2.0 ** min_exponent)  # below the smallest normal, the spacing stays fixed
    exponent = torch.floor(torch.log2(a.clamp(min=1e-300)))
    step = 2.0 ** (exponent - mantissa_bits)
    if mode == "even":
        q = torch.round(x / step)
    elif mode == "away":
        q = torch.sign(x) * torch.floor(x.abs() / step + 0.5)
    else:  # "truncate": towards zero
        q = torch.trunc(x / step)
    out = q * step
    if not subnormals:
        out = torch.where(x.abs() < 2.0 ** min_exponent * (1 - 2.0 ** -(mantissa_bits + 1)),
                          torch.zeros_like(out), out)
    if saturate:
        out = out.clamp(-max_value, max_value)
    else:
        out = torch.where(out.abs() > max_value, torch.sign(out) * math.inf, out)
    return out.float()


_FP8_MISTAKES = [
    ("values above 448 must saturate at +-448: e4m3 has no infinity (clamp the result to [-448, 448]).",
     lambda x: _round_bits(x, saturate=False)),
    ("e4m3 keeps 3 mantissa bits: between 2^e and 2^(e+1) the spacing is 2^(e-3); you used 2 bits "
     "(that is e5m2).", lambda x: _round_bits(x, mantissa_bits=2)),
    ("below the smallest normal number 2^-6 the format has subnormals: the spacing stays 2^-9 down to "
     "0, so do not let the exponent fall below -6 (and do not flush those values to 0).",
     lambda x: _round_bits(x, min_exponent=-1000)),
    ("below the smallest normal number 2^-6 values are not flushed to 0: subnormals keep them on a grid "
     "of spacing 2^-9.", lambda x: _round_bits(x, subnormals=False)),
    ("round to the nearest representable value; you truncated towards zero.",
     lambda x: _round_bits(x, mode="truncate")),
    ("a value exactly halfway between two neighbours goes to the one with an even last mantissa bit "
     "(torch.round does this); you rounded halves away from zero.", lambda x: _round_bits(x, mode="away")),
]


def _fp8_cases() -> list[Case]:
    g = case_generator(8)
    ties = torch.tensor([1.0625, 1.1875, -1.3125, 2.0 ** -10, 3 * 2.0 ** -10, 9.0, 11.0, 13.0])
    return [
        Case("x = [1.0, 1.1, 0.3, -2.7, 100.0]", (torch.tensor([1.0, 1.1, 0.3, -2.7, 100.0]),)),
        Case("x (4, 5) ~ N(0, 1)", (torch.randn(4, 5, generator=g),)),
        Case("x = [0.01, 0.004, -0.003, 0.0007, 1e-5]: subnormals and underflow",
             (torch.tensor([0.01, 0.004, -0.003, 0.0007, 1e-5]),)),
        Case("x = [300.0, 448.0, 460.0, 1000.0, -5000.0]: the top of the range",
             (torch.tensor([300.0, 448.0, 460.0, 1000.0, -5000.0]),), hidden=True),
        Case("x = exact halfway points " + str([round(v, 6) for v in ties.tolist()]), (ties,), hidden=True),
        Case("x (200,) spread over 2^-12 ... 2^10", ((torch.rand(200, generator=g) - 0.5).sign()
                                                      * torch.exp2(torch.rand(200, generator=g) * 22 - 12),)),
    ]


def check_fp8_round(fn, cases: str = "all") -> Verdict:
    """Check fn(x) -> x rounded to the nearest fp8-e4m3 value (ties to even, saturating at +-448),
    same shape, as a float tensor.

    cases: "all", or the "visible" or "hidden" ones (the top of the range, exact ties) of a graded
    assignment."""
    return run_cases("check_fp8_round", fn, _fp8_cases(), lambda x: round_to(x, "fp8_e4m3"),
                     lambda got, exp: tensor_problem(got, exp, "the rounded tensor", atol=0.0, rtol=1e-6),
                     _FP8_MISTAKES, fallback_hint="compare with x.clamp(-448, 448).to(torch.float8_e4m3fn).float().",
                     which=cases)


# ---------------------------------------------------------------------------- power-law fit
def _log_fit(x, y):
    """(slope, intercept) of log y against log x."""
    lx, ly = torch.as_tensor(x, dtype=torch.float64).log(), torch.as_tensor(y, dtype=torch.float64).log()
    slope = ((lx - lx.mean()) * (ly - ly.mean())).sum() / ((lx - lx.mean()) ** 2).sum()
    return slope.item(), (ly.mean() - slope * lx.mean()).item()


def _linear_fit(x, y):
    x, y = torch.as_tensor(x, dtype=torch.float64), torch.as_tensor(y, dtype=torch.float64)
    slope = ((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum()
    return (y.mean() - slope * x.mean()).item(), -slope.item()


_POWER_LAW_MISTAKES = [
    ("alpha is minus the slope of log y against log x (y = a x^(-alpha) falls when alpha > 0).",
     lambda x, y: (math.exp(_log_fit(x, y)[1]), _log_fit(x, y)[0])),
    ("a is exp(intercept), not the intercept itself: log y = log a - alpha log x.",
     lambda x, y: (_log_fit(x, y)[1], -_log_fit(x, y)[0])),
    ("fit on log-log axes: a straight line through (x, y) itself is not a power law.", _linear_fit),
    ("regress log y on log x (y is the quantity the law predicts), not log x on log y: with noisy data "
     "the two lines differ.",
     lambda x, y: (lambda s, c: (math.exp(-c / s), -1 / s))(*_log_fit(y, x))),
]


def _power_law_cases() -> list[Case]:
    g = case_generator(9)
    x = torch.tensor([1e3, 3e3, 1e4, 3e4, 1e5, 3e5, 1e6], dtype=torch.float64)
    noisy = 40.0 * x ** -0.3 * torch.exp(0.05 * torch.randn(7, generator=g, dtype=torch.float64))
    return [
        Case("exact y = 5 x^(-0.5), 4 points",
             (torch.tensor([1.0, 4.0, 16.0, 64.0]), torch.tensor([5.0, 2.5, 1.25, 0.625]))),
        Case("x = model sizes 1e3..1e6, y = 40 x^(-0.3) with 5% noise", (x, noisy)),
        Case("python lists, y = 2 x^(-0.076)",
             ([1e6, 1e7, 1e8, 1e9], [2.0 * v ** -0.076 for v in (1e6, 1e7, 1e8, 1e9)]), hidden=True),
        Case("a rising curve y = 0.5 x^(0.25) (alpha = -0.25)",
             ([1.0, 2.0, 5.0, 10.0, 100.0], [0.5 * v ** 0.25 for v in (1.0, 2.0, 5.0, 10.0, 100.0)]), hidden=True),
    ]


def check_power_law_fit(fn, cases: str = "all") -> Verdict:
    """Check fn(x, y) -> (a, alpha) with y ~ a * x^(-alpha), least squares of log y on log x.

    cases: "all", or the "visible" or "hidden" ones (python lists, a rising curve) of a graded assignment."""
    return run_cases("check_power_law_fit", fn, _power_law_cases(), fit_power_law,
                     lambda got, exp: pair_problem(got, exp, ("a", "alpha"), rel_tol=1e-3, abs_tol=1e-6),
                     _POWER_LAW_MISTAKES,
                     fallback_hint="fit a straight line to (log x, log y); alpha = -slope, a = exp(intercept).",
                     which=cases)


# ------------------------------------------------------------------------- compute-optimal split
_COMPUTE_MISTAKES = [
    ("training costs 6 N D FLOPs (2 N D forward, 4 N D backward); you used 2 N D, the forward pass only.",
     lambda C, r=20.0: compute_optimal(C, r, 2.0)),
    ("C = 6 N D with D = r N gives C = 6 r N^2, so N = sqrt(C / (6 r)); you forgot the square root.",
     lambda C, r=20.0: (C / (6 * r), r * C / (6 * r))),
    ("you returned (D, N); return the parameters first, then the tokens.",
     lambda C, r=20.0: compute_optimal(C, r)[::-1]),
    ("use tokens_per_param: D = tokens_per_param * N, not D = N.",
     lambda C, r=20.0: compute_optimal(C, 1.0)),
]


def _with_default_ratio(wrong):
    """A mistaken compute_optimal that, like the reference, defaults tokens_per_param to 20."""
    return lambda C, tokens_per_param=20.0: wrong(C, tokens_per_param)


def check_compute_optimal(fn, cases: str = "all") -> Verdict:
    """Check fn(C, tokens_per_param=20) -> (N, D): the parameters and tokens that spend C = 6 N D FLOPs
    with D = tokens_per_param * N.

    cases: "all", or the "visible" or "hidden" ones (other tokens_per_param) of a graded assignment."""
    all_cases = [
        Case("C = 6e18 FLOPs", (6e18,)),
        Case("C = 5.76e23 FLOPs (Chinchilla's budget)", (5.76e23,)),
        Case("C = 1e15, tokens_per_param=10", (1e15, 10.0), hidden=True),
        Case("C = 3.15e23, tokens_per_param=1.7 (GPT-3's ratio)", (3.15e23,), {"tokens_per_param": 1.7}, hidden=True),
    ]
    return run_cases("check_compute_optimal", fn, all_cases,
                     lambda C, tokens_per_param=20.0: compute_optimal(C, tokens_per_param),
                     lambda got, exp: pair_problem(got, exp, ("N", "D"), rel_tol=1e-4),
                     [(hint, _with_default_ratio(wrong)) for hint, wrong in _COMPUTE_MISTAKES],
                     fallback_hint="solve 6 N D = C together with D = tokens_per_param * N.", which=cases)
