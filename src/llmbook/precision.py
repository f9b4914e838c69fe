"""Floating-point formats for training, and rounding to them in software ("simulated" low precision).

A format with e exponent bits and m mantissa bits stores numbers as (1 + f / 2^m) * 2^E: the exponent
E sets the *range* (from the smallest normal number 2^E_min to the largest), the mantissa sets the
*precision* (a relative spacing of 2^-m between neighbours). Below the smallest normal number the
format has subnormals, evenly spaced down to 2^(E_min - m); anything smaller rounds to 0 (underflow).
Above the largest number, fp16, bf16 and fp8-e5m2 give inf (overflow); fp8-e4m3 has no inf, and
``round_to`` saturates it at +-448, the usual choice for that format.

``round_to(x, "fp8_e4m3")`` returns x rounded to the nearest representable value (ties to even), still
stored as float32, so any CPU can show what a tensor would lose in that format. ``quantize`` does
the same inside autograd, with one format for the forward value and one for the gradient.
``LossScaled`` multiplies every gradient of a model by a constant (static loss scaling).
``set_matmul_formats(model, "fp8_e4m3", "fp8_e5m2")`` makes every ``nn.Linear`` layer a ``ScaledLinear``
that rounds the inputs of its matrix products to one format and their output gradients to another,
as FP8 training does; ``record_matmuls`` records what those products see. Attention's own products
(Q K^T and the weights times V) are not linear layers and stay in fp32.

Used in chapter 8, Scaling and unit scaling.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class FloatFormat:
    """A binary floating-point format: its bit layout and the limits that follow from it."""

    name: str
    dtype: torch.dtype
    exponent_bits: int
    mantissa_bits: int
    max: float  # largest finite value
    smallest_normal: float  # 2^E_min: below it precision is lost step by step
    smallest_subnormal: float  # 2^(E_min - mantissa_bits): below half of it, values round to 0
    has_inf: bool  # False: values beyond max saturate (fp8-e4m3)

    @property
    def bits(self) -> int:
        return 1 + self.exponent_bits + self.mantissa_bits

    @property
    def epsilon(self) -> float:
        """Spacing of the representable numbers just above 1: 2^-mantissa_bits."""
        return 2.0 ** -self.mantissa_bits


def _format(name: str, dtype: torch.dtype, exponent_bits: int, mantissa_bits: int, has_inf: bool = True):
    info = torch.finfo(dtype)
    return FloatFormat(name, dtype, exponent_bits, mantissa_bits, float(info.max), float(info.tiny),
                       float(info.tiny) * float(info.eps), has_inf)


FORMATS = {
    f.name: f for f in (
        _format("fp32", torch.float32, 8, 23),
        _format("bf16", torch.bfloat16, 8, 7),
        _format("fp16", torch.float16, 5, 10),
        _format("fp8_e5m2", torch.float8_e5m2, 5, 2),
        _format("fp8_e4m3", torch.float8_e4m3fn, 4, 3, has_inf=False),
    )
}


def get_format(fmt: str | FloatFormat) -> FloatFormat:
    """The FloatFormat called fmt; raises ValueError naming the known formats."""
    if isinstance(fmt, FloatFormat):
        return fmt
    if fmt not in FORMATS:
        raise ValueError(f"unknown number format {fmt!r}; choose one of {sorted(FORMATS)}")
    return FORMATS[fmt]


def round_to(x: torch.Tensor, fmt: str | FloatFormat) -> torch.Tensor:
    """x rounded to the nearest value of format fmt (ties to even), returned in x's dtype.

    Overflow gives +-inf, except in fp8_e4m3, which has no inf and saturates at +-448; nan stays nan.
    Raises TypeError unless x is a floating-point tensor, ValueError for an unknown format.
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"round_to needs a floating-point tensor, got {type(x).__name__} "
                        f"{getattr(x, 'dtype', '')}")
    f = get_format(fmt)
    if not f.has_inf:  # explicit, so the result does not depend on how this PyTorch casts overflow
        x = x.clamp(-f.max, f.max)
    return x.to(f.dtype).to(x.dtype)


