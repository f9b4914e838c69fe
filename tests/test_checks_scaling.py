"""Chapter 8's checkers accept the reference answers and name the typical mistakes."""
import math

import torch
from checker_verdicts import assert_fails, assert_passes

from llmbook import checks
from llmbook.checks.scaling import _round_bits
from llmbook.precision import round_to
from llmbook.scaling_laws import compute_optimal, fit_power_law


# ------------------------------------------------------------------------------ fp8 rounding
def learner_fp8_round(x):
    """The solution of the chapter: exponent from log2, floored at -6; spacing 2^(e-3); saturate."""
    exponent = torch.floor(torch.log2(x.abs().clamp(min=2.0 ** -6)))
    step = 2.0 ** (exponent - 3)
    return (torch.round(x / step) * step).clamp(-448, 448)


def test_fp8_reference_by_arithmetic_equals_the_torch_cast():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(10_000, generator=g) * torch.exp2(torch.randint(-14, 12, (10_000,), generator=g).float())
    assert torch.equal(_round_bits(x), round_to(x, "fp8_e4m3"))


def test_fp8_checker_accepts_correct_answers(capsys):
    assert_passes(capsys, checks.check_fp8_round, learner_fp8_round)
    assert_passes(capsys, checks.check_fp8_round, lambda x: x.clamp(-448, 448).to(torch.float8_e4m3fn).float())


def test_fp8_checker_names_the_mistakes(capsys):
    assert_fails(capsys, checks.check_fp8_round, lambda x: _round_bits(x, saturate=False), "saturate", "448")
    assert_fails(capsys, checks.check_fp8_round, lambda x: _round_bits(x, mantissa_bits=2), "3 mantissa bits")
    assert_fails(capsys, checks.check_fp8_round, lambda x: _round_bits(x, min_exponent=-1000), "subnormals")
    assert_fails(capsys, checks.check_fp8_round, lambda x: _round_bits(x, mode="truncate"), "truncated")
    assert_fails(capsys, checks.check_fp8_round, lambda x: _round_bits(x, mode="away"), "halfway", "even")
    assert_fails(capsys, checks.check_fp8_round, lambda x: x, "case 1", "the rounded tensor")


def test_fp8_checker_reports_errors_and_wrong_types(capsys):
    assert_fails(capsys, checks.check_fp8_round, lambda x: x.tolist(), "is a list")
    assert_fails(capsys, checks.check_fp8_round, lambda x: 1 / 0, "your function raised ZeroDivisionError")


# ---------------------------------------------------------------------------- power-law fit
def learner_fit(x, y):
    lx, ly = torch.log(torch.as_tensor(x, dtype=torch.float64)), torch.log(torch.as_tensor(y, dtype=torch.float64))
    A = torch.stack([lx, torch.ones_like(lx)], dim=1)
    slope, intercept = torch.linalg.lstsq(A, ly[:, None]).solution.flatten().tolist()
    return math.exp(intercept), -slope


def test_power_law_checker_accepts_correct_answers(capsys):
    assert_passes(capsys, checks.check_power_law_fit, learner_fit)
    assert_passes(capsys, checks.check_power_law_fit, fit_power_law)
    assert_passes(capsys, checks.check_power_law_fit, lambda x, y: list(fit_power_law(x, y)))


def test_power_law_checker_names_the_mistakes(capsys):
    assert_fails(capsys, checks.check_power_law_fit, lambda x, y: (learner_fit(x, y)[0], -learner_fit(x, y)[1]),
                 "minus the slope")
    assert_fails(capsys, checks.check_power_law_fit,
                 lambda x, y: (math.log(learner_fit(x, y)[0]), learner_fit(x, y)[1]), "exp(intercept)")
    assert_fails(capsys, checks.check_power_law_fit, lambda x, y: learner_fit(y, x), "case 1", "a is 25")
    assert_fails(capsys, checks.check_power_law_fit, lambda x, y: learner_fit(x, y)[0], "return a pair")


def test_power_law_checker_spots_the_swapped_regression(capsys):
    def swapped(x, y):
        a_inv, alpha_inv = learner_fit(y, x)  # log x = c' + s' log y
        s, c = -alpha_inv, math.log(a_inv)
        return math.exp(-c / s), -1 / s

    assert_fails(capsys, checks.check_power_law_fit, swapped, "case 2", "not log x on log y")


# ------------------------------------------------------------------------- compute-optimal split
def learner_compute_optimal(C, tokens_per_param=20):
    N = (C / (6 * tokens_per_param)) ** 0.5
    return N, tokens_per_param * N


def test_compute_optimal_checker(capsys):
    assert_passes(capsys, checks.check_compute_optimal, learner_compute_optimal)
    assert_fails(capsys, checks.check_compute_optimal,
                 lambda C, tokens_per_param=20: compute_optimal(C, tokens_per_param, 2.0), "2 N D", "forward")
    assert_fails(capsys, checks.check_compute_optimal,
                 lambda C, tokens_per_param=20: (C / (6 * tokens_per_param), C / 6), "square root")
    assert_fails(capsys, checks.check_compute_optimal,
                 lambda C, tokens_per_param=20: learner_compute_optimal(C, tokens_per_param)[::-1], "(D, N)")
    assert_fails(capsys, checks.check_compute_optimal, lambda C, tokens_per_param=20: learner_compute_optimal(C, 1),
                 "tokens_per_param")
    assert_fails(capsys, checks.check_compute_optimal, lambda C, tokens_per_param=20: C, "return a pair")


def test_chinchilla_budget_gives_its_model():
    n, d = compute_optimal(5.76e23)
    assert 6.5e10 < n < 7.5e10 and 1.3e12 < d < 1.5e12  # Chinchilla: 70 B parameters, 1.4 T tokens
