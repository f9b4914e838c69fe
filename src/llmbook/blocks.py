"""The building blocks of a Transformer layer: feed-forward network, encoder and decoder blocks.

Each sublayer (attention or feed-forward) sits on a residual path with a LayerNorm, placed either
after the addition (post-LN, the original Transformer and BERT: ``LN(x + f(x))``) or before the
sublayer (pre-LN, GPT-2 and most modern LLMs: ``x + f(LN(x))``).

A modern decoder (Llama and its descendants) changes two of the parts: RMSNorm in place of
LayerNorm, and a gated feed-forward network (SwiGLU) in place of the two-layer MLP; a decoder block
takes both as options (``norm="rmsnorm"``, ``gated_ffn=True``). ``MoEFeedForward`` is the
feed-forward network of a mixture-of-experts model (Switch, Mixtral): several experts, a router
that picks top_k of them per token, and a load-balancing loss; a decoder block builds one with
``n_experts > 0`` (``GPTConfig(n_experts=..., moe_top_k=...)``).

Taught in chapter 4, Encoder and decoder; the mixture of experts in chapter 8, Scaling and unit scaling.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .attention import MultiHeadAttention

ACTIVATIONS = {
    "gelu": F.gelu,  # exact, as in BERT
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),  # GPT-2's "gelu_new"
    "relu": F.relu,  # the original Transformer
    "silu": F.silu,  # x * sigmoid(x), the gate of SwiGLU (Llama)
}
NORMS = ("layernorm", "rmsnorm")


def activation_fn(name: str):
    """The activation function called `name`; ValueError lists the names there are."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


class RMSNorm(nn.Module):
    """Root-mean-square normalisation (Zhang and Sennrich, 2019): weight * x / sqrt(mean(x^2) + eps).

    LayerNorm without the mean subtraction and without the bias: cheaper, and in LLMs as good.
    """

    def __init__(self, d_model: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model))

    def forward(self, x):  # (..., d_model) -> (..., d_model)
        x32 = x.float()  # in float16 the mean of squares can overflow
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * normed.type_as(x)


def norm_layer(kind: str, d_model: int, eps: float) -> nn.Module:
    """A LayerNorm (kind "layernorm") or an RMSNorm ("rmsnorm") over the last dimension."""
    if kind not in NORMS:
        raise ValueError(f"unknown norm {kind!r}; choose one of {NORMS}")
    return nn.LayerNorm(d_model, eps=eps) if kind == "layernorm" else RMSNorm(d_model, eps)


class FeedForward(nn.Module):
    """Position-wise feed-forward network: W2 act(W1 x + b1) + b2, applied to each token alone."""

    def __init__(self, d_model: int, d_ff: int, activation: str = "gelu", bias: bool = True):
        super().__init__()
        self.fc1 = nn.Linear(d_model, d_ff, bias=bias)
        self.fc2 = nn.Linear(d_ff, d_model, bias=bias)
        self.act = activation_fn(activation)

    def forward(self, x):  # (B, T, d_model) -> (B, T, d_model)
        return self.fc2(self.act(self.fc1(x)))


class GatedFeedForward(nn.Module):
    """Gated feed-forward network (Shazeer, 2020): W_down (act(W_gate x) * W_up x).

    One projection, passed through the activation, gates another elementwise. With activation
    "silu" this is SwiGLU, the feed-forward network of Llama, Mistral and Qwen (their gate_proj,
    up_proj and down_proj). Three matrices instead of two: for the same parameter count,
    d_ff is usually 2/3 of the MLP's (Llama: about 8/3 d_model).
    """

    def __init__(self, d_model: int, d_ff: int, activation: str = "silu", bias: bool = False):
        super().__init__()
        self.gate = nn.Linear(d_model, d_ff, bias=bias)
        self.up = nn.Linear(d_model, d_ff, bias=bias)
        self.down = nn.Linear(d_ff, d_model, bias=bias)
        self.act = activation_fn(activation)

    def forward(self, x):  # (B, T, d_model) -> (B, T, d_model)
        return self.down(self.act(self.gate(x)) * self.up(x))


