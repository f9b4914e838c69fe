"""Position information for attention, which on its own is blind to order.

Three schemes: a fixed sinusoidal table (Vaswani et al. 2017), a learned table (GPT, BERT),
and rotary embeddings (RoPE, Su et al. 2021), which rotate queries and keys by their position.

Taught in chapter 3, Attention, step by step.
"""
from __future__ import annotations

import torch
from torch import nn


def sinusoidal_encoding(max_len: int, d_model: int) -> torch.Tensor:
    """Table (max_len, d_model): PE[pos, 2i] = sin(pos / 10000^(2i/d)), PE[pos, 2i+1] = cos(same).

    Raises ValueError unless max_len >= 1 and d_model is a positive even number.
    """
    if max_len < 1 or d_model < 2 or d_model % 2:
        raise ValueError(f"need max_len >= 1 and an even d_model >= 2, got {max_len}, {d_model}")
    pos = torch.arange(max_len, dtype=torch.float64)[:, None]
    two_i = torch.arange(0, d_model, 2, dtype=torch.float64)
    angle = pos / 10000 ** (two_i / d_model)  # (max_len, d_model / 2)
    pe = torch.empty(max_len, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle)
    return pe.float()


def check_positions(positions: torch.Tensor, max_len: int) -> None:
    """Raise ValueError if a position lies outside the table [0, max_len)."""
    if positions.numel() and int(positions.max()) >= max_len:
        raise ValueError(
            f"sequence reaches position {int(positions.max())}, beyond the context length "
            f"{max_len} (positions 0..{max_len - 1}; a position table has a fixed size)"
        )


class SinusoidalPositions(nn.Module):
    """The fixed sinusoidal table as a module: positions (T,) or (B, T) -> (..., d_model)."""

    def __init__(self, max_len: int, d_model: int):
        super().__init__()
        self.max_len = max_len
        self.register_buffer("table", sinusoidal_encoding(max_len, d_model), persistent=False)

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        check_positions(positions, self.max_len)
        return self.table[positions]


class LearnedPositions(nn.Module):
    """A learned table with one vector per position, as in GPT-2 and BERT."""

    def __init__(self, max_len: int, d_model: int):
        super().__init__()
        self.max_len = max_len
        self.weight = nn.Parameter(torch.randn(max_len, d_model) * 0.02)

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        check_positions(positions, self.max_len)
        return self.weight[positions]


class RotaryEmbedding(nn.Module):
    """Rotary position embedding: rotate each pair (x[2i], x[2i+1]) by angle pos * theta_i.

    Applied to queries and keys (not values), so the score q_m . k_n depends on positions only
    through the offset m - n. x: (B, H, T, d_head) with an even d_head. theta_i = base^(-2i/d_head):
    the first pair turns by one radian per position, the last ones by about 1/base.

    scale > 1 is position interpolation (Chen et al., 2023): positions are divided by scale, so a
    model trained on L positions reads scale * L of them at the angles it was trained on (with a
    short fine-tuning, instead of angles it has never seen). Llama's rope_scaling "linear".
    """

    def __init__(self, d_head: int, max_len: int, base: float = 10000.0, scale: float = 1.0):
        super().__init__()
        if d_head % 2:
            raise ValueError(f"rotary embeddings need an even head size, got d_head={d_head}")
        if not base > 1:
            raise ValueError(f"rotary base={base} must be > 1 (the wavelengths grow as base^(2i/d_head))")
        if not scale >= 1:
            raise ValueError(f"rotary scale={scale} must be >= 1 (position interpolation divides positions by it)")
        self.max_len = max_len
        theta = base ** (-torch.arange(0, d_head, 2, dtype=torch.float64) / d_head)
        position = torch.arange(max_len, dtype=torch.float64) / scale
        angle = position[:, None] * theta  # (max_len, d_head/2)
        self.register_buffer("cos", angle.cos().float(), persistent=False)
        self.register_buffer("sin", angle.sin().float(), persistent=False)

    def forward(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        check_positions(positions, self.max_len)
        cos, sin = self.cos[positions], self.sin[positions]  # (T, d_head/2) or (B, T, d_head/2)
        if cos.dim() == 3:
            cos, sin = cos[:, None], sin[:, None]  # broadcast over heads
        x1, x2 = x[..., 0::2], x[..., 1::2]
        out = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
        return out.flatten(-2).type_as(x)  # interleave the rotated pairs back
