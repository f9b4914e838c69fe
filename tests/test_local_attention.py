"""Blocked sliding-window attention equals dense attention with the sliding-window mask."""
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from llmbook.attention import scaled_dot_product_attention, sliding_window_mask
from llmbook.local_attention import sliding_window_attention


@pytest.mark.parametrize("T, window", [(1, 1), (10, 3), (12, 4), (7, 7), (5, 9), (33, 5), (16, 1)])
def test_blocked_equals_dense_masked_attention(T, window):
    g = torch.Generator().manual_seed(T * 100 + window)
    q, k = torch.randn(2, 3, T, 8, generator=g), torch.randn(2, 3, T, 8, generator=g)
    v = torch.randn(2, 3, T, 6, generator=g)
    dense, _ = scaled_dot_product_attention(q, k, v, sliding_window_mask(T, window))
    torch.testing.assert_close(sliding_window_attention(q, k, v, window), dense)


def test_work_grows_linearly_with_length():
    def flops(T, window=16):
        q = torch.randn(1, 1, T, 8)
        with FlopCounterMode(display=False) as counter:
            sliding_window_attention(q, q, q, window)
        return counter.get_total_flops()

    assert flops(512) == 2 * flops(256) == 4 * flops(128)


def test_bad_input_is_refused():
    q = torch.randn(1, 4, 8)
    with pytest.raises(ValueError, match="window must be >= 1, got 0"):
        sliding_window_attention(q, q, q, 0)
    with pytest.raises(ValueError, match="same length"):
        sliding_window_attention(q, torch.randn(1, 5, 8), torch.randn(1, 5, 8), 2)
