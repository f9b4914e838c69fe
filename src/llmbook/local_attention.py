"""Sliding-window attention computed block by block, so that its cost grows linearly with the length.

Full causal attention scores every query against every earlier key: O(T^2 d) time and a (T, T)
score matrix. Masking the scores down to a window of ``w`` keys (``attention.sliding_window_mask``)
gives the same *result* as local attention but still computes all T^2 scores. Here the queries are
cut into blocks of ``w``; the queries of block c can only see keys of blocks c - 1 and c, so each
block needs a (w, 2w) score matrix: O(T w d) time and O(T w) memory in total.

Taught in chapter 7, Inference engineering.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def sliding_window_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int) -> torch.Tensor:
    """Causal attention in which query i sees keys i - window + 1 .. i; returns (..., T, d_v).

    q, k: (..., T, d_k), v: (..., T, d_v). Equals ``scaled_dot_product_attention(q, k, v,
    sliding_window_mask(T, window))[0]`` up to rounding, with O(T * window) work.
    Raises ValueError for window < 1 or for q, k, v of different lengths.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    T = q.size(-2)
    if k.size(-2) != T or v.size(-2) != T:
        raise ValueError(f"q, k and v must have the same length T (self-attention), got "
                         f"{q.size(-2)}, {k.size(-2)} and {v.size(-2)}")
    w = min(window, T)
    tail = (-T) % w  # pad the end so that T becomes a multiple of w
    n_blocks = (T + tail) // w
    q_blocks = F.pad(q, (0, 0, 0, tail)).unflatten(-2, (n_blocks, w))  # (..., n_blocks, w, d_k)
    # w zero keys in front stand for "block -1"; windows of 2w keys, one per block, overlap by w
    k_blocks = F.pad(k, (0, 0, w, tail)).unfold(-2, 2 * w, w).transpose(-2, -1)  # (..., n_blocks, 2w, d_k)
    v_blocks = F.pad(v, (0, 0, w, tail)).unfold(-2, 2 * w, w).transpose(-2, -1)  # (..., n_blocks, 2w, d_v)

    # query a of block c sits at c*w + a, key b of its window at (c - 1)*w + b: offset w + a - b
    a = torch.arange(w, device=q.device)[:, None]
    b = torch.arange(2 * w, device=q.device)[None, :]
    offset = w + a - b  # (w, 2w)
    in_window = (offset >= 0) & (offset < window)
    key_exists = (torch.arange(n_blocks, device=q.device)[:, None, None] * w + b - w) >= 0  # not the front padding
    mask = in_window & key_exists  # (n_blocks, w, 2w)
    out = F.scaled_dot_product_attention(q_blocks, k_blocks, v_blocks, attn_mask=mask)  # (..., n_blocks, w, d_v)
    return out.flatten(-3, -2)[..., :T, :]
