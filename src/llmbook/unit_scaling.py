"""Unit scaling (Blake et al. 2023): every tensor of a model starts with a scale near 1.

A standard model fixes the scale of its *weights* at initialisation (e.g. normal with std 0.02) and
lets activations and gradients land wherever the arithmetic puts them. Unit scaling instead
initialises every weight with unit variance and multiplies each operation's output by a fixed
constant, chosen so that unit-scale inputs give unit-scale outputs; the gradient of each operation
gets its own constant, chosen so that unit-scale output gradients give unit-scale input gradients.
Then weights, activations and gradients all sit near 1, the middle of every number format.

The constants change what autograd computes, so they must not change what the optimiser sees:

* On a chain of operations (every edge a "cut edge": removing it disconnects the loss from the
  input) the backward constant of each op may differ from its forward constant. Each gradient is
  then the true gradient times a constant per tensor, and Adam ignores such constants.
* Where two paths meet (a residual branch and its skip), the gradients of the two paths are added,
  so inside a branch the backward constant must equal the forward one
  (``constraint="to_output_scale"``), and the residual adds weigh branch and skip with
  ``residual_split`` / ``residual_add``.

``unit_scaled_gpt(config)`` builds the book's pre-LN GPT with all of this, and
``to_standard_gpt(model)`` turns it into an ordinary ``GPT`` that computes the same logits, which
shows that unit scaling moves the numbers, not the function. The unit-scaled linear layers build on
``llmbook.precision.ScaledLinear``, which also simulates low-precision matrix products.

What is unit-scaled here: the embeddings, every linear layer, the feed-forward activation, the
residual adds and the output layer's gradient. Attention itself is left as in the standard model:
its scores Q K^T / sqrt(d_head), their softmax and the weighted average of the values get no
unit-scaling constants (Blake et al. also scale those), and ``set_matmul_formats`` simulates low
precision in the linear layers only, not in Q K^T or in the product of the weights with V.

Used in chapter 8, Scaling and unit scaling.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .blocks import ACTIVATIONS, BlockOutput, DecoderBlock
from .models import GPT, GPTConfig
from .positional import LearnedPositions
from .precision import ScaledLinear

CONSTRAINTS = (None, "to_output_scale", "gmean")

# RMS of activation(z) and of its derivative for z ~ N(0, 1) (numerical integration). What the next
# matrix product sees is the second moment E[a^2] (not the variance), so the RMS is the scale to undo.
ACTIVATION_RMS = {
    "relu": (math.sqrt(0.5), math.sqrt(0.5)),
    "gelu": (0.652090, 0.675167),
    "gelu_tanh": (0.652069, 0.675143),
}

# ----------------------------------------------------------------------------- scaled identity
class _Scale(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, forward_scale, backward_scale):
        ctx.backward_scale = backward_scale
        return x * forward_scale

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.backward_scale, None, None


def scaled(x: torch.Tensor, forward_scale: float, backward_scale: float) -> torch.Tensor:
    """x * forward_scale in the forward pass; the gradient is multiplied by backward_scale.

    With backward_scale == forward_scale this is an ordinary multiplication. Raises ValueError for
    a scale that is not a positive finite number.
    """
    for name, s in (("forward_scale", forward_scale), ("backward_scale", backward_scale)):
        if not (isinstance(s, (int, float)) and math.isfinite(s) and s > 0):
            raise ValueError(f"{name} must be a positive finite number, got {s!r}")
    return _Scale.apply(x, float(forward_scale), float(backward_scale))

def scale_backward(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Leave the value alone; multiply the gradient by scale."""
    return scaled(x, 1.0, scale)


def apply_constraint(constraint: str | None, output_scale: float, grad_input_scale: float):
    """(forward, backward) scales under a constraint: None keeps both, "to_output_scale" uses the
    forward scale for both, "gmean" their geometric mean for both. Raises ValueError otherwise."""
    if constraint is None:
        return output_scale, grad_input_scale
    if constraint == "to_output_scale":
        return output_scale, output_scale
    if constraint == "gmean":
        s = math.sqrt(output_scale * grad_input_scale)
        return s, s
    raise ValueError(f"unknown constraint {constraint!r}; choose one of {CONSTRAINTS}")

