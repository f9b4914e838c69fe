"""The attention-pattern scores of chapter 9 on hand-made attention weights."""
import pytest
import torch

from llmbook.attention_patterns import induction_scores, previous_token_scores, weight_at_offset


def test_a_perfect_induction_pattern_scores_one_and_the_score_needs_a_repeated_part():
    T, period = 10, 4
    w = torch.zeros(T, T)
    w[:, 0] = 1.0
    for i in range(period, T):
        w[i] = 0.0
        w[i, i - period + 1] = 1.0
    assert induction_scores(w, period).item() == 1.0
    with pytest.raises(ValueError, match="repeated part"):
        induction_scores(w, T)
    with pytest.raises(ValueError, match=r"\(\.\.\., T, T\)"):
        induction_scores(torch.ones(3, 4), 2)


def test_previous_token_score_of_a_previous_token_head_is_one():
    w = torch.zeros(5, 5)
    w[0, 0] = 1.0
    w[torch.arange(1, 5), torch.arange(0, 4)] = 1.0
    assert previous_token_scores(w).item() == 1.0


def test_weight_at_offset_keeps_leading_dims_and_rejects_keys_before_the_start():
    w = torch.rand(2, 3, 6, 6)
    assert weight_at_offset(w, 2, 1).shape == (2, 3)
    assert weight_at_offset(w, 2, 1)[1, 2].item() == pytest.approx(w[1, 2, [2, 3, 4, 5], [1, 2, 3, 4]].mean().item())
    with pytest.raises(ValueError, match="offset=3"):
        weight_at_offset(w, 2, 3)  # query 2 has no key 3 positions back
