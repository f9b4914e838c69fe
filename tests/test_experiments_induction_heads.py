"""The induction-head experiment of chapter 9 at a tiny size: the data, the model, the scores."""
import pytest
import torch

from llmbook.experiments import induction_heads as ih


def test_repeated_letters_repeat_distinct_letters_with_a_random_period():
    x, y = ih.repeated_letters(64, 32, (4, 16), generator=torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (64, 32)
    assert torch.equal(x[:, 1:], y[:, :-1])
    periods = set()
    for row in x:
        p = next(p for p in range(1, 33) if torch.equal(row[p:], row[:-p]))  # the smallest period
        assert 4 <= p <= 16 and len(set(row[:p].tolist())) == p  # distinct letters within a period
        periods.add(p)
    assert len(periods) > 5
    x16, _ = ih.repeated_letters(3, 32, 16)
    assert torch.equal(x16[:, 16:], x16[:, :16])
    with pytest.raises(ValueError, match="periods"):
        ih.repeated_letters(2, 32, (4, 40))


def test_attention_only_model_has_no_feed_forward_and_an_untied_output():
    model = ih.GPT(ih.attention_only_config(2))
    assert all(block.ff is None for block in model.blocks)
    assert model.lm_head.weight is not model.tok_emb.weight
    assert ih.tokenizer().vocab_size == model.config.vocab_size == 26


def test_run_at_a_tiny_size_returns_aligned_plain_data_deterministically():
    data = ih.run(n_layers=(1, 2), seeds=(0,), steps=4, eval_every=2)
    assert [r["n_layers"] for r in data["runs"]] == [1, 2]
    for r in data["runs"]:
        assert r["step"] == [2, 4]
        for key in ("loss_first_period", "loss_repeated"):
            assert all(2.0 < v < 5.0 for v in r[key])  # about ln 26 = 3.26 before any learning
        for key in ("induction_score", "previous_token_score"):
            assert all(0.0 <= v <= 1.0 for v in r[key])
        assert r["phase_change_step"] is None
    again = ih.run(n_layers=(1,), seeds=(0,), steps=4, eval_every=2)
    assert again["runs"][0]["loss_repeated"] == data["runs"][0]["loss_repeated"]
    with pytest.raises(ValueError, match="must not be empty"):
        ih.run(n_layers=(), seeds=(0,))
