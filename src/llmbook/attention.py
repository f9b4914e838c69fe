"""Scaled dot-product attention, its masks, multi-head (and grouped-query) attention, and a tiled
attention with an online softmax (FlashAttention's algorithm).

Mask convention (the same as the boolean ``attn_mask`` of
``torch.nn.functional.scaled_dot_product_attention``): **True means "may attend"**.
A mask broadcasts against attention scores of shape (B, H, T_q, T_k).

Taught in chapters 3, Attention, step by step, and 7, Inference engineering.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def causal_mask(T: int, device=None, past: int = 0) -> torch.Tensor:
    """Bool mask (T, past + T): query i may attend to key j when j <= i + past.

    With ``past=0`` this is the lower triangle: a position sees itself and the past, never
    the future. ``past`` counts keys already in a KV cache before these T queries.
    """
    if T < 1 or past < 0:
        raise ValueError(f"causal_mask needs T >= 1 and past >= 0, got T={T}, past={past}")
    return torch.ones(T, past + T, dtype=torch.bool, device=device).tril(diagonal=past)


def _query_key_offsets(T: int, past: int, device) -> torch.Tensor:
    """(T, past + T) int tensor: query position minus key position, (past + i) - j."""
    query = torch.arange(past, past + T, device=device)[:, None]
    key = torch.arange(past + T, device=device)[None, :]
    return query - key


def sliding_window_mask(T: int, window: int, device=None, past: int = 0, n_global: int = 0) -> torch.Tensor:
    """Bool mask (T, past + T) of causal local attention: each query sees the last ``window`` keys.

    Query i (at position past + i) may attend to key j when 0 <= (past + i) - j < window, that is
    itself and the window - 1 keys before it, or when j < n_global: the first n_global positions
    stay visible to every later query (Longformer's global tokens, the "attention sinks" of
    streaming LLMs). Each row allows at most window + n_global keys, so a kernel that skips the
    masked keys needs O(T * (window + n_global)) time instead of O(T^2) (``llmbook.local_attention``
    does so for n_global = 0); full attention with this mask still computes all T^2 scores.
    Raises ValueError for T < 1, window < 1, past < 0 or n_global < 0.
    """
    if T < 1 or window < 1 or past < 0 or n_global < 0:
        raise ValueError(f"sliding_window_mask needs T >= 1, window >= 1, past >= 0 and n_global >= 0, "
                         f"got T={T}, window={window}, past={past}, n_global={n_global}")
    offset = _query_key_offsets(T, past, device)
    local = (offset >= 0) & (offset < window)
    is_global = (torch.arange(past + T, device=device) < n_global)[None, :] & (offset >= 0)
    return local | is_global


def strided_mask(T: int, stride: int, device=None) -> torch.Tensor:
    """Bool mask (T, T) of the strided sparse pattern (Child et al., 2019), causal.

    Query i may attend to key j <= i when it is one of the last ``stride`` positions
    (i - j < stride) or lies a multiple of ``stride`` back ((i - j) % stride == 0). With
    stride ~ sqrt(T) each row allows about 2 sqrt(T) keys. Raises ValueError for T < 1 or stride < 1.
    """
    if T < 1 or stride < 1:
        raise ValueError(f"strided_mask needs T >= 1 and stride >= 1, got T={T}, stride={stride}")
    offset = _query_key_offsets(T, 0, device)
    return (offset >= 0) & ((offset < stride) | (offset % stride == 0))


def padding_mask(lengths_or_ids: torch.Tensor, T_or_pad_id: int) -> torch.Tensor:
    """Bool mask (B, 1, 1, T) of the keys that are real tokens, not padding.

    Call it as ``padding_mask(lengths, T)`` with lengths (B,) for right-padded batches, or as
    ``padding_mask(ids, pad_id)`` with ids (B, T). Raises ValueError on a length outside [0, T].
    """
    x = lengths_or_ids
    if x.dim() == 1:
        T = int(T_or_pad_id)
        if (x < 0).any() or (x > T).any():
            raise ValueError(f"lengths must lie in [0, T={T}], got {x.tolist()}")
        keep = torch.arange(T, device=x.device)[None, :] < x[:, None]
    elif x.dim() == 2:
        keep = x != T_or_pad_id
    else:
        raise ValueError(f"padding_mask takes lengths (B,) or ids (B, T), got shape {tuple(x.shape)}")
    return keep[:, None, None, :]


def check_mask(mask: torch.Tensor, scores_shape: tuple[int, ...]) -> None:
    """Raise unless `mask` is a bool tensor that broadcasts to `scores_shape` = (B, H, T_q, T_k)."""
    if mask.dtype != torch.bool:
        raise TypeError(f"attention mask must be bool (True = may attend), got dtype {mask.dtype}")
    try:
        shape = torch.broadcast_shapes(mask.shape, scores_shape)
    except RuntimeError:
        shape = None
    if shape != torch.Size(scores_shape):
        raise ValueError(
            f"attention mask of shape {tuple(mask.shape)} does not broadcast to the scores' "
            f"shape (B, H, T_q, T_k) = {tuple(scores_shape)}"
        )


def scaled_dot_product_attention(q, k, v, mask=None, dropout_p: float = 0.0):
    """softmax(Q K^T / sqrt(d_k)) V, computed explicitly; returns (output, weights).

    q: (..., T_q, d_k), k: (..., T_k, d_k), v: (..., T_k, d_v); mask: bool, True = may attend,
    broadcastable to (..., T_q, T_k). Returns output (..., T_q, d_v) and weights (..., T_q, T_k)
    whose rows sum to 1, with masked keys at exactly 0 (a row with no allowed key is all 0).
    With dropout_p > 0 (always applied: F.dropout's training flag is left at True) the returned
    weights are the dropped-out ones, rescaled by 1 / (1 - dropout_p), whose rows no longer sum to 1.
    """
    d_k = q.size(-1)
    scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)  # (..., T_q, T_k)
    if mask is not None:
        check_mask(mask, scores.shape)
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    if mask is not None:
        weights = weights.nan_to_num(0.0)  # a fully masked row gives 0/0; it attends to nothing
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    return weights @ v, weights


def tiled_attention(q, k, v, block_size: int = 64, causal: bool = False):
    """softmax(Q K^T / sqrt(d_k)) V, one (block_size x block_size) tile of scores at a time.

    FlashAttention's algorithm (Dao et al., 2022) in plain PyTorch: for each block of queries, the
    blocks of keys are visited in order while an *online softmax* keeps, for every query row, the
    largest score seen so far (row_max), the sum of exp(score - row_max) (row_sum) and the sum of
    exp(score - row_max) v (acc). The full (T_q, T_k) matrix of scores is never formed; the result
    equals the dense one up to float rounding. (The speed of the real kernel comes from keeping
    tiles in fast on-chip memory, which a Python loop cannot show; the arithmetic is the same.)

    q: (..., T_q, d_k), k: (..., T_k, d_k), v: (..., T_k, d_v) -> (..., T_q, d_v). causal=True lets
    query i see key j <= i + T_k - T_q (the queries are the last T_q positions, as after a KV cache)
    and skips the tiles that lie wholly above that diagonal. Raises ValueError for block_size < 1,
    shapes that do not fit, or causal attention with more queries than keys.
    """
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    if k.shape[-2] != v.shape[-2] or q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}: keys and values need the "
                         f"same length, queries and keys the same width")
    T_q, T_k = q.shape[-2], k.shape[-2]
    if causal and T_q > T_k:
        raise ValueError(f"causal attention needs at least as many keys as queries, got T_q={T_q} > T_k={T_k}")
    q = q / math.sqrt(q.shape[-1])
    blocks = [_attend_query_block(q[..., i:i + block_size, :], k, v, i + T_k - T_q if causal else None, block_size)
              for i in range(0, T_q, block_size)]
    return torch.cat(blocks, dim=-2)


def _attend_query_block(q, k, v, first_position, block_size):
    """Attention of one block of (already scaled) queries to all keys, visited block by block.

    first_position: the position of the block's first query among the keys when causal, else None.
    """
    rows = q.shape[-2]
    row_max = q.new_full((*q.shape[:-1], 1), float("-inf"))  # the largest score seen so far
    row_sum = q.new_zeros((*q.shape[:-1], 1))  # sum of exp(score - row_max)
    acc = q.new_zeros((*q.shape[:-1], v.shape[-1]))  # sum of exp(score - row_max) * value
    end = k.shape[-2] if first_position is None else first_position + rows  # causal: later keys are all hidden
    for j in range(0, end, block_size):
        s = q @ k[..., j:j + block_size, :].transpose(-2, -1)  # one (rows, block) tile of scores
        if first_position is not None:  # hide key j' from query i' when j' > position of i'
            query_pos = torch.arange(first_position, first_position + rows, device=q.device)[:, None]
            s = s.masked_fill(torch.arange(j, j + s.shape[-1], device=q.device) > query_pos, float("-inf"))
        new_max = torch.maximum(row_max, s.amax(dim=-1, keepdim=True))
        # row_sum and acc hold terms weighed by exp(score - row_max); times exp(row_max - new_max)
        # they are weighed by exp(score - new_max), the scale of this tile's terms (exp(-inf) = 0 at first)
        rescale = torch.exp(row_max - new_max)
        p = torch.exp(s - new_max)  # every entry <= 1: no overflow, however large the scores
        row_sum = row_sum * rescale + p.sum(dim=-1, keepdim=True)
        acc = acc * rescale + p @ v[..., j:j + block_size, :]
        row_max = new_max
    return acc / row_sum  # divide once, at the end: the softmax's normalisation


class MultiHeadAttention(nn.Module):
    """Multi-head attention: project, split into heads, attend, concatenate, project with W^O.

    Self-attention when ``context`` is None, cross-attention (queries from x, keys and values from
    context) otherwise. W^Q, W^K, W^V are stored stacked in one ``in_proj``, as in
    ``torch.nn.MultiheadAttention``, so self-attention needs one matrix product.

    Grouped-query attention (Ainslie et al., 2023): with ``n_kv_heads`` < ``n_heads`` key/value heads,
    each group of n_heads / n_kv_heads query heads shares one key and one value head (query head h
    uses key/value head h // group, as in Llama). W^K and W^V shrink to (n_kv_heads d_head, d_model),
    so in_proj is (d_model + 2 n_kv_heads d_head, d_model), and a KV cache holds n_kv_heads heads:
    n_heads / n_kv_heads times less memory. n_kv_heads=1 is multi-query attention (Shazeer, 2019);
    None (the default) means n_heads, ordinary multi-head attention with in_proj (3 d_model, d_model).
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0, bias: bool = True, rotary=None,
                 n_kv_heads: int | None = None):
        super().__init__()
        if n_heads < 1 or d_model % n_heads != 0:
            raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads}")
        n_kv_heads = n_heads if n_kv_heads is None else n_kv_heads
        if not 1 <= n_kv_heads <= n_heads or n_heads % n_kv_heads:
            raise ValueError(f"n_kv_heads={n_kv_heads} must divide n_heads={n_heads} (1 <= n_kv_heads <= n_heads)")
        self.d_model, self.n_heads, self.d_head = d_model, n_heads, d_model // n_heads
        self.n_kv_heads = n_kv_heads
        self.dropout = dropout
        self.in_proj = nn.Linear(d_model, d_model + 2 * self._kv_width, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)
        self.rotary = rotary  # a positional.RotaryEmbedding, or None

    @property
    def _kv_width(self) -> int:  # the width of all key (or all value) heads together
        return self.n_kv_heads * self.d_head

    def _split(self, x):  # (B, T, heads * d_head) -> (B, heads, T, d_head)
        B, T, _ = x.shape
        return x.view(B, T, -1, self.d_head).transpose(1, 2)

    def _self_qkv(self, x, kv_cache, positions):
        """Queries, keys and values from x (one matrix product); with a cache, keys and values of
        the earlier positions come first. Rotary embeddings turn q and k by their positions."""
        T = x.size(1)
        q, k, v = self.in_proj(x).split([self.d_model, self._kv_width, self._kv_width], dim=-1)
        q, k, v = self._split(q), self._split(k), self._split(v)  # (B, H, T, d_head), k and v (B, H_kv, T, d_head)
        if self.rotary is not None:
            if positions is None:  # the new tokens follow the cached ones
                past = kv_cache.length if kv_cache is not None else 0
                positions = torch.arange(past, past + T, device=x.device)
            q, k = self.rotary(q, positions), self.rotary(k, positions)
        if kv_cache is not None:
            k, v = kv_cache.append(k, v)
        return q, k, v

    def _cross_qkv(self, x, context, kv_cache):
        """Queries from x (the first rows of in_proj), keys and values from context (the rest).
        The context does not change between decoding steps, so a filled cache is reused as is."""
        d, w, b = self.d_model, self.in_proj.weight, self.in_proj.bias
        q = self._split(F.linear(x, w[:d], None if b is None else b[:d]))
        if kv_cache is not None and kv_cache.length > 0:
            return q, kv_cache.keys, kv_cache.values
        k, v = F.linear(context, w[d:], None if b is None else b[d:]).split(self._kv_width, dim=-1)
        k, v = self._split(k), self._split(v)
        if kv_cache is not None:
            k, v = kv_cache.append(k, v)
        return q, k, v

    def forward(self, x, context=None, mask=None, return_attention=False, kv_cache=None, causal=False,
                positions=None):
        """x: (B, T, d_model); context: (B, S, d_model) or None; mask: bool, True = may attend,
        broadcastable to (B, H, T, T_k). ``causal=True`` adds the causal mask (self-attention only).
        ``positions`` (T,) or (B, T) are used by rotary embeddings (default: after the cache).

        Returns (output (B, T, d_model), weights (B, H, T, T_k) if return_attention else None).
        """
        if x.dim() != 3 or x.size(-1) != self.d_model:
            raise ValueError(f"expected x of shape (B, T, {self.d_model}), got {tuple(x.shape)}")
        if causal and context is not None:
            raise ValueError("causal=True applies to self-attention only, not cross-attention")
        B, T, _ = x.shape
        if context is None:
            q, k, v = self._self_qkv(x, kv_cache, positions)
        else:
            q, k, v = self._cross_qkv(x, context, kv_cache)
        if mask is not None:
            check_mask(mask, (B, self.n_heads, T, k.size(2)))
        p = self.dropout if self.training else 0.0
        if return_attention:  # the explicit formula: it has the weights to return
            k, v = repeat_kv(k, self.n_heads), repeat_kv(v, self.n_heads)
            out, weights = scaled_dot_product_attention(q, k, v, _with_causal(mask, causal, q, k), dropout_p=p)
        else:  # PyTorch's fused kernel, which shares key/value heads itself
            out, weights = _fused_attention(q, k, v, mask, causal, p), None
        out = out.transpose(1, 2).reshape(B, T, self.d_model)  # (B, H, T, d_head) -> (B, T, d_model)
        return self.out_proj(out), weights


