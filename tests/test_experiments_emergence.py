"""The addition experiment of chapter 9 at a tiny size: data layout and determinism (the metrics are
tested in tests/test_metrics.py)."""
import pytest

from llmbook.experiments import emergence as em


def test_problems_are_zero_padded_and_only_the_answer_is_scored():
    line = em.format_problem("42+517=", "559")
    assert line == "042+517=0559\n"
    x, y = em.encode_problems([line])
    tok = em.tokenizer()
    assert x.shape == y.shape == (1, 12)
    assert tok.decode(x[0].tolist()) == line[:-1]
    scored = y[0] != -100
    assert scored.tolist() == [False] * 7 + [True] * 5  # 4 digits and the newline
    assert tok.decode(y[0][scored].tolist()) == "0559\n"
    with pytest.raises(ValueError, match="a\\+b="):
        em.format_problem("42-5=", "37")
    with pytest.raises(ValueError, match="13 characters"):
        em.encode_problems(["1+2=3\n"])


def test_run_at_a_tiny_size_returns_aligned_plain_data_deterministically():
    data = em.run([(1, 8), (1, 16)], steps=4, eval_every=2, n_test=20, n_train=200)
    assert data["settings"]["steps"] == 4 and data["settings"]["answer_tokens"] == 5
    assert [r["d_model"] for r in data["runs"]] == [8, 16]
    for r in data["runs"]:
        assert r["step"] == [2, 4]
        for key in ("exact_match", "token_accuracy"):
            assert len(r[key]) == 2 and all(0.0 <= v <= 1.0 for v in r[key])
        assert all(isinstance(v, float) and v < 0 for v in r["answer_log_likelihood"])
        assert all(len(acc) == 5 for acc in r["position_accuracy"])
    assert data["runs"][0]["params"] < data["runs"][1]["params"]
    again = em.run([(1, 8)], steps=4, eval_every=2, n_test=20, n_train=200)
    assert again["runs"][0]["answer_log_likelihood"] == data["runs"][0]["answer_log_likelihood"]
    with pytest.raises(ValueError, match="must not be empty"):
        em.run([], steps=2)
    with pytest.raises(ValueError, match="must not be empty"):
        em.run([(1, 8)], steps=2, seeds=())


def test_seeds_change_the_training_run_but_not_the_problems():
    data = em.run([(1, 8)], steps=4, eval_every=2, n_test=20, n_train=200, seeds=(0, 1))
    assert [r["seed"] for r in data["runs"]] == [0, 1]
    assert data["settings"]["seeds"] == [0, 1] and data["settings"]["data_seed"] == 0
    first, second = data["runs"]
    assert first["params"] == second["params"]
    assert first["answer_log_likelihood"] != second["answer_log_likelihood"]  # other weights, other batches
    alone = em.run([(1, 8)], steps=4, eval_every=2, n_test=20, n_train=200, seeds=(1,))
    assert alone["runs"][0]["answer_log_likelihood"] == second["answer_log_likelihood"]
