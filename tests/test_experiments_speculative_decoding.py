"""The speculative-decoding measurement of chapter 7, at a tiny size."""
from llmbook.experiments import speculative_decoding


def test_run_measures_every_draft_length_and_output_is_the_targets():
    tiny = dict(n_layers=1, d_model=16, n_heads=2, steps=2, lr=1e-2)
    data = speculative_decoding.run(target=tiny, draft=tiny, ks=(1, 3), new_tokens=8, repeats=1)
    assert data["ks"] == [1, 3] and data["identical"] == [True, True]
    for key in ("acceptance_rate", "alpha", "tokens_per_target_call", "speedup"):
        assert len(data[key]) == 2 and all(v > 0 or key in ("acceptance_rate", "alpha") for v in data[key])
    assert all(0 <= a <= b <= 1 for a, b in zip(data["acceptance_rate"], data["alpha"]))
    assert all(1 <= t <= k + 1 for t, k in zip(data["tokens_per_target_call"], data["ks"]))
    assert data["cost_ratio"] > 0 and data["settings"]["target"]["parameters"] > 0
