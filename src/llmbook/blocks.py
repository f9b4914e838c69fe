"""The building blocks of a Transformer layer: feed-forward network, encoder and decoder blocks.

Each sublayer (attention or feed-forward) sits on a residual path with a LayerNorm, placed either
after the addition (post-LN, the original Transformer and BERT: ``LN(x + f(x))``) or before the
sublayer (pre-LN, GPT-2 and most modern LLMs: ``x + f(LN(x))``).

Taught in chapter 4, Encoder and decoder.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from .attention import MultiHeadAttention

ACTIVATIONS = {
    "gelu": F.gelu,  # exact, as in BERT
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),  # GPT-2's "gelu_new"
    "relu": F.relu,  # the original Transformer
}


def activation_fn(name: str):
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


class FeedForward(nn.Module):
    """Position-wise feed-forward network: W2 act(W1 x + b1) + b2, applied to each token alone."""

    def __init__(self, d_model: int, d_ff: int, activation: str = "gelu", bias: bool = True):
        super().__init__()
        self.fc1 = nn.Linear(d_model, d_ff, bias=bias)
        self.fc2 = nn.Linear(d_ff, d_model, bias=bias)
        self.act = activation_fn(activation)

    def forward(self, x):  # (B, T, d_model) -> (B, T, d_model)
        return self.fc2(self.act(self.fc1(x)))


def _feed_forward(d_model, d_ff, activation, bias, layer_norm_eps):
    """(FeedForward, its LayerNorm), or (None, None) for d_ff=0: an attention-only block, the kind
    of model in which Elhage et al. (2021) and Olsson et al. (2022) study induction heads."""
    if d_ff == 0:
        return None, None
    return FeedForward(d_model, d_ff, activation, bias=bias), nn.LayerNorm(d_model, eps=layer_norm_eps)


class _ResidualBlock(nn.Module):
    """What encoder and decoder blocks share: a sublayer on a residual path with a LayerNorm."""

    def __init__(self, norm_first: bool, dropout: float):
        super().__init__()
        self.norm_first = norm_first
        self.dropout = nn.Dropout(dropout)

    def _sublayer(self, x, norm, fn):
        """x + f(LN(x)) (pre-LN) or LN(x + f(x)) (post-LN); fn returns (output, extra)."""
        if self.norm_first:
            out, extra = fn(norm(x))
            return x + self._drop(out), extra
        out, extra = fn(x)
        return norm(x + self._drop(out)), extra

    def _drop(self, x):
        # skipping a no-op dropout call saves ~6% of a cached decode step at the book's sizes
        return self.dropout(x) if self.training and self.dropout.p > 0 else x


class EncoderBlock(_ResidualBlock):
    """Bidirectional self-attention then feed-forward, each with a residual and a LayerNorm."""

    def __init__(self, d_model, n_heads, d_ff, dropout=0.0, norm_first=True, activation="gelu",
                 layer_norm_eps=1e-5, bias=True, rotary=None):
        super().__init__(norm_first, dropout)
        self.attn = MultiHeadAttention(d_model, n_heads, dropout, bias=bias, rotary=rotary)
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.ff, self.norm2 = _feed_forward(d_model, d_ff, activation, bias, layer_norm_eps)

    def forward(self, x, mask=None, need_weights=False, positions=None):
        """x: (B, T, d_model); mask: bool, True = may attend. Returns (x, attention weights or None)."""
        x, weights = self._sublayer(x, self.norm1, lambda h: self.attn(
            h, mask=mask, need_weights=need_weights, positions=positions))
        if self.ff is not None:
            x, _ = self._sublayer(x, self.norm2, lambda h: (self.ff(h), None))
        return x, weights


class DecoderBlock(_ResidualBlock):
    """Causal (masked) self-attention, optional cross-attention to an encoder's output, feed-forward.

    Without cross-attention this is a GPT block. Returns (x, self weights, cross weights).
    """

    def __init__(self, d_model, n_heads, d_ff, dropout=0.0, norm_first=True, activation="gelu",
                 layer_norm_eps=1e-5, bias=True, cross_attention=False, rotary=None):
        super().__init__(norm_first, dropout)
        self.self_attn = MultiHeadAttention(d_model, n_heads, dropout, bias=bias, rotary=rotary)
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.cross_attn = MultiHeadAttention(d_model, n_heads, dropout, bias=bias) if cross_attention else None
        self.norm_cross = nn.LayerNorm(d_model, eps=layer_norm_eps) if cross_attention else None
        self.ff, self.norm2 = _feed_forward(d_model, d_ff, activation, bias, layer_norm_eps)

    def forward(self, x, memory=None, self_mask=None, memory_mask=None, need_weights=False,
                kv_cache=None, cross_cache=None, positions=None):
        """x: (B, T, d_model); memory: encoder output (B, S, d_model) for cross-attention.

        self_mask is combined with the causal mask; memory_mask (B, 1, 1, S) hides padded source
        tokens. kv_cache / cross_cache are LayerKVCache objects used during generation.
        """
        x, w_self = self._sublayer(x, self.norm1, lambda h: self.self_attn(
            h, mask=self_mask, need_weights=need_weights, kv_cache=kv_cache, causal=True, positions=positions))
        w_cross = None
        if self.cross_attn is not None:
            if memory is None:
                raise ValueError("this decoder block has cross-attention and needs the encoder memory")
            x, w_cross = self._sublayer(x, self.norm_cross, lambda h: self.cross_attn(
                h, context=memory, mask=memory_mask, need_weights=need_weights, kv_cache=cross_cache))
        if self.ff is not None:
            x, _ = self._sublayer(x, self.norm2, lambda h: (self.ff(h), None))
        return x, w_self, w_cross
