"""Scores that say what an attention head does, from its weights (chapter 9): the induction score
(does a query attend to the token after the earlier copy of itself?) and the previous-token score.

Both average the weight that each query gives to the key a fixed number of positions back.

Used in chapter 9, Emergent abilities.
"""
from __future__ import annotations

import torch


def _length(weights: torch.Tensor) -> int:
    """T of attention weights (..., T, T); raises ValueError for any other shape."""
    if weights.dim() < 2 or weights.size(-2) != weights.size(-1):
        raise ValueError(f"weights must have shape (..., T, T), got {tuple(weights.shape)}")
    return weights.size(-1)


def weight_at_offset(weights: torch.Tensor, first_query: int, offset: int) -> torch.Tensor:
    """Mean of weights[..., i, i - offset] over the queries i = first_query .. T-1; shape (...).

    weights: (..., T, T), queries along dim -2 and keys along dim -1. Raises ValueError unless the
    weights are square and 0 <= offset <= first_query < T (every query has its key, none wraps around).
    """
    T = _length(weights)
    if not 0 <= offset <= first_query < T:
        raise ValueError(f"need 0 <= offset={offset} <= first_query={first_query} < T={T}")
    queries = torch.arange(first_query, T)
    return weights[..., queries, queries - offset].mean(-1)


def induction_scores(weights: torch.Tensor, period: int) -> torch.Tensor:
    """Induction score of attention weights (..., T, T) on a sequence that repeats with this period.

    For each query i in the repeated part (i >= period) the earlier copy of token i sits at
    i - period, and the token after it at i - period + 1: that token is the one to predict next.
    The score is the mean weight on it, over i = period .. T-1; shape (...) (e.g. one per head).
    Raises ValueError unless 1 <= period <= T - 1 (there must be a repeated part).
    """
    T = _length(weights)
    if not 1 <= period < T:
        raise ValueError(f"period={period} must lie in [1, T-1] for T={T}: there must be a repeated part")
    return weight_at_offset(weights, period, period - 1)


def previous_token_scores(weights: torch.Tensor) -> torch.Tensor:
    """Mean weight of each query i >= 1 on key i - 1, for weights (..., T, T); shape (...)."""
    return weight_at_offset(weights, 1, 1)