class MoEFeedForward(nn.Module):
    """A mixture of experts: n_experts feed-forward networks and a router that sends each token to
    top_k of them (Shazeer et al., 2017; GShard, Lepikhin et al., 2020; Switch, Fedus et al., 2021).

    The router gives each token probabilities p = softmax(W_r x) over the experts; the token's
    output is sum over its top_k experts e of w_e FFN_e(x), with w the chosen probabilities
    renormalised to sum to 1 (for top_k = 1, w = p_e itself, as in Switch, so that the router
    still learns from the main loss). Parameters grow n_experts-fold, the work per token only
    top_k-fold. No expert capacity: every token reaches all its top_k experts (Switch drops the
    tokens beyond a capacity; here nothing is dropped). After each forward, ``aux_loss`` holds the
    load-balancing loss (see load_balancing_loss) to add, times a small weight, to the training loss.
    """

    def __init__(self, d_model: int, d_ff: int, n_experts: int, top_k: int = 2, activation: str = "gelu",
                 bias: bool = True, gated: bool = False):
        super().__init__()
        if not 1 <= top_k <= n_experts:
            raise ValueError(f"top_k={top_k} must lie in [1, n_experts={n_experts}]")
        self.top_k = top_k
        self.router = nn.Linear(d_model, n_experts, bias=False)
        ffn = GatedFeedForward if gated else FeedForward
        self.experts = nn.ModuleList(ffn(d_model, d_ff, activation, bias=bias) for _ in range(n_experts))
        self.aux_loss = None

    def forward(self, x):  # (B, T, d_model) -> (B, T, d_model)
        tokens = x.reshape(-1, x.size(-1))  # (N, d_model): routing is per token
        probs = self.router(tokens).softmax(dim=-1)  # (N, n_experts)
        weights, chosen = probs.topk(self.top_k, dim=-1)  # (N, top_k) each
        if self.top_k > 1:
            weights = weights / weights.sum(dim=-1, keepdim=True)
        out = torch.zeros_like(tokens)
        for e, expert in enumerate(self.experts):
            token, slot = (chosen == e).nonzero(as_tuple=True)  # the tokens that picked expert e
            if token.numel():  # each expert runs on its own tokens only
                out.index_add_(0, token, weights[token, slot, None] * expert(tokens[token]))
        self.aux_loss = load_balancing_loss(probs, chosen)
        return out.view_as(x)


