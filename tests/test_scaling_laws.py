"""FLOP counts, power-law fits and the compute-optimal size of chapters 5 and 8."""
import math

import pytest
import torch

from llmbook.models import GPT, GPTConfig
from llmbook.scaling_laws import (
    compute_optimal,
    fit_power_law,
    fit_power_law_with_floor,
    isoflop_optimum,
    training_flops_per_step,
)


def test_measured_flops_are_six_n_d_plus_attention_and_output_layer():
    for n_layers, d in ((1, 8), (2, 16)):
        model = GPT(GPTConfig(vocab_size=30, context_length=64, n_layers=n_layers, n_heads=max(1, min(4, d // 4)),
                              d_model=d))
        B, T = 2, 64
        per_token = 6 * (12 * n_layers * d * d + d * 30) + 12 * n_layers * T * d
        assert training_flops_per_step(model, B, T) == per_token * B * T


def test_power_law_fits_recover_known_laws():
    x = torch.logspace(3, 6, 8, dtype=torch.float64)
    a, alpha = fit_power_law(x, 7.0 * x ** -0.3)
    assert a == pytest.approx(7.0) and alpha == pytest.approx(0.3)
    E, a, alpha = fit_power_law_with_floor(x, 1.5 + 7.0 * x ** -0.3, n_grid=3000)
    assert E == pytest.approx(1.5, abs=0.01) and alpha == pytest.approx(0.3, abs=0.02)
    with pytest.raises(ValueError, match="positive"):
        fit_power_law([1.0, 2.0], [1.0, -1.0])
    with pytest.raises(ValueError, match="equal length"):
        fit_power_law([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="at least 3"):
        fit_power_law_with_floor([1.0, 2.0], [1.0, 0.5])


def test_isoflop_optimum_is_the_vertex_of_a_parabola_in_log_n():
    points = [(n, (math.log(n) - math.log(3000)) ** 2 + 0.7) for n in (300, 1000, 5000, 20_000)]
    assert isoflop_optimum(points) == pytest.approx(3000)
    assert isoflop_optimum([(10, 1.0), (100, 2.0)]) == 10  # lowest point at an end
    with pytest.raises(ValueError, match="at least one"):
        isoflop_optimum([])


def test_compute_optimal_spends_the_budget_at_the_given_ratio():
    n, d = compute_optimal(6e18, tokens_per_param=20)
    assert 6 * n * d == pytest.approx(6e18) and d == pytest.approx(20 * n)
    assert n == pytest.approx(math.sqrt(6e18 / (6 * 20)))