def repeat_kv(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """(B, H_kv, T, d) -> (B, n_heads, T, d): each key/value head repeated for the n_heads / H_kv
    query heads of its group (head h gets head h // group); unchanged when H_kv = n_heads."""
    group = n_heads // x.size(1)
    return x if group == 1 else x.repeat_interleave(group, dim=1)


def _with_causal(mask, causal, q, k):
    """mask and (if causal) the causal mask of q's T queries after k's T_k - T cached keys."""
    if not causal:
        return mask
    T = q.size(2)
    cm = causal_mask(T, q.device, past=k.size(2) - T)
    return cm if mask is None else mask & cm


def _fused_attention(q, k, v, mask, causal, dropout_p):
    """F.scaled_dot_product_attention with our masks.

    Its own is_causal flag aligns the triangle top-left, which is right only with no cached keys
    (T_q == T_k) and no other mask; otherwise the causal mask is passed explicitly. A single query
    after a cache may see every key and needs no causal mask at all. With fewer key/value heads than
    query heads (grouped-query attention), enable_gqa has the kernel share them without copying.
    """
    gqa = {"enable_gqa": True} if k.size(1) != q.size(1) else {}  # the ordinary call stays as it was
    if causal and mask is None and q.size(2) == k.size(2):
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True, **gqa)
    if causal and q.size(2) > 1:
        mask = _with_causal(mask, causal, q, k)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p, **gqa)
