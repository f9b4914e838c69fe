"""Checkers for the inference exercises (chapter 7): the KV-cache memory formula, the top-p (nucleus)
filter and symmetric per-row int8 quantisation.

Used in chapter 7, Inference engineering.
"""
from __future__ import annotations

import torch

from ..generate import top_p_filter
from ..quantize import quantize_weight
from ._core import Case, Verdict, case_generator, run_cases, tensor_problem


# -------------------------------------------------------------------------------- KV-cache bytes
def _kv_bytes(n_layers, n_heads, n_kv_heads, d_head, n_tokens, batch_size, bytes_per_value):
    """n_heads (query heads) is not in the formula: only the key/value heads store keys and values."""
    return 2 * n_layers * n_kv_heads * d_head * n_tokens * batch_size * bytes_per_value


def _byte_count_problem(got, expected):
    """None if got is exactly the expected whole number of bytes (an int, a float or a one-element tensor)."""
    if isinstance(got, torch.Tensor) and got.numel() == 1:
        got = got.item()
    if isinstance(got, bool) or not isinstance(got, (int, float)):
        return f"returned a {type(got).__name__}, expected a number of bytes"
    if got != expected:
        return f"returned {got:,} bytes, expected {expected:,}"
    return None


_KV_MISTAKES = [
    ("you used the number of query heads (n_heads): with grouped-query or multi-query attention only the "
     "n_kv_heads key/value heads store keys and values.",
     lambda L, H, Hkv, d, T, B, b: _kv_bytes(L, H, H, d, T, B, b)),
    ("each layer stores a key AND a value for every token and head: multiply by 2.",
     lambda L, H, Hkv, d, T, B, b: _kv_bytes(L, H, Hkv, d, T, B, b) // 2),
    ("every layer has its own cache: multiply by the number of layers.",
     lambda L, H, Hkv, d, T, B, b: _kv_bytes(1, H, Hkv, d, T, B, b)),
    ("every sequence of the batch has its own keys and values: multiply by the batch size.",
     lambda L, H, Hkv, d, T, B, b: _kv_bytes(L, H, Hkv, d, T, 1, b)),
    ("every key/value head stores its own keys and values of width d_head: multiply by n_kv_heads.",
     lambda L, H, Hkv, d, T, B, b: _kv_bytes(L, H, 1, d, T, B, b)),
    ("the cache grows linearly with the number of tokens (one key and one value per token); it is the "
     "attention weights that grow as T^2.", lambda L, H, Hkv, d, T, B, b: _kv_bytes(L, H, Hkv, d, T * T, B, b)),
    ("bytes_per_value is already in bytes (2 for fp16); do not multiply by 8 bits.",
     lambda L, H, Hkv, d, T, B, b: _kv_bytes(L, H, Hkv, d, T, B, b) * 8),
    ("the size does not depend on bytes_per_value in your answer: multiply by it.",
     lambda L, H, Hkv, d, T, B, b: _kv_bytes(L, H, Hkv, d, T, B, 1)),
]


def check_kv_cache_bytes(fn, cases: str = "all") -> Verdict:
    """Check fn(n_layers, n_heads, n_kv_heads, d_head, n_tokens, batch_size, bytes_per_value) -> bytes of a KV cache.

    n_heads counts the query heads, n_kv_heads the key/value heads (equal without grouped-query
    attention). cases: "all", or the "visible" or "hidden" ones (a batch of 3, int8) of a graded assignment."""
    all_cases = [
        Case("3 layers, 6 heads (all with keys and values), d_head 16, 10 tokens, batch 1, fp32",
             (3, 6, 6, 16, 10, 1, 4)),
        Case("grouped-query: 2 layers, 8 query heads, 2 key/value heads, d_head 16, 10 tokens, batch 1, fp32",
             (2, 8, 2, 16, 10, 1, 4)),
        Case("GPT-2 small: 12 layers, 12 heads, d_head 64, 1,024 tokens, batch 1, fp16", (12, 12, 12, 64, 1024, 1, 2)),
        Case("multi-query: 1 layer, 2 query heads, 1 key/value head, d_head 8, 5 tokens, batch 3, fp32",
             (1, 2, 1, 8, 5, 3, 4), hidden=True),
        Case("Llama 3 8B's shape: 32 layers, 32 query heads, 8 key/value heads, d_head 128, 4,096 tokens, "
             "batch 8, fp16", (32, 32, 8, 128, 4096, 8, 2)),
        Case("1 layer, 1 head, d_head 4, 1 token, batch 1, int8", (1, 1, 1, 4, 1, 1, 1), hidden=True),
    ]
    return run_cases("check_kv_cache_bytes", fn, all_cases, _kv_bytes, _byte_count_problem, _KV_MISTAKES,
                     fallback_hint="2 (K and V) x layers x key/value heads x d_head x tokens x batch x bytes per value",
                     which=cases)


# ---------------------------------------------------------------------------------- top-p filter
def _filter_problem(got, expected):
    """None if got keeps exactly expected's tokens with their logits and -inf elsewhere; else what differs."""
    if not isinstance(got, torch.Tensor):
        return f"returned a {type(got).__name__}, expected a tensor of logits"
    if got.shape != expected.shape:
        return f"the output has shape {tuple(got.shape)} but the logits have shape {tuple(expected.shape)}"
    got = got.detach().double()
    keep = torch.isfinite(expected)
    if torch.isnan(got).any():
        return "the output contains nan"
    wrongly_kept = torch.isfinite(got) & ~keep
    wrongly_dropped = ~torch.isfinite(got) & keep
    if wrongly_kept.any():
        at = tuple(wrongly_kept.nonzero()[0].tolist())
        return f"the token at index {at} is kept but lies outside the nucleus (its logit should be -inf)"
    if wrongly_dropped.any():
        at = tuple(wrongly_dropped.nonzero()[0].tolist())
        return f"the token at index {at} is dropped but belongs to the nucleus"
    if (got[~keep] != float("-inf")).any():
        return "dropped tokens must get the logit -inf"
    return tensor_problem(got[keep], expected[keep].double(), "the kept logits")


def _top_p_keep_below(logits, p):
    """Mistake: keep while the running sum stays <= p, which drops the token that crosses p."""
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    cum = sorted_logits.softmax(-1).cumsum(-1)
    drop_sorted = cum > p
    return logits.masked_fill(drop_sorted.scatter(-1, order, drop_sorted), float("-inf"))


def _top_p_sorted(logits, p):
    """Mistake: the filtered logits are returned in sorted order."""
    return top_p_filter(logits, p).sort(dim=-1, descending=True).values


def _top_p_zero(logits, p):
    """Mistake: dropped logits set to 0, which still gives them probability."""
    kept = top_p_filter(logits, p)
    return kept.masked_fill(torch.isinf(kept), 0.0)


def _top_p_probabilities(logits, p):
    """Mistake: returns filtered probabilities instead of logits."""
    return top_p_filter(logits, p).softmax(-1)


def _top_p_single(logits, p):
    """Mistake: keeps every token whose own probability is at least 1 - p."""
    return logits.masked_fill(logits.softmax(-1) < 1 - p, float("-inf"))


_TOP_P_MISTAKES = [
    ("keep the token whose probability makes the running sum reach p: a token is dropped only when "
     "the tokens ranked above it already reach p (cumsum - prob >= p).", _top_p_keep_below),
    ("scatter the result back to the original token order; you returned it sorted.", _top_p_sorted),
    ("set the dropped logits to float('-inf'), not 0: exp(0) still gives a dropped token probability.",
     _top_p_zero),
    ("return logits (with -inf for dropped tokens), not probabilities; sampling applies the softmax.",
     _top_p_probabilities),
    ("top-p ranks the tokens and adds up their probabilities; it does not compare each probability "
     "with a threshold on its own.", _top_p_single),
]


def _top_p_cases() -> list[Case]:
    g = case_generator(7)
    peaked = torch.tensor([0.5, 3.0, -1.0, 2.0, 0.0, -2.0])  # probabilities about 0.05, 0.64, 0.01, 0.24, ...
    return [
        Case("logits (6,), p=0.9", (peaked, 0.9)),
        Case("logits (6,), p=0.5 (only the top token)", (peaked, 0.5)),
        Case("logits (3, 10) random, p=0.8", (torch.randn(3, 10, generator=g) * 2, 0.8)),
        Case("logits (2, 27) random, p=0.95", (torch.randn(2, 27, generator=g) * 3, 0.95)),
        Case("logits (4, 8) random, p=1.0 (keep everything)", (torch.randn(4, 8, generator=g), 1.0), hidden=True),
        Case("logits (5,), p=0.01 (the top token always stays)", (torch.tensor([1.0, 2.0, 0.5, -1.0, 1.5]), 0.01),
             hidden=True),
    ]


def check_top_p_filter(fn, cases: str = "all") -> Verdict:
    """Check fn(logits (..., V), p) -> logits with every token outside the nucleus set to -inf.

    The nucleus is the smallest set of most likely tokens whose probabilities add up to at least p.
    cases: "all", or the "visible" or "hidden" ones (p = 1.0, p = 0.01) of a graded assignment.
    """
    return run_cases("check_top_p_filter", fn, _top_p_cases(), top_p_filter, _filter_problem, _TOP_P_MISTAKES,
                     fallback_hint="sort the logits, softmax, cumsum; drop a token where cumsum - prob >= p; "
                                   "scatter the drop mask back and fill with -inf.", which=cases)


# ------------------------------------------------------------------------------ int8 quantisation
def _reference_int8(w):
    return quantize_weight(w, bits=8, per_channel=True)


def _quant(w, reduce="row", qmax=127, rounding=torch.round, absolute=True):
    """Symmetric int8 quantisation with switches reproducing the usual mistakes."""
    a = w.abs() if absolute else w
    if reduce == "row":
        amax = a.amax(dim=1)
    elif reduce == "tensor":
        amax = a.amax().expand(w.size(0))
    else:  # per column, wrongly applied to the rows' values
        amax = a.amax(dim=0)[: w.size(0)]
    scale = torch.where(amax > 0, amax / qmax, torch.ones_like(amax))
    q = rounding(w / scale[:, None]).clamp(-127, 127).to(torch.int8)
    return q, scale


_INT8_MISTAKES = [
    ("use one scale per row (output channel): amax over dim=1; one scale for the whole matrix wastes the "
     "int8 range of rows with small weights.", lambda w: _quant(w, reduce="tensor")),
    ("divide max|w| by 127, the largest int8 value used; with 128 the scale is slightly off.",
     lambda w: _quant(w, qmax=128)),
    ("round to the nearest integer (torch.round); converting with .to(torch.int8) truncates towards 0.",
     lambda w: _quant(w, rounding=torch.trunc)),
    ("round to the nearest integer; floor always rounds down.", lambda w: _quant(w, rounding=torch.floor)),
    ("the scale comes from the largest ABSOLUTE value of the row (w.abs().amax(dim=1)); a large negative "
     "weight would otherwise be clipped.", lambda w: _quant(w, absolute=False)),
]


def _int8_problem(got, expected):
    if not (isinstance(got, (tuple, list)) and len(got) == 2):
        return f"returned a {type(got).__name__}, expected a pair (q, scale)"
    q, scale = got
    q_ref, scale_ref = expected
    if not isinstance(q, torch.Tensor) or q.dtype != torch.int8:
        return (f"q has dtype {getattr(q, 'dtype', type(q).__name__)}; store the integers as torch.int8 "
                f"(.to(torch.int8)) to get one byte per weight")
    if q.shape != q_ref.shape:
        return f"q has shape {tuple(q.shape)} but the weight has shape {tuple(q_ref.shape)}"
    if not isinstance(scale, torch.Tensor):
        return f"scale is a {type(scale).__name__}, expected a tensor with one scale per row"
    if scale.numel() != scale_ref.numel():
        return f"scale has {scale.numel()} entries; expected one per row, {scale_ref.numel()}"
    scale = scale.detach().reshape(-1).double()
    zero_rows = q_ref.abs().amax(dim=1) == 0  # any finite scale represents a row of zeros
    if not torch.isfinite(scale).all():
        return "scale contains inf or nan: a row of zeros must not be divided by 0 (give it scale 1)"
    if (q[zero_rows] != 0).any():
        return "a row of zeros must quantise to zeros"
    problem = tensor_problem(scale[~zero_rows], scale_ref[~zero_rows].double(), "scale", atol=1e-8, rtol=1e-5)
    if problem:
        return problem
    off = (q.long() - q_ref.long()).abs()
    if off.max() > 0:
        i, j = (off == off.max()).nonzero()[0].tolist()
        return f"q[{i}, {j}] is {int(q[i, j])} but the reference gives {int(q_ref[i, j])}"
    return None


def _int8_cases() -> list[Case]:
    g = case_generator(11)
    rows_of_different_size = torch.randn(4, 6, generator=g) * torch.tensor([[0.01], [0.1], [1.0], [5.0]])
    with_zero_row = torch.randn(3, 5, generator=g)
    with_zero_row[1] = 0.0
    negative_peak = torch.tensor([[0.2, -1.0, 0.5, 0.3], [0.9, 0.1, -0.2, 0.4]])
    return [
        Case("w (2, 4) with a large negative weight", (negative_peak,)),
        Case("w (4, 6), rows of very different size", (rows_of_different_size,), hidden=True),
        Case("w (8, 16) random", (torch.randn(8, 16, generator=g) * 0.02,)),
        Case("w (3, 5) whose row 1 is all zeros", (with_zero_row,), hidden=True),
        Case("w (64, 32) random", (torch.randn(64, 32, generator=g),)),
    ]


def check_quantize_int8(fn, cases: str = "all") -> Verdict:
    """Check fn(w (out, in)) -> (q int8 (out, in), scale (out,)): symmetric per-row int8 quantisation,
    scale = max|row| / 127, q = round(w / scale), so that w is approximately q * scale.

    cases: "all", or the "visible" or "hidden" ones (rows of very different size, a row of zeros) of a
    graded assignment."""
    return run_cases("check_quantize_int8", fn, _int8_cases(), _reference_int8, _int8_problem, _INT8_MISTAKES,
                     fallback_hint="scale = w.abs().amax(dim=1) / 127; "
                                   "q = torch.round(w / scale[:, None]).to(torch.int8).", which=cases)