# ------------------------------------------------------------------------------- linear layers
class UnitScaledLinear(ScaledLinear):
    """A linear layer with N(0, 1) weights whose output and gradients start at unit scale.

    Forward: y = x W^T / sqrt(fan_in) + b. Backward: the input gradient is scaled by 1 / sqrt(fan_out)
    and the weight (and bias) gradient by 1 / sqrt(batch), separately from the forward scale
    (constraint=None). Inside a residual branch use constraint="to_output_scale" (backward scale =
    forward scale) or "gmean", so that gradients of different paths stay comparable.
    x: (..., fan_in) -> (..., fan_out). Raises ValueError for an unknown constraint.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, constraint: str | None = None):
        super().__init__(in_features, out_features, bias=bias)
        self.constraint = constraint
        apply_constraint(constraint, 1.0, 1.0)  # validate now, not at the first forward
        with torch.no_grad():
            nn.init.normal_(self.weight, 0.0, 1.0)
            if self.bias is not None:
                self.bias.zero_()

    @property
    def output_scale(self) -> float:
        return apply_constraint(self.constraint, self.in_features ** -0.5, self.out_features ** -0.5)[0]

    def scales(self, batch: int) -> tuple[float, float, float]:
        out_scale, grad_in_scale = apply_constraint(self.constraint, self.in_features ** -0.5,
                                                    self.out_features ** -0.5)
        return out_scale, grad_in_scale, batch ** -0.5

    def extra_repr(self) -> str:
        return super().extra_repr() + f", constraint={self.constraint!r}"


class UnitScaledLMHead(UnitScaledLinear):
    """The output layer of a unit-scaled language model, its weight possibly tied to the embedding.

    The cross-entropy (mean over N positions, vocabulary V) hands the logits a gradient whose entries
    have RMS about sqrt(V - 1) / (V N) at initialisation; this head multiplies that gradient by
    V N / sqrt(V - 1), the unit-scaling form of loss scaling (a constant, so harmless to the
    optimiser). The weight gradient uses the input-gradient scale, so that with a tied embedding the
    two contributions to the one matrix carry the same constant.
    """

    def __init__(self, in_features: int, vocab_size: int):
        if vocab_size < 2:
            raise ValueError(f"vocab_size={vocab_size} must be at least 2")
        super().__init__(in_features, vocab_size, bias=False, constraint=None)

    def scales(self, batch: int) -> tuple[float, float, float]:
        out_scale, grad_in_scale, _ = super().scales(batch)
        return out_scale, grad_in_scale, grad_in_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = super().forward(x)
        V = self.out_features
        n = max(1, logits.numel() // V)
        return scale_backward(logits, V * n / math.sqrt(V - 1))


# ------------------------------------------------------------------------------ residual adds
class _ResidualSplit(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, tau):
        ctx.tau = tau
        return x.view_as(x), x.view_as(x)

    @staticmethod
    def backward(ctx, grad_branch, grad_skip):
        return math.sqrt(ctx.tau) * grad_branch + math.sqrt(1.0 - ctx.tau) * grad_skip, None


class _ResidualAdd(torch.autograd.Function):
    @staticmethod
    def forward(ctx, branch, skip, tau):
        return torch.add(skip * math.sqrt(1.0 - tau), branch, alpha=math.sqrt(tau))

    @staticmethod
    def backward(ctx, grad):
        return grad, grad, None


def residual_split(x: torch.Tensor, tau: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(branch input, skip): two copies of x. Where their gradients meet again, here, they are
    weighted by sqrt(tau) and sqrt(1 - tau): the weights residual_add left out of its backward pass."""
    _check_tau(tau)
    return _ResidualSplit.apply(x, float(tau))


def residual_add(branch: torch.Tensor, skip: torch.Tensor, tau: float) -> torch.Tensor:
    """sqrt(tau) * branch + sqrt(1 - tau) * skip: unit scale in, unit scale out.

    The weights apply to the values only; the gradients go back unscaled, so the branch's backward
    pass starts at unit scale, and residual_split applies the weights where the paths rejoin.
    """
    _check_tau(tau)
    return _ResidualAdd.apply(branch, skip, float(tau))


def _check_tau(tau: float) -> None:
    if not 0.0 < tau < 1.0:
        raise ValueError(f"tau={tau} must lie strictly between 0 and 1")


def running_mean_taus(n_branches: int) -> list[float]:
    """tau_k = 1 / (k + 2) for branch k = 0, 1, ...: after branch k the embedding and each of the
    k + 1 branches contribute equally, as in a standard pre-LN model whose branches have equal scale."""
    if n_branches < 1:
        raise ValueError(f"n_branches={n_branches} must be >= 1")
    return [1.0 / (k + 2) for k in range(n_branches)]


