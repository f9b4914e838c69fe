"""Checkers for the encoder and decoder exercises (chapter 4): layer normalisation, the residual
sublayer (pre-LN and post-LN), the decoder inputs and labels of teacher forcing, and which key/value head
each query head reads in grouped-query attention.

Used in chapter 4, Encoder and decoder.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..data import pad_batch
from ._core import Case, Verdict, call_learner, case_generator, run_cases, run_probes, tensor_problem, variant_mistakes


# --------------------------------------------------------------------------------- layer norm
def _layer_norm_variant(x, gamma, beta, eps=1e-5, unbiased=False, eps_outside=False, dims=(-1,),
                        affine="gamma-beta"):
    mean = x.mean(dim=dims, keepdim=True)
    var = x.var(dim=dims, keepdim=True, correction=1 if unbiased else 0)
    x_hat = (x - mean) / (var.sqrt() + eps) if eps_outside else (x - mean) / (var + eps).sqrt()
    if affine == "none":
        return x_hat
    if affine == "swapped":
        return beta * x_hat + gamma
    return gamma * x_hat + beta


_LAYER_NORM_MISTAKES = [
    ("use the biased variance (divide by D, not D - 1): x.var(dim=-1, unbiased=False, keepdim=True), "
     "or ((x - mean) ** 2).mean(-1, keepdim=True).",
     lambda x, g, b, eps=1e-5: _layer_norm_variant(x, g, b, eps, unbiased=True)),
    ("eps goes inside the square root: (x - mean) / sqrt(var + eps).",
     lambda x, g, b, eps=1e-5: _layer_norm_variant(x, g, b, eps, eps_outside=True)),
    ("eps goes inside the square root, added to the biased variance: (x - mean) / sqrt(var + eps).",
     lambda x, g, b, eps=1e-5: _layer_norm_variant(x, g, b, eps, unbiased=True, eps_outside=True)),
    ("normalize each vector over its features, the last dim (dim=-1): one mean and one variance per "
     "position, not per feature.", lambda x, g, b, eps=1e-5: _layer_norm_variant(x, g, b, eps, dims=(0,))),
    ("normalize each vector over its last dim only, not over the whole tensor.",
     lambda x, g, b, eps=1e-5: _layer_norm_variant(x, g, b, eps, dims=tuple(range(x.dim())))),
    ("scale by gamma, then shift by beta: gamma * x_hat + beta (yours swaps them).",
     lambda x, g, b, eps=1e-5: _layer_norm_variant(x, g, b, eps, affine="swapped")),
    ("don't forget the learned scale and shift: return gamma * x_hat + beta.",
     lambda x, g, b, eps=1e-5: _layer_norm_variant(x, g, b, eps, affine="none")),
]


def check_layer_norm(fn, cases: str = "all") -> Verdict:
    """Check fn(x, gamma, beta, eps=1e-5) -> LayerNorm over the last dim, against F.layer_norm.

    x: (..., D); gamma, beta: (D,).
    cases: "all", or the "visible" or "hidden" ones (variance near eps, eps=0.1) of a graded assignment.
    """
    g = case_generator(2)
    r = lambda *shape: torch.randn(*shape, generator=g)  # noqa: E731

    def case(label, x, eps=None, hidden=False):
        D = x.size(-1)
        args = (x, 1.0 + 0.5 * r(D), 0.5 * r(D))
        return Case(label, args, {} if eps is None else {"eps": eps}, hidden=hidden)

    all_cases = [
        case("x (4, 8)", r(4, 8)),
        case("x (2, 3, 16)", r(2, 3, 16)),
        case("x (3, 8) * 1e-3: variance near eps", r(3, 8) * 1e-3, hidden=True),
        case("x (3, 8) + 100: large mean", r(3, 8) + 100),
        case("x (2, 6), eps=0.1", r(2, 6), eps=0.1, hidden=True),
    ]

    def reference(x, gamma, beta, eps=1e-5):
        return F.layer_norm(x.double(), (x.size(-1),), gamma.double(), beta.double(), eps)

    return run_cases("check_layer_norm", fn, all_cases, reference,
                     lambda got, exp: tensor_problem(got, exp, atol=1e-4, rtol=1e-4), _LAYER_NORM_MISTAKES,
                     which=cases)


# ---------------------------------------------------------------------- residual sublayer (LN placement)
def _sublayer_variant(x, sublayer, norm, norm_first, kind="right"):
    """x + f(LN(x)) (pre-LN) or LN(x + f(x)) (post-LN), or one of the usual mistakes (kind)."""
    if kind == "swapped":
        norm_first = not norm_first
    if kind == "no_residual":
        return sublayer(norm(x)) if norm_first else norm(sublayer(x))
    if norm_first:
        if kind == "normed_residual":
            return norm(x) + sublayer(norm(x))
        if kind == "norm_after_too":
            return norm(x + sublayer(norm(x)))
        return x + sublayer(norm(x))
    if kind == "norm_sublayer_only":
        return x + norm(sublayer(x))
    return norm(x + sublayer(x))


_SUBLAYER_MISTAKES = variant_mistakes(_sublayer_variant, [
    ("norm_first=True is pre-LN, x + f(LN(x)); norm_first=False is post-LN, LN(x + f(x)). "
     "Yours does the other one.", "swapped"),
    ("add the input x back: the residual path is the '+ x' that lets the signal and the gradient "
     "skip the sublayer.", "no_residual"),
    ("in pre-LN the residual path carries the raw x, not LN(x): return x + f(LN(x)).", "normed_residual"),
    ("pre-LN does not normalise the sum: return x + f(LN(x)), without a LayerNorm around it.",
     "norm_after_too"),
    ("post-LN normalises the sum x + f(x), not only the sublayer's output: return LN(x + f(x)).",
     "norm_sublayer_only"),
])


def _feed_forward_and_norm(D, g):
    """A feed-forward sublayer and a LayerNorm with random weights, as plain functions (B, T, D) -> same.

    Built from the case generator rather than nn.Linear, whose init would draw from the global RNG.
    """
    w1, w2 = torch.randn(D, 2 * D, generator=g) / D ** 0.5, torch.randn(2 * D, D, generator=g) / (2 * D) ** 0.5
    b1, b2 = 0.3 * torch.randn(2 * D, generator=g), 0.3 * torch.randn(D, generator=g)
    gamma, beta = 1.0 + 0.3 * torch.randn(D, generator=g), 0.3 * torch.randn(D, generator=g)
    return (lambda h: F.gelu(h @ w1 + b1) @ w2 + b2), (lambda h: F.layer_norm(h, (D,), gamma, beta))


def check_residual_sublayer(fn, cases: str = "all") -> Verdict:
    """Check fn(x, sublayer, norm, norm_first) -> x + sublayer(norm(x)) if norm_first (pre-LN), else
    norm(x + sublayer(x)) (post-LN).

    x: (B, T, D); sublayer (a feed-forward network) and norm (a LayerNorm with learned-looking gamma
    and beta) are callables (B, T, D) -> (B, T, D).
    cases: "all", or the "visible" or "hidden" ones (inputs with mean 3) of a graded assignment.
    """
    g = case_generator(4)
    all_cases = []
    for label, shape, shift, norm_first in (("pre-LN, x (2, 3, 8)", (2, 3, 8), 0.0, True),
                                            ("post-LN, x (2, 3, 8)", (2, 3, 8), 0.0, False),
                                            ("pre-LN, x (1, 5, 16) with mean 3", (1, 5, 16), 3.0, True),
                                            ("post-LN, x (1, 5, 16) with mean 3", (1, 5, 16), 3.0, False)):
        x = torch.randn(*shape, generator=g) + shift
        sublayer, norm = _feed_forward_and_norm(shape[-1], g)
        all_cases.append(Case(label, (x, sublayer, norm, norm_first), hidden=shift != 0.0))
    return run_cases("check_residual_sublayer", fn, all_cases, _sublayer_variant,
                     lambda got, exp: tensor_problem(got, exp, atol=1e-4, rtol=1e-4), _SUBLAYER_MISTAKES,
                     fallback_hint="pre-LN: x + sublayer(norm(x)); post-LN: norm(x + sublayer(x)).", which=cases)


# ------------------------------------------------------------------ teacher forcing: inputs and labels
class _Batch(tuple):
    """(decoder_inputs, labels) that also remembers its pad_id, so the comparison knows the padding."""

    def __new__(cls, inputs, labels, pad_id):
        pair = super().__new__(cls, (inputs, labels))
        pair.pad_id = pad_id
        return pair


def _teacher_forcing_variant(targets, bos_id, eos_id, pad_id, kind="right"):
    """(inputs, labels) as teacher_forcing_targets makes them, or one of the usual mistakes (kind)."""
    rows = [[int(t) for t in seq] for seq in targets]
    inputs, labels = [[bos_id] + r for r in rows], [r + [eos_id] for r in rows]
    if kind == "no_shift":  # the decoder reads the very tokens it must predict
        inputs = labels
    elif kind == "labels_equal_inputs":
        labels = inputs
    elif kind == "no_eos":
        labels = [r + [pad_id] for r in rows]
    elif kind == "eos_in_inputs":
        inputs = [[bos_id] + r + [eos_id] for r in rows]
    elif kind == "swapped":
        inputs, labels = labels, inputs
    side = "left" if kind == "left_padding" else "right"
    return _Batch(pad_batch(inputs, pad_id, side=side)[0], pad_batch(labels, pad_id, side=side)[0], pad_id)


def _teacher_forcing_problem(got, expected):
    """None if got == expected; label slots that are padding may hold pad_id or -100."""
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        return f"expected a pair (decoder_inputs, labels), got a {type(got).__name__}"
    for what, tensor, reference in (("decoder_inputs", got[0], expected[0]), ("labels", got[1], expected[1])):
        if not isinstance(tensor, torch.Tensor):
            return f"{what} is a {type(tensor).__name__}, expected a torch.Tensor"
        if tensor.dtype.is_floating_point or tensor.dtype == torch.bool:
            return f"{what} has dtype {tensor.dtype}; token ids must be integers (torch.long)"
        if tensor.shape != reference.shape:
            return f"{what} has shape {tuple(tensor.shape)} but the reference has shape {tuple(reference.shape)}"
        tensor = tensor.long()
        if what == "labels":  # cross_entropy ignores -100: as good as pad_id in a padding slot of the labels
            tensor = tensor.masked_fill((reference == expected.pad_id) & (tensor == -100), expected.pad_id)
        wrong = (tensor != reference).nonzero()
        if len(wrong):
            b, t = wrong[0].tolist()
            return f"{what} row {b} is {tensor[b].tolist()} but should be {reference[b].tolist()}"
    return None


_TEACHER_FORCING_MISTAKES = variant_mistakes(_teacher_forcing_variant, [
    ("the decoder input is the target shifted right, starting with bos; as it is, position i reads "
     "the very token it is asked to predict and only learns to copy it.", "no_shift"),
    ("the labels are the decoder inputs shifted left by one (target + [eos]); equal inputs and labels "
     "teach the model to copy its input.", "labels_equal_inputs"),
    ("end every label row with eos (labels = target + [eos]): without it the model never learns "
     "when to stop.", "no_eos"),
    ("the decoder input stops before eos (inputs = [bos] + target): nothing is predicted after eos, "
     "so inputs and labels both have len(target) + 1 positions.", "eos_in_inputs"),
    ("return (decoder_inputs, labels) in this order: the inputs start with bos, the labels end with eos.",
     "swapped"),
    ("pad on the right, after the tokens (pad_batch's default): with left padding the targets do not "
     "start at position 0.", "left_padding"),
])


def check_teacher_forcing_targets(fn, cases: str = "all") -> Verdict:
    """Check fn(targets, bos_id, eos_id, pad_id) -> (decoder_inputs, labels), integer tensors (B, T + 1).

    targets: a list of B lists of token ids without bos/eos; T is the longest length. decoder_inputs =
    [bos] + target and labels = target + [eos], right-padded with pad_id (labels may use -100 there).
    cases: "all", or the "visible" or "hidden" ones (an empty target, other ids) of a graded assignment.
    """
    all_cases = [
        Case("one target [5, 6, 7]", ([[5, 6, 7]], 1, 2, 0)),
        Case("targets of lengths 4 and 2", ([[3, 4, 5, 6], [7, 8]], 1, 2, 0)),
        Case("an empty target among others", ([[9, 9], [], [4]], 1, 2, 0), hidden=True),
        Case("other special ids: bos=10, eos=11, pad=12", ([[3, 5], [7, 8, 9]], 10, 11, 12), hidden=True),
    ]
    return run_cases("check_teacher_forcing_targets", fn, all_cases, _teacher_forcing_variant,
                     _teacher_forcing_problem, _TEACHER_FORCING_MISTAKES,
                     fallback_hint="decoder_inputs = [bos] + target, labels = target + [eos], padded on the "
                                   "right with pad_id; use the ids you are given.", which=cases)


# ----------------------------------------------------------------- grouped-query attention: head grouping
def _kv_head_variant(query_head, n_heads, n_kv_heads, kind="right"):
    """The key/value head that query head `query_head` reads, or one of the usual mistakes (kind)."""
    if kind == "modulo":  # interleaved groups: 0, 1, 0, 1, ... instead of 0, 0, 1, 1, ...
        return query_head % n_kv_heads
    if kind == "divide_by_kv_heads":  # divides by the number of groups instead of the group size
        return query_head // n_kv_heads
    if kind == "own_head":  # as in multi-head attention
        return query_head
    return query_head // (n_heads // n_kv_heads)


_KV_HEAD_MISTAKES = [
    ("consecutive query heads share a key/value head: with 4 query heads and 2 KV heads, heads 0 and 1 read "
     "KV head 0 and heads 2 and 3 read KV head 1 (not 0, 1, 0, 1).", "modulo"),
    ("divide by the group size n_heads // n_kv_heads (query heads per KV head), not by n_kv_heads.",
     "divide_by_kv_heads"),
    ("with fewer KV heads than query heads, query head h cannot have a KV head of its own: "
     "n_heads // n_kv_heads query heads share each one.", "own_head"),
]


def check_kv_head_of(fn, cases: str = "all") -> Verdict:
    """Check fn(query_head, n_heads, n_kv_heads) -> the key/value head that query head reads in grouped-query
    attention (llmbook.attention.MultiHeadAttention's layout: query heads in n_kv_heads consecutive groups).

    Every query head of each case is asked; n_kv_heads = n_heads is multi-head and 1 multi-query attention.
    cases: "all", or the "visible" or "hidden" ones (6 heads in 3 groups; 32 heads in 8) of a graded assignment.
    """
    all_cases = [Case(f"n_heads={h}, n_kv_heads={g}", (h, g), hidden=hidden)
                 for h, g, hidden in ((4, 2, False), (8, 2, False), (4, 1, False), (4, 4, False),
                                      (6, 3, True), (32, 8, True))]

    def answers(f, n_heads, n_kv_heads):
        return [f(q, n_heads, n_kv_heads) for q in range(n_heads)]

    def probe(case):
        expected = answers(_kv_head_variant, *case.args)
        ok, got = call_learner(lambda h, g: answers(fn, h, g), case)
        if not ok:
            return got, None
        try:
            got = [int(v) for v in got]
        except (TypeError, ValueError):
            return f"expected an integer for every query head, got {got!r}", None
        if got == expected:
            return None
        hint = next((h for h, kind in _KV_HEAD_MISTAKES
                     if [_kv_head_variant(q, *case.args, kind) for q in range(case.args[0])] == got), None)
        return f"query heads 0..{len(got) - 1} read KV heads {got} but should read {expected}", hint

    return run_probes("check_kv_head_of", all_cases, probe, which=cases)
