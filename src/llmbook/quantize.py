"""Weight-only integer quantisation of nn.Linear layers: symmetric, one scale per output channel.

A weight row w (one output channel) is stored as integers q = round(w / s), clamped to
[-qmax, qmax] with qmax = 2^(bits-1) - 1, and one float scale s = max|w| / qmax. The layer computes
y = (x q^T) * s + b: the scale of each output channel factors out of the matrix product. Each
weight then costs one byte instead of four (fp32), and its rounding error is at most s / 2.

Group-wise quantisation (GroupwiseLinear, the scheme of GPTQ- and AWQ-style 4-bit checkpoints) gives
each run of `group_size` consecutive inputs of a row its own scale, so one large weight spoils the
precision of its group only; at 4 bits two weights share a byte. `int8_dynamic` hands the layers to
PyTorch's int8 kernels (torch.ao dynamic quantisation: int8 weights, activations quantised per call,
an int8 x int8 matrix product), the only variant here that computes in integers rather than
storing integers and computing in float.

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
    return _replace_linears(model, lambda linear: Int8Linear.from_linear(linear, bits, per_channel), skip)


def quantize_groupwise(weight: torch.Tensor, bits: int = 4, group_size: int | None = 32):
    """Symmetric quantisation with one scale per group of group_size consecutive inputs of each row.

    weight (out, in) -> (q int8 (out, in) in [-qmax, qmax], scale float32 (out, in // group_size)).
    group_size None: one group per row (per-channel). Raises ValueError unless group_size divides
    in_features.
    """
    _check_bits(bits)
    if weight.dim() != 2:
        raise ValueError(f"quantize_groupwise takes a (out_features, in_features) matrix, got {tuple(weight.shape)}")
    out, n_in = weight.shape
    group_size = n_in if group_size is None else group_size
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1 or n_in % group_size:
        raise ValueError(f"group_size must be a positive int dividing in_features = {n_in}, got {group_size!r}")
    q, scale = quantize_weight(weight.detach().reshape(-1, group_size), bits)  # one row per group
    return q.reshape(out, n_in), scale.reshape(out, n_in // group_size)


def dequantize_groupwise(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """q (out, in) and scale (out, groups) -> the float32 matrix they stand for."""
    out, n_in = q.shape
    return (q.float().reshape(out, scale.size(1), -1) * scale[..., None]).reshape(out, n_in)


def pack_int4(q: torch.Tensor) -> torch.Tensor:
    """Two 4-bit integers in [-8, 7] per byte: q (..., 2n) int8 -> (..., n) uint8, low nibble first."""
    if q.size(-1) % 2 or q.min() < -8 or q.max() > 7:
        raise ValueError("pack_int4 needs an even last dimension and values in [-8, 7]")
    nibbles = (q.to(torch.int16) & 0xF).to(torch.uint8)
    return nibbles[..., 0::2] | (nibbles[..., 1::2] << 4)


def unpack_int4(packed: torch.Tensor) -> torch.Tensor:
    """The inverse of pack_int4: (..., n) uint8 -> (..., 2n) int8."""
    nibbles = torch.stack([packed & 0xF, packed >> 4], dim=-1).flatten(-2).to(torch.int8)
    return torch.where(nibbles > 7, nibbles - 16, nibbles)


class GroupwiseLinear(nn.Module):
    """A Linear layer with group-wise quantised weights; at bits <= 4 two weights are packed per byte.

    Stores the integers and one float32 scale per (row, group). forward dequantises the weight and
    multiplies in x's dtype: it saves memory, not time (a fused int4 kernel would unpack in registers).
    """

    def __init__(self, linear: nn.Linear, bits: int = 4, group_size: int | None = 32):
        super().__init__()
        q, scale = quantize_groupwise(linear.weight, bits, group_size)
        self.in_features, self.out_features, self.bits = q.size(1), q.size(0), bits
        self.group_size = q.size(1) // scale.size(1)
        self.register_buffer("weight_q", pack_int4(q) if bits <= 4 else q)
        self.register_buffer("scale", scale)
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)

    def dequantized_weight(self) -> torch.Tensor:
        q = unpack_int4(self.weight_q) if self.bits <= 4 else self.weight_q
        return dequantize_groupwise(q, self.scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.dequantized_weight().to(x.dtype), None if self.bias is None else self.bias.to(x.dtype))

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, bits={self.bits}, "
                f"group_size={self.group_size}")


def _replace_linears(model: nn.Module, make, skip) -> nn.Module:
    """A copy of model in eval mode with every nn.Linear not named in skip replaced by make(linear)."""
    copied = copy.deepcopy(model)
    for name, module in list(copied.named_modules()):
        for child_name, child in list(module.named_children()):
            full = f"{name}.{child_name}" if name else child_name
            if isinstance(child, nn.Linear) and full not in skip:
                setattr(module, child_name, make(child))
    return copied.eval()


def quantize_model_groupwise(model: nn.Module, bits: int = 4, group_size: int | None = 32,
                             skip=("lm_head",)) -> nn.Module:
    """A copy of model with every nn.Linear (except skip) replaced by a GroupwiseLinear (group_size None: per row)."""
    _check_bits(bits)
    return _replace_linears(model, lambda linear: GroupwiseLinear(linear, bits, group_size), skip)


def int8_dynamic(model: nn.Module, skip=("lm_head",)) -> nn.Module:
    """A copy of model whose nn.Linear layers (except skip) run PyTorch's int8 CPU kernels.

    torch.ao's dynamic quantisation: per-channel int8 weights, activations quantised to int8 at each
    call from their observed range, an int8 matrix product with int32 accumulation, the result
    rescaled to float. CPU only. torch 2.13 marks these quantised tensors as deprecated (their
    successor is the separate torchao package); the warning is silenced here, once, on purpose.
    """
    import warnings

    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    names = {name for name, module in model.named_modules() if isinstance(module, nn.Linear) and name not in skip}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        return quantize_dynamic(copy.deepcopy(model).eval(), dict.fromkeys(names, per_channel_dynamic_qconfig),
                                dtype=torch.qint8)


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