# ---------------------------------------------------------------------------------- the model
class _ScaledActivation:
    """activation(x) * c, with the same c in the backward pass (it sits inside a residual branch)."""

    def __init__(self, name: str):
        self.name, self.fn = name, ACTIVATIONS[name]
        self.scale = 1.0 / ACTIVATION_RMS[name][0]

    def __call__(self, x):
        return self.fn(x) * self.scale


class UnitScaledDecoderBlock(DecoderBlock):
    """A pre-LN GPT block with unit-scaled linear layers and activation, and weighted residual adds.

    taus = (tau of the attention branch, tau of the feed-forward branch); one tau for d_ff=0, a block
    without feed-forward network. Raises ValueError for a tau outside (0, 1) or the wrong number of them.
    """

    def __init__(self, d_model, n_heads, d_ff, dropout=0.0, activation="gelu_tanh", layer_norm_eps=1e-5,
                 bias=True, rotary=None, taus=(0.5, 1 / 3)):
        super().__init__(d_model, n_heads, d_ff, dropout, True, activation, layer_norm_eps, bias, rotary=rotary)
        if len(taus) != (2 if self.ff is not None else 1):
            raise ValueError(f"taus={taus}: give one tau per branch ({2 if self.ff is not None else 1} here)")
        for tau in taus:
            _check_tau(tau)
        self.taus = tuple(taus)
        c = "to_output_scale"  # inside a residual branch: backward scale = forward scale
        self.attn.in_proj = UnitScaledLinear(d_model, 3 * d_model, bias=bias, constraint=c)
        self.attn.out_proj = UnitScaledLinear(d_model, d_model, bias=bias, constraint=c)
        if self.ff is not None:
            self.ff.fc1 = UnitScaledLinear(d_model, d_ff, bias=bias, constraint=c)
            self.ff.fc2 = UnitScaledLinear(d_ff, d_model, bias=bias, constraint=c)
            self.ff.act = _ScaledActivation(activation)

    def forward(self, x, memory=None, *, mask=None, memory_mask=None, return_attention=False,
                kv_cache=None, cross_cache=None, positions=None) -> BlockOutput:
        """The pre-LN block with weighted residual adds: x + attn(LN(x)) becomes
        residual_add(attn(LN(branch)), skip, tau) with (branch, skip) = residual_split(x, tau)."""
        if memory is not None:
            raise ValueError("a unit-scaled GPT block has no cross-attention, so it takes no memory")
        tau_attn = self.taus[0]
        branch, skip = residual_split(x, tau_attn)
        a, weights = self.attn(self.norm1(branch), mask=mask, return_attention=return_attention,
                               kv_cache=kv_cache, causal=True, positions=positions)
        x = residual_add(self.drop(a), skip, tau_attn)
        if self.ff is not None:
            tau_ff = self.taus[1]
            branch, skip = residual_split(x, tau_ff)
            x = residual_add(self.drop(self.ff(self.norm2(branch))), skip, tau_ff)
        return BlockOutput(x, weights, None)


class _ScaledLearnedPositions(LearnedPositions):
    """A learned position table with N(0, 1) rows whose output is multiplied by `scale`."""

    def __init__(self, max_len: int, d_model: int, scale: float):
        super().__init__(max_len, d_model)
        self.scale = scale
        with torch.no_grad():
            self.weight.normal_(0.0, 1.0)

    def forward(self, positions):
        return super().forward(positions) * self.scale


UNIT_SCALED_POSITIONS = ("learned", "rope")


