"""The post-LN / pre-LN / warm-up sweep of chapter 4, at a tiny size."""
from llmbook.experiments import ln_placement


def test_run_returns_one_curve_per_placement_and_warmup():
    data = ln_placement.run(lrs=(1e-3,), seeds=(0,), steps=3, warmup=1, n_layers=1, d_model=16, batch_size=4)
    runs = data["runs"]
    assert [(r["placement"], r["warmup_steps"]) for r in runs] == [
        ("post-LN", 0), ("post-LN", 1), ("pre-LN", 0), ("pre-LN", 1)]
    assert all(len(r["loss"]) == len(r["grad_norm"]) == 3 and r["lr"] == 1e-3 for r in runs)
    assert data["settings"]["steps"] == 3
    again = ln_placement.run(lrs=(1e-3,), seeds=(0,), steps=3, warmup=1, n_layers=1, d_model=16, batch_size=4)
    assert again["runs"] == runs  # seeded: the same numbers every time


def test_reverse_batches_reverse_the_source():
    src, tgt_in, labels = ln_placement.reverse_batches(5, seed=0)(0)
    assert src.shape == (5, 8) and tgt_in.shape == labels.shape == (5, 9)
    assert (tgt_in[:, 0] == 1).all() and (labels[:, -1] == 2).all()
    assert (labels[:, :-1] == src.flip(1)).all()
