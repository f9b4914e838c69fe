"""The cached / uncached generation timing of chapter 7, at a tiny size."""
from llmbook.experiments import kv_cache_speedup


def test_run_times_both_paths_for_every_length():
    data = kv_cache_speedup.run(n_layers=1, d_model=16, n_heads=2, block_size=16, lengths=(4, 15), repeats=1)
    assert data["lengths"] == [4, 15]
    assert all(len(data[key]) == 2 for key in ("cached_s", "uncached_s", "speedup"))
    assert all(s > 0 for s in data["speedup"])
    assert data["settings"]["parameters"] > 0 and data["settings"]["block_size"] == 16
