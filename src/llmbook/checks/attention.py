"""Checkers for the attention exercises (chapter 3): scaled dot-product attention, the causal mask and
sinusoidal positions.

Used in chapter 3, Attention, step by step.
"""
from __future__ import annotations

import math

import torch

from ..attention import causal_mask, scaled_dot_product_attention
from ..positional import sinusoidal_encoding
from ._core import Case, Verdict, case_generator, run_cases, tensor_problem


# ------------------------------------------------------------------- scaled dot-product attention
def _attention(q, k, v, mask=None, scale=None, softmax_dim=-1, fill=float("-inf"), invert=False,
               mask_after=False):
    """The reference formula with switches that reproduce the usual mistakes; returns (output, weights)."""
    scale = 1.0 / math.sqrt(q.size(-1)) if scale is None else scale
    scores = (q @ k.transpose(-2, -1)) * scale  # (..., T_q, T_k)
    if mask is not None and not mask_after:
        blocked = mask if invert else ~mask
        scores = scores.masked_fill(blocked, fill)
    weights = torch.softmax(scores, dim=softmax_dim)
    if mask is not None and mask_after:
        weights = weights * mask
    return weights @ v, weights


def _split_attention_output(got):
    """Learners may return output or (output, weights); returns (output, weights or None)."""
    if isinstance(got, (tuple, list)) and len(got) == 2:
        return got[0], got[1]
    return got, None


def _compare_attention(got, expected):
    out, weights = _split_attention_output(got)
    problem = tensor_problem(out, expected[0], "output")
    if problem is None and weights is not None:
        problem = tensor_problem(weights, expected[1], "the attention weights")
    return problem


def _attention_cases() -> list[Case]:
    g = case_generator(0)
    r = lambda *shape, scale=1.0: torch.randn(*shape, generator=g) * scale  # noqa: E731
    pad = torch.tensor([[True, True, True, True], [True, True, False, False]])[:, None, None, :]  # (2, 1, 1, 4)
    cases = [
        Case("q (3, 4), no mask", (r(3, 4), r(3, 4), r(3, 4))),
        Case("q (2, 5, 8), no mask", (r(2, 5, 8), r(2, 5, 8), r(2, 5, 8))),
        Case("q (2, 3, 8), k (2, 6, 8), v (2, 6, 16): cross-attention", (r(2, 3, 8), r(2, 6, 8), r(2, 6, 16))),
        Case("q (2, 4, 5, 8), mask=causal", (r(2, 4, 5, 8), r(2, 4, 5, 8), r(2, 4, 5, 8)),
             {"mask": causal_mask(5)}),
        Case("q (2, 2, 4, 8), mask=padding (2, 1, 1, 4)", (r(2, 2, 4, 8), r(2, 2, 4, 8), r(2, 2, 4, 8)),
             {"mask": pad}, hidden=True),
        Case("q (1, 6, 64), large d_k, no mask", (r(1, 6, 64), r(1, 6, 64), r(1, 6, 64)), hidden=True),
    ]
    return cases


_ATTENTION_MISTAKES = [
    ("did you divide the scores by sqrt(d_k)? Without the scale, large d_k pushes the softmax "
     "towards one-hot.", lambda q, k, v, mask=None: _attention(q, k, v, mask, scale=1.0)),
    ("you divided by d_k; the scale is 1 / sqrt(d_k) (math.sqrt(q.size(-1))).",
     lambda q, k, v, mask=None: _attention(q, k, v, mask, scale=1.0 / q.size(-1))),
    ("scale by sqrt(d_k), the size of the queries and keys (q.size(-1)), not of the values.",
     lambda q, k, v, mask=None: _attention(q, k, v, mask, scale=1.0 / math.sqrt(v.size(-1)))),
    ("the softmax runs over the keys, the last dim (dim=-1), so that each query's weights sum to 1.",
     lambda q, k, v, mask=None: _attention(q, k, v, mask, softmax_dim=-2)),
    ("in this book a mask is True where attention is allowed: fill the scores with -inf where the "
     "mask is False (scores.masked_fill(~mask, float('-inf'))).",
     lambda q, k, v, mask=None: _attention(q, k, v, mask, invert=True)),
    ("fill the masked scores with float('-inf'), not 0: exp(0) = 1 still gives a masked key weight.",
     lambda q, k, v, mask=None: _attention(q, k, v, mask, fill=0.0)),
    ("apply the mask to the scores before the softmax (fill with -inf), not to the weights after it: "
     "each row must still sum to 1.", lambda q, k, v, mask=None: _attention(q, k, v, mask, mask_after=True)),
    ("the mask was ignored: masked keys must get weight exactly 0.",
     lambda q, k, v, mask=None: _attention(q, k, v, None)),
]


def check_scaled_dot_product_attention(fn, cases: str = "all") -> Verdict:
    """Check fn(q, k, v, mask=None) -> output (..., T_q, d_v), or (output, weights (..., T_q, T_k)).

    mask is bool, True where attention is allowed, broadcastable to (..., T_q, T_k).
    cases: "all", or the "visible" or "hidden" ones (a padding mask, large d_k) of a graded assignment.
    """
    return run_cases("check_scaled_dot_product_attention", fn, _attention_cases(),
                     scaled_dot_product_attention, _compare_attention, _ATTENTION_MISTAKES,
                     fallback_hint="compare with softmax(q @ k.transpose(-2, -1) / sqrt(d_k)) @ v.", which=cases)