class _Quantize(torch.autograd.Function):
    """Forward: round the value to one format. Backward: round the gradient to another."""

    @staticmethod
    def forward(ctx, x, forward_fmt, backward_fmt):
        ctx.backward_fmt = backward_fmt
        return round_to(x, forward_fmt) if forward_fmt is not None else x.clone()

    @staticmethod
    def backward(ctx, grad):
        if ctx.backward_fmt is not None:
            grad = round_to(grad, ctx.backward_fmt)
        return grad, None, None  # straight through the rounding itself


def quantize(x: torch.Tensor, forward: str | None = None, backward: str | None = None) -> torch.Tensor:
    """x rounded to format `forward`; in the backward pass its gradient is rounded to `backward`.

    Either may be None (left in full precision). The rounding itself passes gradients straight
    through: d round(x) / dx is taken as 1, as in every simulated-quantisation scheme.
    """
    for fmt in (forward, backward):
        if fmt is not None:
            get_format(fmt)
    return _Quantize.apply(x, forward, backward)


def range_report(x: torch.Tensor, fmt: str | FloatFormat) -> dict[str, float]:
    """Where the nonzero entries of x fall in format fmt, as fractions of them.

    Returns {"underflow": rounds to 0, "subnormal": kept with reduced precision,
    "normal": kept with full precision, "overflow": beyond max (inf, or saturated in fp8_e4m3)}.
    Raises ValueError if x has no nonzero finite entry.
    """
    f = get_format(fmt)
    a = x.detach().abs().double().flatten()
    a = a[(a > 0) & torch.isfinite(a)]
    if a.numel() == 0:
        raise ValueError("range_report needs at least one nonzero finite value")
    rounded = round_to(a, f).abs()
    n = a.numel()
    underflow = (rounded == 0).sum().item()
    overflow = (a > f.max).sum().item()
    subnormal = ((rounded > 0) & (a < f.smallest_normal)).sum().item()
    return {"underflow": underflow / n, "subnormal": subnormal / n,
            "normal": (n - underflow - overflow - subnormal) / n, "overflow": overflow / n}


def log2_magnitudes(x: torch.Tensor) -> torch.Tensor:
    """log2 |x| of the nonzero finite entries of x (float64, flattened): the axis of a range histogram."""
    a = x.detach().abs().double().flatten()
    return torch.log2(a[(a > 0) & torch.isfinite(a)])


def format_limits_log2(fmt: str | FloatFormat) -> tuple[float, float, float]:
    """(log2 smallest subnormal, log2 smallest normal, log2 max) of a format."""
    f = get_format(fmt)
    return math.log2(f.smallest_subnormal), math.log2(f.smallest_normal), math.log2(f.max)


class _ScaleGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, scale):
        ctx.scale = scale
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.scale, None


class LossScaled(nn.Module):
    """Static loss scaling: model's .loss keeps its value, but its gradient, and so every gradient in
    the model, is multiplied by `scale`, moving small gradients up into a format's range.

    Before an optimiser step that depends on the gradients' size (SGD, gradient clipping) divide them
    by `scale` again (torch.amp.GradScaler does both, and picks the scale itself); Adam without
    clipping ignores a constant factor (up to its eps). Raises ValueError unless scale > 0.
    """

    def __init__(self, model: nn.Module, scale: float):
        super().__init__()
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"scale={scale} must be a positive finite number")
        self.model, self.scale = model, float(scale)

    def forward(self, *args, **kwargs):
        out = self.model(*args, **kwargs)
        if getattr(out, "loss", None) is not None:
            out.loss = _ScaleGradient.apply(out.loss, self.scale)
        return out