def load_balancing_loss(probs: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
    """Switch's auxiliary loss, n_experts * sum_e f_e P_e (Fedus et al., 2021).

    probs (N, n_experts): the router's probabilities; chosen (N, top_k): the experts picked. f_e is
    the fraction of the N top_k assignments that went to expert e (a count: no gradient), P_e the
    mean probability of e. The loss is 1 when routing is uniform and n_experts when one expert takes
    everything; its gradient (through P) lowers the probability of the overloaded experts.
    """
    n_experts = probs.size(-1)
    f = torch.bincount(chosen.flatten(), minlength=n_experts).to(probs.dtype) / chosen.numel()
    return n_experts * (f * probs.mean(dim=0)).sum()


def _feed_forward(d_model, d_ff, activation, bias, layer_norm_eps, norm="layernorm", gated=False, n_experts=0,
                  top_k=2):
    """(feed-forward network, its norm), or (None, None) for d_ff=0: an attention-only block, the kind
    of model in which Elhage et al. (2021) and Olsson et al. (2022) study induction heads.

    n_experts > 0 gives a MoEFeedForward of n_experts such networks (each of width d_ff) with top_k routing.
    """
    if d_ff == 0:
        if n_experts:
            raise ValueError(f"n_experts={n_experts} needs a feed-forward network, but d_ff=0")
        return None, None
    if n_experts:
        ffn = MoEFeedForward(d_model, d_ff, n_experts, top_k, activation, bias=bias, gated=gated)
    else:
        ffn = (GatedFeedForward if gated else FeedForward)(d_model, d_ff, activation, bias=bias)
    return ffn, norm_layer(norm, d_model, layer_norm_eps)


class BlockOutput(NamedTuple):
    """What every block returns: the new hidden states and, when asked for, its attention weights."""

    hidden_states: torch.Tensor  # (B, T, d_model)
    attention: torch.Tensor | None  # self-attention weights (B, H, T, T_k)
    cross_attention: torch.Tensor | None  # (B, H, T, S); None in a block without cross-attention


class _Block(nn.Module):
    """What encoder and decoder blocks share: residual dropout, and the self-attention and
    feed-forward sublayers, each written as its formula with the pre-LN and post-LN branches side by side."""

    def __init__(self, norm_first: bool, dropout: float):
        super().__init__()
        self.norm_first = norm_first
        self.dropout = nn.Dropout(dropout)

    def drop(self, x):
        # skipping a no-op dropout call saves ~6% of a cached decode step at the book's sizes
        return self.dropout(x) if self.training and self.dropout.p > 0 else x

    def _self_attention_sublayer(self, x, **attn_kw):
        """x + attn(LN(x)) (pre-LN) or LN(x + attn(x)) (post-LN); returns (x, attention weights)."""
        if self.norm_first:
            a, weights = self.attn(self.norm1(x), **attn_kw)
            return x + self.drop(a), weights
        a, weights = self.attn(x, **attn_kw)
        return self.norm1(x + self.drop(a)), weights

    def _feed_forward_sublayer(self, x):
        """x + FFN(LN(x)) (pre-LN) or LN(x + FFN(x)) (post-LN); x itself in a block without FFN."""
        if self.ff is None:
            return x
        if self.norm_first:
            return x + self.drop(self.ff(self.norm2(x)))
        return self.norm2(x + self.drop(self.ff(x)))


class EncoderBlock(_Block):
    """Bidirectional self-attention then feed-forward, each with a residual and a LayerNorm."""

    def __init__(self, d_model, n_heads, d_ff, dropout=0.0, norm_first=True, activation="gelu",
                 layer_norm_eps=1e-5, bias=True, rotary=None):
        super().__init__(norm_first, dropout)
        self.attn = MultiHeadAttention(d_model, n_heads, dropout, bias=bias, rotary=rotary)
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.ff, self.norm2 = _feed_forward(d_model, d_ff, activation, bias, layer_norm_eps)

    def forward(self, x, *, mask=None, return_attention=False, positions=None) -> BlockOutput:
        """x: (B, T, d_model); mask: bool, True = may attend. Returns BlockOutput (no cross-attention)."""
        x, weights = self._self_attention_sublayer(x, mask=mask, return_attention=return_attention,
                                                   positions=positions)
        return BlockOutput(self._feed_forward_sublayer(x), weights, None)


class DecoderBlock(_Block):
    """Causal (masked) self-attention, optional cross-attention to an encoder's output, feed-forward.

    Without cross-attention this is a GPT block. The options of a modern decoder: n_kv_heads
    (grouped-query attention, see MultiHeadAttention), norm="rmsnorm" (RMSNorm in every place of a
    LayerNorm), gated_ffn=True (GatedFeedForward; SwiGLU with activation="silu") and n_experts > 0
    (a MoEFeedForward of n_experts networks, gated ones with gated_ffn=True, each token routed to moe_top_k).
    """

    def __init__(self, d_model, n_heads, d_ff, dropout=0.0, norm_first=True, activation="gelu",
                 layer_norm_eps=1e-5, bias=True, cross_attention=False, rotary=None, n_kv_heads=None,
                 norm="layernorm", gated_ffn=False, n_experts=0, moe_top_k=2):
        super().__init__(norm_first, dropout)
        self.attn = MultiHeadAttention(d_model, n_heads, dropout, bias=bias, rotary=rotary, n_kv_heads=n_kv_heads)
        self.norm1 = norm_layer(norm, d_model, layer_norm_eps)
        self.cross_attn = MultiHeadAttention(d_model, n_heads, dropout, bias=bias) if cross_attention else None
        self.norm_cross = norm_layer(norm, d_model, layer_norm_eps) if cross_attention else None
        self.ff, self.norm2 = _feed_forward(d_model, d_ff, activation, bias, layer_norm_eps, norm, gated_ffn,
                                            n_experts, moe_top_k)

    def forward(self, x, memory=None, *, mask=None, memory_mask=None, return_attention=False,
                kv_cache=None, cross_cache=None, positions=None) -> BlockOutput:
        """x: (B, T, d_model); memory: encoder output (B, S, d_model) for cross-attention.

        mask is combined with the causal mask; memory_mask (B, 1, 1, S) hides padded source
        tokens. kv_cache / cross_cache are LayerKVCache objects used during generation.
        """
        if memory is not None and self.cross_attn is None:
            raise ValueError("this decoder block has no cross-attention, so it takes no memory "
                             "(pass a padding mask as mask=...)")
        x, weights = self._self_attention_sublayer(x, mask=mask, return_attention=return_attention,
                                                   kv_cache=kv_cache, causal=True, positions=positions)
        cross_weights = None
        if self.cross_attn is not None:
            x, cross_weights = self._cross_attention_sublayer(x, memory, memory_mask, return_attention, cross_cache)
        return BlockOutput(self._feed_forward_sublayer(x), weights, cross_weights)

    def _cross_attention_sublayer(self, x, memory, memory_mask, return_attention, cross_cache):
        """x + cross_attn(LN(x), memory) (pre-LN) or LN(x + cross_attn(x, memory)) (post-LN)."""
        if memory is None:
            raise ValueError("this decoder block has cross-attention and needs the encoder memory")
        kw = dict(context=memory, mask=memory_mask, return_attention=return_attention, kv_cache=cross_cache)
        if self.norm_first:
            c, weights = self.cross_attn(self.norm_cross(x), **kw)
            return x + self.drop(c), weights
        c, weights = self.cross_attn(x, **kw)
        return self.norm_cross(x + self.drop(c)), weights
