"""Low-rank adaptation (LoRA, Hu et al., 2021): freeze a linear layer's weight W and learn a low-rank
change of it, W + (alpha / r) B A, with A of shape (r, d_in) and B of shape (d_out, r).

B starts at zero, so an adapted model starts out computing exactly what the base model computes;
only A and B are trained, r (d_in + d_out) numbers per layer instead of d_in d_out. After training,
merge_lora folds B A into W, and the model is a plain model again, with no extra cost per token.

Taught in chapter 10, Adapting and aligning models.
"""
from __future__ import annotations

import math
import re

import torch
import torch.nn as nn


class LoRALinear(nn.Module):
    """y = base(x) + (alpha / rank) * x A^T B^T, with base frozen; x: (..., d_in) -> (..., d_out).

    Raises ValueError for a rank outside 1..min(d_in, d_out) or alpha <= 0, TypeError for a base
    that is not an nn.Linear."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float):
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"LoRALinear adapts an nn.Linear, got {type(base).__name__}")
        d_in, d_out = base.in_features, base.out_features
        if not (isinstance(rank, int) and 1 <= rank <= min(d_in, d_out)):
            raise ValueError(f"rank={rank!r} must be an integer in 1..{min(d_in, d_out)} = min(d_in, d_out)")
        if not alpha > 0:
            raise ValueError(f"alpha={alpha} must be > 0")
        self.base, self.rank, self.alpha = base, rank, alpha
        self.scale = alpha / rank
        for p in base.parameters():
            p.requires_grad_(False)
        w = base.weight
        self.A = nn.Parameter(torch.empty(rank, d_in, dtype=w.dtype, device=w.device))
        self.B = nn.Parameter(torch.zeros(d_out, rank, dtype=w.dtype, device=w.device))
        # A random, B zero: the update B A is zero at the start, but its gradient with respect to B is not.
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.A.T @ self.B.T) * self.scale

    def delta_weight(self) -> torch.Tensor:
        """The change of the weight, (alpha / rank) B A: (d_out, d_in)."""
        return (self.B @ self.A) * self.scale

    def merged(self) -> nn.Linear:
        """A plain nn.Linear with weight W + (alpha / rank) B A and the base's bias."""
        base = self.base
        out = nn.Linear(base.in_features, base.out_features, bias=base.bias is not None,
                        device=base.weight.device, dtype=base.weight.dtype)
        with torch.no_grad():
            out.weight.copy_(base.weight + self.delta_weight())
            if base.bias is not None:
                out.bias.copy_(base.bias)
        return out


def _set_child(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, module)


def apply_lora(model: nn.Module, rank: int, alpha: float, targets: str | list[str]) -> list[str]:
    """Replace every nn.Linear whose name matches one of the regular expressions in targets (re.search)
    by a LoRALinear, freeze every other parameter of the model, and return the adapted layers' names.

    A layer whose weight is shared with another module (a tied output layer) is not adapted: its
    update would change the other module too. Raises ValueError when no layer matches."""
    patterns = [targets] if isinstance(targets, str) else list(targets)
    if not patterns:
        raise ValueError("targets is empty: give at least one pattern of nn.Linear names")
    linears = {name: m for name, m in model.named_modules() if isinstance(m, nn.Linear)}
    weight_users = {}
    for m in model.modules():
        for p in m.parameters(recurse=False):
            weight_users[id(p)] = weight_users.get(id(p), 0) + 1
    chosen = [name for name, m in linears.items()
              if any(re.search(p, name) for p in patterns) and weight_users[id(m.weight)] == 1]
    if not chosen:
        raise ValueError(f"targets={patterns} match no untied nn.Linear of the model; its linear layers are "
                         f"{sorted(linears)[:8]}{' ...' if len(linears) > 8 else ''}")
    for p in model.parameters():
        p.requires_grad_(False)
    for name in chosen:
        _set_child(model, name, LoRALinear(linears[name], rank, alpha))
    return chosen


def merge_lora(model: nn.Module) -> nn.Module:
    """Replace every LoRALinear in model by its merged nn.Linear (in place); returns the model."""
    adapted = [name for name, m in model.named_modules() if isinstance(m, LoRALinear)]
    for name in adapted:
        _set_child(model, name, model.get_submodule(name).merged())
    return model


def trainable_parameters(model: nn.Module) -> int:
    """How many numbers an optimiser would update: the parameters that require gradients."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
