"""Attention: masks, the explicit formula, and multi-head attention against torch's references."""
import math

import pytest
import torch
import torch.nn.functional as F

from llmbook.attention import (
    MultiHeadAttention,
    causal_mask,
    padding_mask,
    scaled_dot_product_attention,
    tiled_attention,
)
from llmbook.kv_cache import LayerKVCache


def test_causal_mask_allows_exactly_the_past_and_present():
    T = 6
    mask = causal_mask(T)
    for i in range(T):
        for j in range(T):
            assert bool(mask[i, j]) == (j <= i), (i, j)


def test_causal_mask_with_cached_past_lets_new_queries_see_all_cached_keys():
    mask = causal_mask(2, past=3)  # queries at positions 3 and 4, keys 0..4
    assert mask.shape == (2, 5)
    assert mask[0].tolist() == [True, True, True, True, False]
    assert mask[1].tolist() == [True] * 5


def test_padding_mask_from_lengths_and_from_ids_agree():
    ids = torch.tensor([[5, 6, 7, 0, 0], [8, 9, 0, 0, 0]])
    from_ids = padding_mask(ids, 0)
    from_lengths = padding_mask(torch.tensor([3, 2]), 5)
    assert from_ids.shape == (2, 1, 1, 5)
    assert torch.equal(from_ids, from_lengths)
    assert from_ids[0, 0, 0].tolist() == [True, True, True, False, False]


def test_padding_mask_rejects_length_beyond_T():
    with pytest.raises(ValueError, match="7"):
        padding_mask(torch.tensor([3, 7]), 5)


def test_explicit_attention_matches_the_formula_in_float64():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 5, 8, generator=g, dtype=torch.float64) for _ in range(3))
    out, w = scaled_dot_product_attention(q, k, v)
    scores = torch.einsum("bhid,bhjd->bhij", q, k) / math.sqrt(8)
    expected_w = scores.exp() / scores.exp().sum(-1, keepdim=True)
    torch.testing.assert_close(w, expected_w)
    torch.testing.assert_close(out, expected_w @ v)


def test_weights_rows_sum_to_one_and_masked_keys_are_exactly_zero():
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(2, 4, 7, 16, generator=g) for _ in range(3))
    mask = causal_mask(7) & padding_mask(torch.tensor([7, 5]), 7)
    _, w = scaled_dot_product_attention(q, k, v, mask)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 4, 7))
    assert (w[~mask.expand_as(w)] == 0).all()


def test_explicit_attention_equals_torch_sdpa_with_the_same_bool_mask():
    g = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(2, 4, 9, 16, generator=g) for _ in range(3))
    mask = causal_mask(9) & padding_mask(torch.tensor([9, 6]), 9)
    out, _ = scaled_dot_product_attention(q, k, v, mask)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask))


def test_attention_rejects_mask_of_wrong_shape_and_dtype():
    q = torch.randn(1, 2, 4, 8)
    with pytest.raises(ValueError, match=r"\(3, 3\)"):
        scaled_dot_product_attention(q, q, q, torch.ones(3, 3, dtype=torch.bool))
    with pytest.raises(TypeError, match="bool"):
        scaled_dot_product_attention(q, q, q, torch.ones(4, 4))


def test_multi_head_attention_rejects_indivisible_heads():
    with pytest.raises(ValueError, match="d_model=10.*n_heads=3"):
        MultiHeadAttention(10, 3)


def test_mha_rejects_a_mask_that_does_not_fit_the_scores():
    mha = MultiHeadAttention(16, 4)
    x = torch.randn(2, 5, 16)
    with pytest.raises(ValueError, match=r"\(2, 1, 1, 6\)"):
        mha(x, mask=torch.ones(2, 1, 1, 6, dtype=torch.bool))


@pytest.mark.parametrize("causal", [False, True])
def test_fast_and_explicit_paths_give_the_same_output(causal):
    torch.manual_seed(0)
    mha = MultiHeadAttention(32, 4).eval()
    x = torch.randn(3, 7, 32)
    mask = padding_mask(torch.tensor([7, 4, 6]), 7)
    fast, none = mha(x, mask=mask, causal=causal)
    slow, w = mha(x, mask=mask, causal=causal, return_attention=True)
    assert none is None and w.shape == (3, 4, 7, 7)
    torch.testing.assert_close(fast, slow)


def test_cross_attention_fast_and_explicit_paths_agree():
    torch.manual_seed(0)
    mha = MultiHeadAttention(32, 4).eval()
    x, ctx = torch.randn(2, 5, 32), torch.randn(2, 8, 32)
    mask = padding_mask(torch.tensor([8, 3]), 8)
    fast, _ = mha(x, context=ctx, mask=mask)
    slow, w = mha(x, context=ctx, mask=mask, return_attention=True)
    torch.testing.assert_close(fast, slow)
    assert w.shape == (2, 4, 5, 8) and (w[1, :, :, 3:] == 0).all()


def test_mha_equals_torch_multihead_attention_with_the_same_weights():
    """torch.nn.MultiheadAttention is an independent reference; note its bool mask means *blocked*."""
    torch.manual_seed(0)
    ours = MultiHeadAttention(32, 4).eval()
    ref = torch.nn.MultiheadAttention(32, 4, batch_first=True).eval()
    with torch.no_grad():
        ref.in_proj_weight.copy_(ours.in_proj.weight)
        ref.in_proj_bias.copy_(ours.in_proj.bias)
        ref.out_proj.weight.copy_(ours.out_proj.weight)
        ref.out_proj.bias.copy_(ours.out_proj.bias)
    x = torch.randn(2, 6, 32)
    out, w = ours(x, causal=True, return_attention=True)
    ref_out, ref_w = ref(x, x, x, attn_mask=~causal_mask(6), average_attn_weights=False)
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(w, ref_w)