# ------------------------------------------------------------------ simulated matrix products
class _ScaledLinearFn(torch.autograd.Function):
    """y = a (x W^T) + b; grad_x = c (g W), grad_W = d (g^T x), grad_b = d sum(g).

    The inputs of both matrix products are rounded to forward_fmt, the output gradient g to
    backward_fmt (None: full precision), as FP8 training does for its matrix products.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, scales, formats):
        out_scale, grad_in_scale, grad_w_scale = scales
        forward_fmt, backward_fmt = formats
        if forward_fmt is not None:
            x, weight = round_to(x, forward_fmt), round_to(weight, forward_fmt)
        ctx.save_for_backward(x, weight)
        ctx.grad_scales, ctx.backward_fmt, ctx.has_bias = (grad_in_scale, grad_w_scale), backward_fmt, bias is not None
        x2 = x.reshape(-1, x.size(-1))  # (N, in)
        if bias is None:
            y = torch.mm(x2, weight.t()).mul_(out_scale)
        else:
            y = torch.addmm(bias, x2, weight.t(), alpha=out_scale)  # bias + a (x W^T), one fused call
        return y.view(*x.shape[:-1], weight.size(0))

    @staticmethod
    def backward(ctx, g):
        x, weight = ctx.saved_tensors
        grad_in_scale, grad_w_scale = ctx.grad_scales
        if ctx.backward_fmt is not None:
            g = round_to(g, ctx.backward_fmt)
        g2 = g.reshape(-1, g.size(-1))  # (N, out)
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.mm(g2, weight).mul_(grad_in_scale).view(x.shape)
        if ctx.needs_input_grad[1]:
            grad_w = torch.mm(g2.t(), x.reshape(-1, x.size(-1))).mul_(grad_w_scale)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = g2.sum(0).mul_(grad_w_scale)
        return grad_x, grad_w, grad_b, None, None


class ScaledLinear(nn.Linear):
    """nn.Linear whose matrix products can be simulated in a low-precision format.

    ``formats = (forward_fmt, backward_fmt)``, e.g. ("fp8_e4m3", "fp8_e5m2"): the input and the
    weight are rounded to forward_fmt, the output gradient to backward_fmt; (None, None) is fp32.
    With the default scales of 1 it computes exactly what nn.Linear computes.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__(in_features, out_features, bias=bias)
        self.formats: tuple[str | None, str | None] = (None, None)
        self.record: dict | None = None  # see record_matmuls

    def scales(self, batch: int) -> tuple[float, float, float]:
        """(output scale, grad-input scale, grad-weight scale) for `batch` rows of input."""
        return 1.0, 1.0, 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.size(-1) != self.in_features:
            raise ValueError(f"expected input with last dimension {self.in_features}, got shape {tuple(x.shape)}")
        batch = max(1, x.numel() // self.in_features)
        scales = self.scales(batch)
        if scales == (1.0, 1.0, 1.0) and self.formats == (None, None):
            y = F.linear(x, self.weight, self.bias)  # nothing to simulate: the ordinary layer
        else:
            y = _ScaledLinearFn.apply(x, self.weight, self.bias, scales, self.formats)
        if self.record is not None:
            self._record(x, y)
        return y

    def _record(self, x, y):
        self.record.update(weight=self.weight.detach().clone(), input=x.detach().clone())
        if y.requires_grad:
            y.register_hook(lambda g: self.record.__setitem__("grad_output", g.detach().clone()))


def set_matmul_formats(model: nn.Module, forward: str | None = "fp8_e4m3", backward: str | None = "fp8_e5m2"):
    """Simulate low-precision matrix products in every linear layer of model; returns model.

    Plain nn.Linear layers are replaced by ScaledLinear layers that share their parameters (ties
    survive). Their input and weight are rounded to `forward`, their output gradient to `backward`;
    None keeps fp32 (set both to None to switch the simulation off). Everything else stays in fp32:
    embeddings, LayerNorm, attention's own matrix products (Q K^T and the weights times V) and its
    softmax, residual adds, the optimiser.
    Raises ValueError for an unknown format.
    """
    for fmt in (forward, backward):
        if fmt is not None:
            get_format(fmt)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Linear:
                new = ScaledLinear(child.in_features, child.out_features, bias=child.bias is not None)
                new.weight = child.weight
                new.bias = child.bias
                setattr(parent, name, new.to(child.weight.device))
    for m in model.modules():
        if isinstance(m, ScaledLinear):
            m.formats = (forward, backward)
    return model


@contextmanager
def record_matmuls(model: nn.Module):
    """Record what the matrix products of model see: yields {layer name: {"weight", "input",
    "grad_output"}} for every ScaledLinear layer (full-precision values, before any simulated
    rounding); "grad_output" appears after a backward pass. Call set_matmul_formats(model, None, None)
    first to make an ordinary model's nn.Linear layers ScaledLinear ones. Raises ValueError if the
    model has no ScaledLinear layer.
    """
    layers = {name: m for name, m in model.named_modules() if isinstance(m, ScaledLinear)}
    if not layers:
        raise ValueError("the model has no ScaledLinear layers; call set_matmul_formats(model, None, None) first")
    records = {name: {} for name in layers}
    for name, m in layers.items():
        m.record = records[name]
    try:
        yield records
    finally:
        for m in layers.values():
            m.record = None
