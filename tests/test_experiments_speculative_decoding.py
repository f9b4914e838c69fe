"""The speculative-decoding measurement of chapter 7, at a tiny size."""
from llmbook.experiments import speculative_decoding


def test_run_measures_every_draft_length_and_output_is_the_targets():
    tiny = dict(n_layers=1, d_model=16, n_heads=2, steps=2, lr=1e-2)
    data = speculative_decoding.run(target=tiny, draft=tiny, ks=(1, 3), new_tokens=8, repeats=1)
    assert data["ks"] == [1, 3] and data["identical"] == [True, True]
    for key in ("acceptance_rate", "tokens_per_target_call", "speedup"):
        assert len(data[key]) == 2 and all(v > 0 or key == "acceptance_rate" for v in data[key])
    assert all(0 <= a <= 1 for a in data["acceptance_rate"])
    assert all(1 <= t <= k + 1 for t, k in zip(data["tokens_per_target_call"], data["ks"]))
    assert data["cost_ratio"] > 0 and data["settings"]["target"]["parameters"] > 0


def test_cpu_seconds_is_a_median_of_nonnegative_times():
    calls = []
    seconds = speculative_decoding.cpu_seconds(lambda: calls.append(1), repeats=3)
    assert seconds >= 0 and len(calls) == 4  # one warm-up, three timed


def test_interleaved_timing_takes_turns():
    order = []
    times = speculative_decoding.cpu_seconds_interleaved([lambda: order.append("a"), lambda: order.append("b")],
                                                        repeats=2)
    assert order == ["a", "b", "a", "b", "a", "b"] and len(times) == 2 and min(times) >= 0