def test_incremental_attention_with_a_cache_equals_full_causal_attention():
    torch.manual_seed(0)
    mha = MultiHeadAttention(32, 4).eval()
    x = torch.randn(2, 9, 32)
    full, _ = mha(x, causal=True)
    cache = LayerKVCache(max_len=16)
    prefill, _ = mha(x[:, :4], causal=True, kv_cache=cache)
    steps = [mha(x[:, t : t + 1], causal=True, kv_cache=cache)[0] for t in range(4, 9)]
    torch.testing.assert_close(torch.cat([prefill, *steps], dim=1), full)
    with pytest.raises(ValueError, match="at most 16"):
        mha(torch.randn(2, 8, 32), causal=True, kv_cache=cache)


# ------------------------------------------------------------------ sliding-window and strided masks
from llmbook.attention import sliding_window_mask, strided_mask  # noqa: E402


def test_sliding_window_mask_allows_the_last_window_keys():
    mask = sliding_window_mask(6, 3)
    for i in range(6):
        for j in range(6):
            assert bool(mask[i, j]) == (i - 3 < j <= i)
    assert torch.equal(sliding_window_mask(5, 5), causal_mask(5))  # a window as long as T is causal
    assert torch.equal(sliding_window_mask(5, 100), causal_mask(5))


def test_sliding_window_mask_with_cached_past_and_global_tokens():
    mask = sliding_window_mask(2, 3, past=4)  # queries at positions 4 and 5 over keys 0..5
    assert mask.int().tolist() == [[0, 0, 1, 1, 1, 0], [0, 0, 0, 1, 1, 1]]
    assert torch.equal(sliding_window_mask(6, 3, past=0), sliding_window_mask(6, 3))
    sinks = sliding_window_mask(6, 2, n_global=1)
    assert sinks[:, 0].all() and sinks[5].int().tolist() == [1, 0, 0, 0, 1, 1]
    assert not sinks.triu(1).any()  # still causal


def test_strided_mask_is_causal_local_plus_every_stride_th_key():
    mask = strided_mask(9, 3)
    assert not mask.triu(1).any()
    assert mask[8].int().tolist() == [0, 0, 1, 0, 0, 1, 1, 1, 1]  # keys 8, 7, 6 local; 5 and 2 strided
    assert int(strided_mask(64, 8)[63].sum()) < 2 * 8 + 1


@pytest.mark.parametrize("call, message", [
    (lambda: sliding_window_mask(4, 0), "window >= 1"),
    (lambda: sliding_window_mask(0, 2), "T >= 1"),
    (lambda: sliding_window_mask(4, 2, n_global=-1), "n_global=-1"),
    (lambda: strided_mask(4, 0), "stride >= 1"),
])
def test_bad_mask_arguments_are_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# ------------------------------------------------------------------ tiled attention, online softmax
def _dense_float64(q, k, v, causal):
    """softmax(Q K^T / sqrt(d)) V in float64, the whole score matrix at once (the last T_q of T_k positions)."""
    q, k, v = q.double(), k.double(), v.double()
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    if causal:
        T_q, T_k = q.size(-2), k.size(-2)
        allowed = torch.arange(T_k)[None, :] <= torch.arange(T_k - T_q, T_k)[:, None]
        scores = scores.masked_fill(~allowed, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


@pytest.mark.parametrize("block_size", [1, 3, 8, 64])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("T_q, T_k", [(37, 37), (5, 29), (1, 12)])
def test_tiled_attention_equals_dense_attention(block_size, causal, T_q, T_k):
    g = torch.Generator().manual_seed(T_q + T_k)
    q = torch.randn(2, 3, T_q, 16, generator=g)
    k, v = torch.randn(2, 3, T_k, 16, generator=g), torch.randn(2, 3, T_k, 12, generator=g)
    want = _dense_float64(q, k, v, causal)
    got = tiled_attention(q, k, v, block_size=block_size, causal=causal)
    assert got.shape == (2, 3, T_q, 12) and got.dtype == torch.float32
    torch.testing.assert_close(got.double(), want, atol=1e-6, rtol=0)
    got64 = tiled_attention(q.double(), k.double(), v.double(), block_size=block_size, causal=causal)
    torch.testing.assert_close(got64, want, atol=1e-12, rtol=0)


def test_tiled_attention_equals_torch_sdpa_causal():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 2, 50, 8, generator=g) for _ in range(3))
    want = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(tiled_attention(q, k, v, block_size=16, causal=True), want, atol=1e-6, rtol=0)


def test_tiled_attention_does_not_overflow_with_huge_scores():
    """Scores near 10^4: exp(score) is inf in float32, exp(score - running max) is not."""
    g = torch.Generator().manual_seed(1)
    q, k, v = torch.randn(1, 20, 8, generator=g) * 100, torch.randn(1, 20, 8, generator=g) * 100, \
        torch.randn(1, 20, 4, generator=g)
    assert torch.isinf(torch.exp(q @ k.transpose(-2, -1) / math.sqrt(8))).any()  # the naive formula would fail
    got = tiled_attention(q, k, v, block_size=6, causal=True)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got.double(), _dense_float64(q, k, v, True), atol=1e-5, rtol=0)


def test_tiled_attention_refuses_bad_input():
    q = torch.randn(1, 4, 8)
    with pytest.raises(ValueError, match="block_size must be >= 1, got 0"):
        tiled_attention(q, q, q, block_size=0)
    with pytest.raises(ValueError, match="T_q=4 > T_k=3"):
        tiled_attention(q, q[:, :3], q[:, :3], causal=True)
    with pytest.raises(ValueError, match="same length"):
        tiled_attention(q, q, q[:, :3])
