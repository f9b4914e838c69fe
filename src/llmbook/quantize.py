"""Weight-only integer quantisation of nn.Linear layers: symmetric, one scale per output channel.

A weight row w (one output channel) is stored as integers q = round(w / s), clamped to
[-qmax, qmax] with qmax = 2^(bits-1) - 1, and one float scale s = max|w| / qmax. The layer computes
y = (x q^T) * s + b: the scale of each output channel factors out of the matrix product. Each
weight then costs one byte instead of four (fp32), and its rounding error is at most s / 2.

Taught in chapter 7, Inference engineering.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn


def _check_bits(bits: int) -> int:
    if isinstance(bits, bool) or not isinstance(bits, int) or not 2 <= bits <= 8:
        raise ValueError(f"bits must be an int in [2, 8] (stored in int8), got {bits!r}")
    return 2 ** (bits - 1) - 1


def quantize_weight(weight: torch.Tensor, bits: int = 8, per_channel: bool = True):
    """Symmetric quantisation of a (out, in) matrix; returns (q int8 (out, in), scale float32 (out,)).

    per_channel: one scale per row (output channel); otherwise one scale for the whole matrix,
    repeated per row. A row of zeros gets scale 1 (any scale represents it exactly).
    Raises ValueError for a weight that is not 2-D or bits outside [2, 8].
    """
    qmax = _check_bits(bits)
    if weight.dim() != 2:
        raise ValueError(f"quantize_weight takes a (out_features, in_features) matrix, got shape "
                         f"{tuple(weight.shape)}")
    w = weight.detach().float()
    amax = w.abs().amax(dim=1) if per_channel else w.abs().amax().expand(w.size(0))  # (out,)
    scale = torch.where(amax > 0, amax / qmax, torch.ones_like(amax))
    q = torch.round(w / scale[:, None]).clamp(-qmax, qmax).to(torch.int8)
    return q, scale.contiguous()


def dequantize_weight(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """q (out, in) integers and scale (out,) -> the float32 matrix q * scale they stand for."""
    return q.float() * scale[:, None]


class Int8Linear(nn.Module):
    """A Linear layer whose weight is stored as int8 plus one float scale per output channel.

    forward: x (..., in_features) -> (..., out_features) = (x q^T) * scale + bias. The int8 matrix
    is converted to x's dtype inside each call (no int8 arithmetic), so this saves memory, not time.
    """

    def __init__(self, q: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None = None, bits: int = 8):
        super().__init__()
        if q.dtype != torch.int8 or q.dim() != 2 or scale.shape != (q.size(0),):
            raise ValueError(f"expected q int8 (out, in) and scale (out,), got q {q.dtype} "
                             f"{tuple(q.shape)} and scale {tuple(scale.shape)}")
        self.in_features, self.out_features, self.bits = q.size(1), q.size(0), bits
        self.register_buffer("weight_int8", q)
        self.register_buffer("scale", scale.float())
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone(), requires_grad=False)

    @classmethod
    def from_linear(cls, linear: nn.Linear, bits: int = 8, per_channel: bool = True) -> Int8Linear:
        q, scale = quantize_weight(linear.weight, bits, per_channel)
        return cls(q, scale, linear.bias, bits)

    def dequantized_weight(self) -> torch.Tensor:
        return dequantize_weight(self.weight_int8, self.scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.linear(x, self.weight_int8.to(x.dtype)) * self.scale.to(x.dtype)
        return y if self.bias is None else y + self.bias

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bits={self.bits}"


def quantize_model(model: nn.Module, bits: int = 8, per_channel: bool = True, skip=("lm_head",)) -> nn.Module:
    """A copy of model with every nn.Linear (except those named in skip) replaced by an Int8Linear.

    The original is not changed. skip: module names to keep in floating point; by default the
    output layer, whose matrix a GPT shares with its token embedding. The copy is in eval mode.
    """
    _check_bits(bits)
    quantized = copy.deepcopy(model)
    for name, module in list(quantized.named_modules()):
        for child_name, child in list(module.named_children()):
            full = f"{name}.{child_name}" if name else child_name
            if isinstance(child, nn.Linear) and full not in skip:
                setattr(module, child_name, Int8Linear.from_linear(child, bits, per_channel))
    return quantized.eval()


def model_nbytes(model: nn.Module) -> int:
    """Bytes of the tensors in model's state_dict (what a checkpoint stores), each counted once.

    Tied weights count once; tables the model recomputes (non-persistent buffers, such as rotary
    angles) do not count.
    """
    seen, total = set(), 0
    for t in model.state_dict().values():
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), t.numel())
        if key not in seen:
            seen.add(key)
            total += t.numel() * t.element_size()
    return total