# ----------------------------------------------------------------------------------- causal mask
def _mask_problem(got, expected):
    """None if got is a bool tensor equal to expected; else what is wrong (dtype, shape, entries)."""
    if not isinstance(got, torch.Tensor):
        return f"the mask is a {type(got).__name__}, expected a torch.Tensor"
    if got.dtype != torch.bool:
        values = got.detach().float()
        if torch.isinf(values).any():
            return (f"the mask has dtype {got.dtype} with -inf entries: that is an additive mask; "
                    f"this book's masks are bool, True where attention is allowed")
        return (f"the mask has dtype {got.dtype}; return a bool tensor (e.g. .bool()): "
                f"F.scaled_dot_product_attention adds a float mask to the scores instead of masking")
    if got.shape != expected.shape:
        return f"the mask has shape {tuple(got.shape)} but expected (T, T) = {tuple(expected.shape)}"
    wrong = (got != expected).nonzero()
    if len(wrong):
        i, j = wrong[0].tolist()
        return (f"entry ({i}, {j}) is {bool(got[i, j])} but query {i} "
                f"{'may' if bool(expected[i, j]) else 'must not'} attend to key {j}")
    return None


_CAUSAL_MISTAKES = [
    ("your mask allows the upper triangle: query i would see keys j > i, the future. Use "
     "torch.tril (key j <= query i).", lambda T: torch.ones(T, T, dtype=torch.bool).triu()),
    ("your mask is True where attention is blocked; in this book True means 'may attend' "
     "(the lower triangle, diagonal included).", lambda T: torch.ones(T, T, dtype=torch.bool).triu(1)),
    ("a position must be allowed to attend to itself: keep the diagonal (torch.tril with diagonal=0).",
     lambda T: torch.ones(T, T, dtype=torch.bool).tril(-1)),
]


def check_causal_mask(fn, cases: str = "all") -> Verdict:
    """Check fn(T) -> bool (T, T), True where query i may attend to key j, i.e. j <= i.

    cases: "all", or the "visible" or "hidden" ones (T = 1) of a graded assignment."""
    all_cases = [Case(f"T={T}", (T,), hidden=T == 1) for T in (4, 1, 2, 8)]
    return run_cases("check_causal_mask", fn, all_cases, lambda T: causal_mask(T), _mask_problem,
                     _CAUSAL_MISTAKES, fallback_hint="torch.ones(T, T, dtype=torch.bool).tril() is one way.",
                     which=cases)


# ------------------------------------------------------------------------- sinusoidal positions
def _sinusoids(max_len, d_model, exponent="pair", swap=False, halves=False, multiply=False):
    """Sinusoidal table with switches reproducing the usual mistakes; (max_len, d_model) float64."""
    pos = torch.arange(max_len, dtype=torch.float64)[:, None]
    i = torch.arange(d_model // 2, dtype=torch.float64)
    if exponent == "pair":  # correct: columns 2i and 2i+1 share 10000^(2i/d)
        sin_freq = cos_freq = 10000 ** (-2 * i / d_model)
    elif exponent == "i":  # 10000^(i/d): the pair index without the factor 2
        sin_freq = cos_freq = 10000 ** (-i / d_model)
    else:  # "column": each column's own index j in 10000^(j/d)
        sin_freq, cos_freq = 10000 ** (-2 * i / d_model), 10000 ** (-(2 * i + 1) / d_model)
    if multiply:
        sin_freq, cos_freq = 1 / sin_freq, 1 / cos_freq
    sin, cos = torch.sin(pos * sin_freq), torch.cos(pos * cos_freq)  # (max_len, d_model / 2) each
    if swap:
        sin, cos = torch.cos(pos * sin_freq), torch.sin(pos * cos_freq)
    if halves:
        return torch.cat([sin, cos], dim=-1)
    return torch.stack([sin, cos], dim=-1).flatten(-2)  # interleave: sin, cos, sin, cos, ...


_SINUSOID_MISTAKES = [
    ("even columns (0, 2, 4, ...) hold sin and odd columns hold cos; yours are swapped.",
     lambda n, d: _sinusoids(n, d, swap=True)),
    ("the exponent is 2i/d_model, where i counts the (sin, cos) pairs; you used i/d_model.",
     lambda n, d: _sinusoids(n, d, exponent="i")),
    ("columns 2i and 2i+1 share one frequency, 1 / 10000^(2i/d_model); you used each column's "
     "own index in the exponent.", lambda n, d: _sinusoids(n, d, exponent="column")),
    ("interleave the columns: PE[:, 0::2] = sin, PE[:, 1::2] = cos; you put all the sines in the "
     "first half and the cosines in the second.", lambda n, d: _sinusoids(n, d, halves=True)),
    ("the angle is pos / 10000^(2i/d_model): the frequency falls along the columns; you multiplied.",
     lambda n, d: _sinusoids(n, d, multiply=True)),
]


def check_sinusoidal_encoding(fn, cases: str = "all") -> Verdict:
    """Check fn(max_len, d_model) -> (max_len, d_model): PE[pos, 2i] = sin(pos / 10000^(2i/d)),
    PE[pos, 2i+1] = cos(pos / 10000^(2i/d)).

    cases: "all", or the "visible" or "hidden" ones (one position; d_model = 6, not a multiple of 4) of a
    graded assignment."""
    all_cases = [Case(f"max_len={n}, d_model={d}", (n, d), hidden=(n, d) in ((1, 2), (7, 6)))
                 for n, d in ((1, 2), (4, 8), (10, 16), (7, 6), (50, 128))]
    return run_cases("check_sinusoidal_encoding", fn, all_cases, sinusoidal_encoding,
                     lambda got, exp: tensor_problem(got, exp, "the table", atol=1e-4, rtol=1e-4),
                     _SINUSOID_MISTAKES, which=cases)
