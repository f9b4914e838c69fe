"""The scaling-law experiment at a tiny size and the analysis of its records (the fits and FLOP counts
are tested in tests/test_scaling_laws.py)."""
import math

import pytest

from llmbook.experiments import scaling_laws as sl
from llmbook.scaling_laws import isoflop_optimum


def test_run_returns_plain_aligned_data_at_a_tiny_size():
    data = sl.run([(1, 8), (1, 16)], steps=4, eval_every=2, n_sentences=300, n_eval_batches=2)
    assert data["settings"]["steps"] == 4 and len(data["runs"]) == 2
    small, big = data["runs"]
    for r in data["runs"]:
        assert r["step"] == [2, 4] and r["tokens"] == [2 * 16 * 64, 4 * 16 * 64]
        assert len(r["eval_loss"]) == len(r["train_loss"]) == 2
        assert all(isinstance(v, float) and 0 < v < 10 for v in r["eval_loss"] + r["train_loss"])
        assert r["non_embedding_params"] < r["params"]
    assert small["non_embedding_params"] < big["non_embedding_params"]
    assert big["flops_per_step"] > small["flops_per_step"] > 0
    again = sl.run([(1, 8)], steps=4, eval_every=2, n_sentences=300, n_eval_batches=2)
    assert again["runs"][0]["eval_loss"] == small["eval_loss"]  # deterministic


def test_run_rejects_bad_arguments():
    with pytest.raises(ValueError, match="sizes is empty"):
        sl.run([], steps=2)
    with pytest.raises(ValueError, match="steps=0"):
        sl.run([(1, 8)], steps=0)


def test_compute_frontier_picks_the_best_size_per_budget():
    # two fake runs: the small model learns fast then stalls, the big one starts slow and wins later
    small = {"non_embedding_params": 10, "tokens": [100, 1000, 10_000], "eval_loss": [2.0, 1.0, 0.9],
             "step": [1, 10, 100], "flops_per_step": 6000}
    big = {"non_embedding_params": 100, "tokens": [100, 1000, 10_000], "eval_loss": [2.5, 1.2, 0.5],
           "step": [1, 10, 100], "flops_per_step": 60_000}
    budgets = [6 * 10 * 1000, 6 * 100 * 10_000, 1e12]
    loss, n = sl.compute_frontier([small, big], budgets)
    assert n[0] == 10 and loss[0] == pytest.approx(1.0)
    assert n[1] == 100 and loss[1] == pytest.approx(0.5)
    assert loss[2] is None and n[2] is None
    assert sl.run_flops(small)["flops_6nd"][0] == 6000
    assert math.isclose(sl.learning_rate(128), 6e-3)


def test_steps_for_spends_the_budget_within_the_limits():
    assert sl.steps_for(1000, 600, None, None) == 600
    per_step = 6 * 1000 * sl.BATCH_SIZE * sl.BLOCK_SIZE
    assert sl.steps_for(1000, 600, 2000 * per_step, None) == 2000
    assert sl.steps_for(1000, 600, 2000 * per_step, 1500) == 1500
    assert sl.steps_for(1000, 600, 10 * per_step, 1500) == 600  # never fewer than steps


def test_isoflop_profiles_interpolate_each_run_at_the_budget():
    runs = []
    for n, loss in ((100, 2.0), (1000, 1.0), (10_000, 1.5)):
        runs.append({"non_embedding_params": n, "tokens": [1000, 100_000], "step": [1, 100],
                     "flops_per_step": 1, "eval_loss": [loss + 1, loss]})
    C = 6 * 1000 * 100_000
    (profile,) = sl.isoflop_profiles(runs, [C])
    # N = 100 never reached C; N = 1000 reached it at its last evaluation; N = 10,000 halfway (in log C)
    assert profile == [(1000, pytest.approx(1.0)), (10_000, pytest.approx(2.0))]
    assert sl.loss_at_compute(runs[0], 1.0) is None
    # a parabola in log N with its vertex at N = 3000 is recovered exactly
    assert isoflop_optimum(profile) == 1000  # the lowest point lies at an end of this profile
    assert sl.loss_at_tokens(runs[1], 100_000) == 1.0 and sl.loss_at_tokens(runs[1], 5) is None