def unit_scaled_gpt(config: GPTConfig) -> GPT:
    """The book's GPT, unit-scaled: N(0, 1) weights and embeddings, unit-scaled blocks and head.

    The token (and learned position) embeddings are added with weights 1/sqrt(2), so the residual
    stream starts at unit scale; branch k is added with tau_k = 1 / (k + 2). The model is an ordinary
    llmbook.models.GPT (same forward, loss, generation). Raises ValueError for post-LN
    (norm_first=False), sinusoidal positions, an activation without a measured scale (silu) and the
    options of a modern decoder (RMSNorm, gated feed-forward, grouped-query attention), which this
    construction does not cover.
    """
    c = config
    if not c.norm_first:
        raise ValueError("unit_scaled_gpt builds pre-LN models (norm_first=True); post-LN normalises the "
                         "residual stream after every add and needs no residual weights")
    if c.pos_encoding not in UNIT_SCALED_POSITIONS:
        raise ValueError(f"unit_scaled_gpt supports pos_encoding in {UNIT_SCALED_POSITIONS}, got {c.pos_encoding!r}")
    if c.activation not in ACTIVATION_RMS:
        raise ValueError(f"unit_scaled_gpt supports activation in {sorted(ACTIVATION_RMS)}, got {c.activation!r}")
    if c.norm != "layernorm" or c.gated_ffn or c.n_kv_heads not in (None, c.n_heads):
        raise ValueError(f"unit_scaled_gpt builds GPT-2's block, not norm={c.norm!r}, gated_ffn={c.gated_ffn}, "
                         f"n_kv_heads={c.n_kv_heads} (leave them at layernorm, False, None)")
    model = GPT(c)
    rotary = model.blocks[0].attn.rotary if c.n_layers else None
    per_block = 2 if c.d_ff else 1  # d_ff=0: attention-only blocks
    taus = running_mean_taus(per_block * c.n_layers) if c.n_layers else []
    model.blocks = nn.ModuleList(
        UnitScaledDecoderBlock(c.d_model, c.n_heads, c.d_ff, c.dropout, c.activation, c.layer_norm_eps, c.bias,
                               rotary=rotary, taus=taus[per_block * i:per_block * (i + 1)])
        for i in range(c.n_layers))
    with torch.no_grad():
        model.tok_emb.weight.normal_(0.0, 1.0)
    if c.pos_encoding == "learned":
        model.pos_emb = _ScaledLearnedPositions(c.context_length, c.d_model, 2 ** -0.5)
        model.emb_scale = 2 ** -0.5  # (token + position) / sqrt(2): unit scale
    head = UnitScaledLMHead(c.d_model, c.vocab_size)
    if c.tie_weights:
        head.weight = model.tok_emb.weight
    model.lm_head = head
    return model


def to_standard_gpt(model: GPT) -> GPT:
    """An ordinary GPT (same config) that computes the same logits as the unit-scaled `model`.

    Every constant of the unit-scaled model is folded into a weight: W_standard = a W for a linear
    layer with output scale a, the activation's factor goes into the next layer, and the head's
    factor into the final LayerNorm. The residual weights need no counterpart: a pre-LN block sees
    its input through a LayerNorm, which ignores the scale of the residual stream. (LayerNorm's eps
    makes that exact only up to about eps / variance.) Raises TypeError for a model that
    unit_scaled_gpt did not build.
    """
    if not isinstance(model, GPT) or not isinstance(model.lm_head, UnitScaledLMHead):
        raise TypeError(f"to_standard_gpt takes a model built by unit_scaled_gpt, got {type(model).__name__}")
    c = model.config
    out = GPT(c)
    embed = model.emb_scale  # the standard model adds token and position embeddings unweighted
    with torch.no_grad():
        out.tok_emb.weight.copy_(model.tok_emb.weight * embed)
        if c.pos_encoding == "learned":
            out.pos_emb.weight.copy_(model.pos_emb.weight * model.pos_emb.scale)
        for src, dst in zip(model.blocks, out.blocks):
            pairs = [(src.attn.in_proj, dst.attn.in_proj), (src.attn.out_proj, dst.attn.out_proj)]
            norms = [(src.norm1, dst.norm1)]
            if src.ff is not None:
                pairs += [(src.ff.fc1, dst.ff.fc1), (src.ff.fc2, dst.ff.fc2)]
                norms.append((src.norm2, dst.norm2))
            for a, b in pairs:
                factor = a.output_scale * (src.ff.act.scale if src.ff is not None and a is src.ff.fc2 else 1.0)
                b.weight.copy_(a.weight * factor)
                if a.bias is not None:
                    b.bias.copy_(a.bias)
            for a, b in norms:
                b.load_state_dict(a.state_dict())
        # head: logits = LN(x) W_tok^T * a_head; the standard head reuses tok_emb = W_tok * embed
        head_factor = model.lm_head.output_scale / (embed if c.tie_weights else 1.0)
        if not c.tie_weights:
            out.lm_head.weight.copy_(model.lm_head.weight)
        out.ln_f.weight.copy_(model.ln_f.weight * head_factor)
        out.ln_f.bias.copy_(model.ln_f.bias * head_factor)
    return out.train(model.training)
