"""The grouped-query / multi-query experiment of chapter 7, at a tiny size."""
import pytest
import torch

from llmbook.experiments import kv_heads
from llmbook.models import GPT, GPTConfig


def tiny(n_kv_heads, d_ff=None):
    return GPT(GPTConfig(vocab_size=11, context_length=16, n_layers=2, n_heads=4, d_model=16, d_ff=d_ff,
                         n_kv_heads=n_kv_heads, pos_encoding="rope"))


def test_cache_bytes_per_token_counts_only_the_key_value_heads():
    x = torch.randint(0, 11, (3, 10), generator=torch.Generator().manual_seed(0))
    for n_kv in (4, 2, 1):
        # 2 layers x (keys + values) x n_kv heads x d_head 4 x 4 bytes (fp32), written out by hand
        assert kv_heads.cache_bytes_per_token(tiny(n_kv), x) == 2 * 2 * n_kv * 4 * 4


def test_fewer_key_value_heads_remove_parameters_and_the_wider_ffn_gives_them_back():
    full = tiny(4).num_parameters()
    for n_kv in (2, 1):
        lost = full - tiny(n_kv).num_parameters()
        # W_K and W_V of 2 layers each lose (4 - n_kv) heads of 4 columns of 16 weights and 4 biases
        assert lost == 2 * 2 * (4 - n_kv) * 4 * (16 + 1)
        matched = tiny(n_kv, d_ff=kv_heads.matched_d_ff(16, 4, n_kv, 64)).num_parameters()
        # the extra hidden units bring back every weight but, per unit, one of the two lost biases
        assert full - matched == 2 * (4 - n_kv) * 4


def test_settings_grid_has_every_head_count_and_a_matched_twin():
    grid = kv_heads.settings_grid(n_heads=8, d_model=32)
    assert [(s["n_kv_heads"], s["matched"]) for s in grid] == [(8, False), (4, False), (4, True), (1, False),
                                                                (1, True)]
    assert {s["d_ff"] for s in grid if not s["matched"]} == {128}


@pytest.fixture(scope="module")
def tiny_run():
    return kv_heads.run(n_heads=2, n_layers=1, d_model=8, steps=3, lr=1e-3, batch_size=2, window=8, seeds=(0, 1),
                        eval_windows=4)


def test_run_trains_every_setting_with_every_seed_and_summarises_them(tiny_run):
    runs, summary = tiny_run["runs"], tiny_run["summary"]
    assert [(r["name"], r["seed"]) for r in runs] == [(n, s) for n in ("H_kv = 2", "H_kv = 1", "H_kv = 1, wider FFN")
                                                      for s in (0, 1)]
    for s in summary:
        losses = [r["val_loss"] for r in runs if r["name"] == s["name"]]
        assert s["loss_mean"] == pytest.approx(sum(losses) / 2, abs=1e-5)
        assert s["loss_sd"] == pytest.approx(abs(losses[0] - losses[1]) / 2 ** 0.5, abs=1e-5)
    assert [s["cache_bytes_per_token"] for s in summary] == [2 * 2 * 4 * 4, 2 * 1 * 4 * 4, 2 * 1 * 4 * 4]
    assert len({r["val_loss"] for r in runs}) == len(runs)  # the seeds and settings give different models


def test_run_is_seeded(tiny_run):
    again = kv_heads.run(n_heads=2, n_layers=1, d_model=8, steps=3, lr=1e-3, batch_size=2, window=8, seeds=(0, 1),
                         eval_windows=4)
    assert again["runs"] == tiny_run["runs"]


def test_held_out_loss_is_the_mean_over_windows_in_any_batching():
    model = tiny(2).eval()
    g = torch.Generator().manual_seed(1)
    x, y = torch.randint(0, 11, (5, 12), generator=g), torch.randint(0, 11, (5, 12), generator=g)
    with torch.no_grad():
        whole = model(x, y).loss.item()
    assert kv_heads.held_out_loss(model, x, y, batch_size=2) == pytest.approx(whole, rel=1e-6)
