"""Exercise checkers: run a learner's function against the reference and print a verdict.

Each ``check_<name>(fn)`` calls fn on several cases (ordinary shapes and edge cases) and prints
one line: ✅ when every case matches the reference, or ❌ with the first failing case, what is
wrong with it and, when the output matches a known mistake, a hint. It returns True or False.
A wrong answer, or an exception raised by the learner's code, is reported, never raised:
a learner needs a message, not a traceback.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F

from .attention import causal_mask, scaled_dot_product_attention
from .positional import sinusoidal_encoding

ATOL, RTOL = 1e-5, 1e-4  # float32 arithmetic in a different order than the reference's


# ------------------------------------------------------------------------------ shared machinery
@dataclass
class Case:
    """One call of the learner's function: fn(*args, **kwargs), described by label in messages."""

    label: str
    args: tuple
    kwargs: dict = field(default_factory=dict)


def _clone(x):
    """Copy tensors (inside tuples and lists too), so an in-place edit cannot change the reference."""
    if isinstance(x, torch.Tensor):
        return x.clone()
    if isinstance(x, (tuple, list)):
        return type(x)(_clone(v) for v in x)
    return x


def _call(fn, case: Case, copy: bool = True):
    """Run fn on the case (on a copy unless copy=False); returns (True, result) or (False, the error)."""
    args, kwargs = (_clone(case.args), _clone(case.kwargs)) if copy else (case.args, case.kwargs)
    try:
        return True, fn(*args, **kwargs)
    except Exception as err:  # the learner's bug, whatever it is, becomes a message
        first_line = (str(err).strip().splitlines() or [""])[0]
        if len(first_line) > 200:
            first_line = first_line[:197] + "..."
        return False, f"your function raised {type(err).__name__}: {first_line}"


def _pass(name: str, n_cases: int) -> bool:
    print(f"✅ {name}: all {n_cases} cases pass")
    return True


def _fail(name: str, where: str, problem: str, hint: str | None = None) -> bool:
    message = f"❌ {name}: {where}: {problem}."
    if hint:
        message += f" Hint: {hint}"
    print(message)
    return False


def _at(flat: int, shape) -> str:
    """" at index (i, j, ...)" for a flat position in a tensor of this shape; "" for a single number."""
    if len(shape) == 0:
        return ""
    return f" at index {tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), tuple(shape)))}"


def _as_tensor(x, what: str):
    """x as a float64 tensor, or (None, problem) when it is not a tensor or a plain number."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().double(), None
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return torch.tensor(float(x), dtype=torch.float64), None
    return None, f"{what} is a {type(x).__name__}, expected a torch.Tensor"


def _tensor_problem(got, expected, what: str = "output", atol: float = ATOL, rtol: float = RTOL):
    """None if got matches expected (same shape, close values, nan where nan), else what differs."""
    got, problem = _as_tensor(got, what)
    if problem:
        return problem
    expected = expected.detach().cpu().double()
    if got.shape != expected.shape:
        return f"{what} has shape {tuple(got.shape)} but the reference has shape {tuple(expected.shape)}"
    for bad, name in ((torch.isnan, "nan"), (torch.isinf, "inf")):
        unexpected = bad(got) & ~bad(expected)
        if unexpected.any():
            flat = int(unexpected.flatten().nonzero()[0])
            return f"{what} contains {name}{_at(flat, got.shape)}, where the reference is finite"
    close = torch.isclose(got, expected, rtol=rtol, atol=atol, equal_nan=True)
    if close.all():
        return None
    diff = (got - expected).abs().nan_to_num(nan=math.inf).masked_fill(close, 0.0)
    flat = int(diff.flatten().argmax())
    if got.dim() == 0:
        return f"{what} is {got.item():.6g} but the reference gives {expected.item():.6g}"
    return f"{what} differs from the reference by up to {diff.flatten()[flat].item():.3g}{_at(flat, got.shape)}"


def _diagnose(got, case: Case, mistakes, compare, expected) -> str | None:
    """The hint of the first known mistake whose output the learner's output reproduces."""
    for hint, wrong_fn in mistakes:
        try:
            wrong = wrong_fn(*_clone(case.args), **_clone(case.kwargs))
        except Exception:  # this mistake cannot even run on this case: not the learner's one
            continue
        # a mistake counts only where it changes the answer (e.g. not when d_k = 1)
        if compare(got, wrong) is None and compare(expected, wrong) is not None:
            return hint
    return None


def _run_cases(name: str, fn, cases: list[Case], reference: Callable, compare: Callable,
               mistakes=(), fallback_hint: str | None = None) -> bool:
    """Run every case; print ✅, or ❌ at the first failing case with a hint; return the verdict.

    compare(got, expected) -> None when they agree, else a sentence saying what differs.
    mistakes: (hint, wrong_fn) pairs; wrong_fn takes the case's arguments like the reference.
    """
    for number, case in enumerate(cases, start=1):
        expected = reference(*_clone(case.args), **_clone(case.kwargs))
        where = f"case {number} ({case.label})"
        ok, got = _call(fn, case)
        if not ok:
            return _fail(name, where, got)
        problem = compare(got, expected)
        if problem:
            hint = _diagnose(got, case, mistakes, compare, expected) or fallback_hint
            return _fail(name, where, problem, hint)
    return _pass(name, len(cases))


def _generator(seed: int) -> torch.Generator:
    """Case data come from their own generator, so checking never moves the learner's global RNG."""
    return torch.Generator().manual_seed(seed)


def _shape(x: torch.Tensor) -> str:
    return str(tuple(x.shape))


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
    problem = _tensor_problem(out, expected[0], "output")
    if problem is None and weights is not None:
        problem = _tensor_problem(weights, expected[1], "the attention weights")
    return problem


def _attention_cases() -> list[Case]:
    g = _generator(0)
    r = lambda *shape, scale=1.0: torch.randn(*shape, generator=g) * scale  # noqa: E731
    pad = torch.tensor([[True, True, True, True], [True, True, False, False]])[:, None, None, :]  # (2, 1, 1, 4)
    cases = [
        Case("q (3, 4), no mask", (r(3, 4), r(3, 4), r(3, 4))),
        Case("q (2, 5, 8), no mask", (r(2, 5, 8), r(2, 5, 8), r(2, 5, 8))),
        Case("q (2, 3, 8), k (2, 6, 8), v (2, 6, 16): cross-attention", (r(2, 3, 8), r(2, 6, 8), r(2, 6, 16))),
        Case("q (2, 4, 5, 8), mask=causal", (r(2, 4, 5, 8), r(2, 4, 5, 8), r(2, 4, 5, 8)),
             {"mask": causal_mask(5)}),
        Case("q (2, 2, 4, 8), mask=padding (2, 1, 1, 4)", (r(2, 2, 4, 8), r(2, 2, 4, 8), r(2, 2, 4, 8)),
             {"mask": pad}),
        Case("q (1, 6, 64), large d_k, no mask", (r(1, 6, 64), r(1, 6, 64), r(1, 6, 64))),
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


def check_scaled_dot_product_attention(fn) -> bool:
    """Check fn(q, k, v, mask=None) -> output (..., T_q, d_v), or (output, weights (..., T_q, T_k)).

    mask is bool, True where attention is allowed, broadcastable to (..., T_q, T_k).
    """
    return _run_cases("check_scaled_dot_product_attention", fn, _attention_cases(),
                      scaled_dot_product_attention, _compare_attention, _ATTENTION_MISTAKES,
                      fallback_hint="compare with softmax(q @ k.transpose(-2, -1) / sqrt(d_k)) @ v.")


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


def check_causal_mask(fn) -> bool:
    """Check fn(T) -> bool (T, T), True where query i may attend to key j, i.e. j <= i."""
    cases = [Case(f"T={T}", (T,)) for T in (4, 1, 2, 8)]
    return _run_cases("check_causal_mask", fn, cases, lambda T: causal_mask(T), _mask_problem,
                      _CAUSAL_MISTAKES, fallback_hint="torch.ones(T, T, dtype=torch.bool).tril() is one way.")


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


def check_sinusoidal_encoding(fn) -> bool:
    """Check fn(max_len, d_model) -> (max_len, d_model): PE[pos, 2i] = sin(pos / 10000^(2i/d)),
    PE[pos, 2i+1] = cos(pos / 10000^(2i/d))."""
    cases = [Case(f"max_len={n}, d_model={d}", (n, d)) for n, d in ((1, 2), (4, 8), (10, 16), (7, 6), (50, 128))]
    return _run_cases("check_sinusoidal_encoding", fn, cases, sinusoidal_encoding,
                      lambda got, exp: _tensor_problem(got, exp, "the table", atol=1e-4, rtol=1e-4),
                      _SINUSOID_MISTAKES)


# ------------------------------------------------------------------------------------ softmax
def _naive_softmax(x, dim=-1):
    e = torch.exp(x)
    return e / e.sum(dim=dim, keepdim=True)


def _global_max_softmax(x, dim=-1):
    e = torch.exp(x - x.max())
    return e / e.sum(dim=dim, keepdim=True)


_SOFTMAX_MISTAKES = [
    ("exp(1000) overflows to inf; subtract the maximum along dim first (softmax(x) = softmax(x - max), "
     "x.max(dim=dim, keepdim=True).values).", _naive_softmax),
    ("subtract the maximum along dim (keepdim=True), not the maximum of the whole tensor: a row far "
     "below the global maximum underflows to 0 / 0.", _global_max_softmax),
    ("keep the summed dim (sum(dim=dim, keepdim=True)) so that each row is divided by its own sum.",
     lambda x, dim=-1: torch.exp(x) / torch.exp(x).sum(dim=dim)),
    ("divide by the sum along dim only, not by the sum of the whole tensor.",
     lambda x, dim=-1: torch.exp(x) / torch.exp(x).sum()),
    ("use the dim argument; your function always normalizes over the last dim.",
     lambda x, dim=-1: torch.softmax(x, dim=-1)),
]


def check_softmax(fn) -> bool:
    """Check fn(x, dim=-1) -> softmax of x along dim, numerically stable for large inputs."""
    g = _generator(1)
    square = torch.randn(3, 3, generator=g)
    cases = [
        Case("x (5,), default dim", (torch.randn(5, generator=g),)),
        Case("x (3, 3), dim=-1", (square, -1)),
        Case("x (3, 4), dim=-1", (torch.randn(3, 4, generator=g), -1)),
        Case("x (3, 4), dim=0", (torch.randn(3, 4, generator=g), 0)),
        Case("x (2, 3, 4), dim=1", (torch.randn(2, 3, 4, generator=g), 1)),
        Case("x = [1000, 1001, 1002]: large inputs", (torch.tensor([1000.0, 1001.0, 1002.0]), -1)),
        Case("x = [[1000, 1001], [0, 1]]: rows on different scales",
             (torch.tensor([[1000.0, 1001.0], [0.0, 1.0]]), -1)),
    ]
    return _run_cases("check_softmax", fn, cases, lambda x, dim=-1: torch.softmax(x.double(), dim=dim),
                      _tensor_problem, _SOFTMAX_MISTAKES)


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


def check_layer_norm(fn) -> bool:
    """Check fn(x, gamma, beta, eps=1e-5) -> LayerNorm over the last dim, against F.layer_norm.

    x: (..., D); gamma, beta: (D,).
    """
    g = _generator(2)
    r = lambda *shape: torch.randn(*shape, generator=g)  # noqa: E731

    def case(label, x, eps=None):
        D = x.size(-1)
        args = (x, 1.0 + 0.5 * r(D), 0.5 * r(D))
        return Case(label, args, {} if eps is None else {"eps": eps})

    cases = [
        case("x (4, 8)", r(4, 8)),
        case("x (2, 3, 16)", r(2, 3, 16)),
        case("x (3, 8) * 1e-3: variance near eps", r(3, 8) * 1e-3),
        case("x (3, 8) + 100: large mean", r(3, 8) + 100),
        case("x (2, 6), eps=0.1", r(2, 6), eps=0.1),
    ]

    def reference(x, gamma, beta, eps=1e-5):
        return F.layer_norm(x.double(), (x.size(-1),), gamma.double(), beta.double(), eps)

    return _run_cases("check_layer_norm", fn, cases, reference,
                      lambda got, exp: _tensor_problem(got, exp, atol=1e-4, rtol=1e-4), _LAYER_NORM_MISTAKES)


# ------------------------------------------------------------------------------ cross-entropy
def _scalar_problem(got, expected, what: str = "the result"):
    """Like _tensor_problem for a one-number answer: accepts a float or a tensor of one element."""
    value, problem = _as_tensor(got, what)
    if problem:
        return problem
    if value.numel() != 1:
        return f"{what} has shape {tuple(value.shape)}; expected a single number (shape ())"
    return _tensor_problem(value.reshape(()), expected.reshape(()), what)


_CROSS_ENTROPY_MISTAKES = [
    ("average over the N positions (mean), not the sum.",
     lambda logits, t: F.cross_entropy(logits.double(), t, reduction="sum")),
    ("cross-entropy is minus the mean log-probability of the targets; your sign is flipped.",
     lambda logits, t: -F.cross_entropy(logits.double(), t)),
    ("the loss is minus the *log* of the target's probability; you averaged the probabilities.",
     lambda logits, t: -torch.softmax(logits.double(), -1)[torch.arange(len(t)), t].mean()),
    ("pick each row's own target: logits[torch.arange(N), targets] (or gather), not logits[:, targets].",
     lambda logits, t: -torch.log_softmax(logits.double(), -1)[:, t].mean()),
    ("compute log-softmax stably: logits - logsumexp(logits) (or torch.log_softmax); exp of a large "
     "logit overflows, and log(softmax) of a tiny probability is log(0) = -inf.",
     lambda logits, t: -torch.log(torch.exp(logits) / torch.exp(logits).sum(-1, keepdim=True))
     [torch.arange(len(t)), t].mean()),
    ("compute log-softmax stably: logits - logsumexp(logits) (or torch.log_softmax); log(softmax) "
     "of a tiny probability is log(0) = -inf.",
     lambda logits, t: -torch.log(torch.softmax(logits, -1))[torch.arange(len(t)), t].mean()),
]


def check_cross_entropy(fn) -> bool:
    """Check fn(logits (N, V), targets (N,)) -> the mean cross-entropy, a single number."""
    g = _generator(3)

    def case(label, N, V, scale=1.0):
        return Case(label, (torch.randn(N, V, generator=g) * scale, torch.randint(V, (N,), generator=g)))

    cases = [
        case("logits (4, 5)", 4, 5),
        case("logits (1, 3): a single position", 1, 3),
        case("logits (16, 100)", 16, 100),
        case("logits (6, 2): two classes", 6, 2),
        case("logits (8, 10) * 1000: large logits", 8, 10, scale=1000.0),
    ]
    return _run_cases("check_cross_entropy", fn, cases, lambda logits, t: F.cross_entropy(logits.double(), t),
                      _scalar_problem, _CROSS_ENTROPY_MISTAKES)


# ---------------------------------------------------------------------------------- perplexity
_PERPLEXITY_MISTAKES = [
    ("perplexity is exp(-mean(log p)); with log-probabilities <= 0 it is >= 1. Check the sign.",
     lambda lp: torch.exp(lp.double().mean())),
    ("average the log-probabilities (mean over N) before exponentiating, not the sum.",
     lambda lp: torch.exp(-lp.double().sum())),
    ("exponentiate the mean, not average the exponentials: exp(-mean(log p)) != mean(exp(-log p)).",
     lambda lp: torch.exp(-lp.double()).mean()),
    ("these are natural-log probabilities: use exp, not 2 ** (...).",
     lambda lp: 2 ** (-lp.double().mean())),
    ("that is the cross-entropy (the mean negative log-likelihood); perplexity is its exponential.",
     lambda lp: -lp.double().mean()),
]


def check_perplexity(fn) -> bool:
    """Check fn(log_probs (N,)) -> exp(-mean(log_probs)): log_probs are the natural-log
    probabilities the model gave each target token."""
    g = _generator(4)
    random_lp = torch.log_softmax(torch.randn(12, 7, generator=g), -1)[:, 0]  # (12,) each <= 0
    cases = [
        Case("log_probs = log(1/10) * 5: uniform over 10 tokens (perplexity 10)", (torch.full((5,), math.log(0.1)),)),
        Case("log_probs (12,)", (random_lp,)),
        Case("log_probs (1,): one token", (torch.tensor([-2.0]),)),
        Case("log_probs = [0, 0, 0]: certain predictions (perplexity 1)", (torch.zeros(3),)),
        Case("log_probs (4,) in float64", (torch.tensor([-0.1, -3.0, -0.5, -1.25], dtype=torch.float64),)),
    ]
    return _run_cases("check_perplexity", fn, cases, lambda lp: torch.exp(-lp.double().mean()),
                      _scalar_problem, _PERPLEXITY_MISTAKES)


# ----------------------------------------------------------------------------- MLM masking
MLM_VOCAB, MLM_MASK_ID, MLM_SPECIALS = 100, 4, (0, 1, 2, 3)  # [PAD] [CLS] [SEP] [UNK], then [MASK]


def _mlm_batch(B: int = 400, T: int = 512) -> torch.Tensor:
    """(B, T) ids like a BERT batch: [CLS] text [SEP] [PAD]..., with ordinary ids in [5, 100).

    About 180,000 ordinary tokens: enough that any correct implementation lands more than four
    standard deviations inside every tolerance (e.g. the 80% share of ~27,000 selected tokens).
    """
    g = _generator(5)
    ids = torch.randint(5, MLM_VOCAB, (B, T), generator=g)
    lengths = torch.randint(3 * T // 4, T + 1, (B,), generator=g)
    ids[:, 0] = 1  # [CLS]
    for row, n in enumerate(lengths.tolist()):
        ids[row, n - 1] = 2  # [SEP]
        ids[row, n:] = 0  # [PAD]
    return ids


def _mlm_call(fn, ids, p, seed, global_seed):
    """fn on ids with a fresh generator; the global RNG is reseeded inside and restored afterwards.

    Returns (True, (inputs, labels)) or (False, what went wrong), including an in-place edit of ids.
    """
    given = ids.clone()
    case = Case(f"ids {_shape(ids)}, p={p}", (given, MLM_VOCAB, MLM_MASK_ID, list(MLM_SPECIALS), p,
                                              torch.Generator().manual_seed(seed)))
    with torch.random.fork_rng(devices=[]):  # the learner's own global RNG state is left as it was
        torch.manual_seed(global_seed)
        ok, result = _call(fn, case, copy=False)
    if ok and not torch.equal(given, ids):
        return False, ("your function modified ids in place; build inputs from a copy (ids.clone()), "
                       "the caller still needs the original ids")
    if ok and not (isinstance(result, (tuple, list)) and len(result) == 2
                   and all(isinstance(t, torch.Tensor) for t in result)):
        return False, f"your function returned a {type(result).__name__}; expected a pair (inputs, labels) of tensors"
    if ok and not (result[0].shape == ids.shape and result[1].shape == ids.shape):
        return False, (f"inputs and labels have shapes {_shape(result[0])} and {_shape(result[1])}; "
                       f"both must have the shape of ids, {_shape(ids)}")
    return ok, result


def _share(part: torch.Tensor, whole: torch.Tensor) -> float:
    return part.sum().item() / max(whole.sum().item(), 1)


def _mlm_label_problems(ids, inputs, labels, special):
    """(problem, hint) for the first rule about labels or unselected positions that is broken."""
    selected = labels != -100
    if selected.float().mean() > 0.9:
        return (f"{100 * selected.float().mean():.0f}% of the labels are token ids",
                "labels must be -100 (ignored by cross_entropy) at every position that was not selected; "
                "only about p of the ordinary tokens get their original id as label.")
    if (selected & special).any():
        return ("special tokens were selected for prediction",
                "special tokens (ids in special_ids: [CLS], [SEP], [PAD]) must never be selected.")
    if not torch.equal(labels[selected], ids[selected]):
        return ("some labels differ from the original ids at selected positions",
                "labels must hold the original id where a token was selected (the model predicts it).")
    if not torch.equal(inputs[~selected], ids[~selected]):
        where = "special tokens were changed" if (inputs[special] != ids[special]).any() else \
            "some positions that are not selected (label -100) were changed"
        return (where, "only selected positions may change; everything else keeps its original id "
                       "and gets the label -100.")
    return None


def _mlm_rate_problems(ids, inputs, labels, special, p):
    """(problem, hint) for the first rate outside its tolerance: p ± 0.5%, then 80/10/10 ± 1%."""
    selected = labels != -100
    ordinary = ~special
    rate = _share(selected, ordinary)
    if abs(rate - p) > 0.005:
        hint = "select each ordinary token with probability p (torch.rand(ids.shape, generator=generator) < p)."
        if abs(rate - 0.8 * p) <= 0.005:
            hint = ("labels mark every selected token, also the 10% replaced by a random token and the 10% "
                    "left unchanged, not only the [MASK]ed ones.")
        elif p != 0.15 and abs(rate - 0.15) <= 0.005:
            hint = "use the argument p, not a fixed 0.15."
        return f"{100 * rate:.1f}% of the ordinary tokens were selected, expected {100 * p:.0f}% ± 0.5%", hint
    masked = selected & (inputs == MLM_MASK_ID)
    unchanged = selected & (inputs == ids)
    randomised = selected & ~masked & ~unchanged
    hint = ("of the selected tokens, BERT replaces 80% by [MASK] (mask_id), 10% by a random token, and "
            "leaves 10% unchanged; draw one number per position to choose.")
    for part, share, name in ((masked, 0.8, "became mask_id"), (randomised, 0.1, "became a random token"),
                              (unchanged, 0.1, "stayed unchanged")):
        got = _share(part, selected)
        if abs(got - share) > 0.01:
            return f"{100 * got:.1f}% of the selected tokens {name}, expected {100 * share:.0f}% ± 1%", hint
    replacements = inputs[randomised]
    if replacements.min() < 0 or replacements.max() >= MLM_VOCAB:
        return ("some random replacements lie outside [0, vocab_size)",
                "draw random ids with torch.randint(vocab_size, ..., generator=generator).")
    if replacements.unique().numel() < 20:
        return (f"the random replacements use only {replacements.unique().numel()} distinct ids",
                "each random replacement is its own draw from the vocabulary (torch.randint), not one fixed id.")
    return None


def check_mlm_mask(fn) -> bool:
    """Check fn(ids, vocab_size, mask_id, special_ids, p, generator) -> (inputs, labels), BERT's rule.

    Statistical: on a batch of ~180,000 ordinary tokens, p = 15% ± 0.5% of them are selected
    (label = original id, -100 elsewhere), 80/10/10 ± 1% of those become mask_id / a random id /
    stay; specials are never selected; ids is not modified; the generator makes it reproducible.
    """
    name = "check_mlm_mask"
    ids = _mlm_batch()
    special = torch.zeros_like(ids, dtype=torch.bool)
    for s in MLM_SPECIALS:
        special |= ids == s
    for number, (p, seed) in enumerate(((0.15, 0), (0.3, 1)), start=1):
        where = f"case {number} (ids {_shape(ids)}, vocab_size={MLM_VOCAB}, mask_id={MLM_MASK_ID}, " \
                f"special_ids={list(MLM_SPECIALS)}, p={p})"
        ok, result = _mlm_call(fn, ids, p, seed, global_seed=10)
        if not ok:
            return _fail(name, where, result)
        inputs, labels = (t.detach().cpu() for t in result)
        found = _mlm_label_problems(ids, inputs, labels, special) or \
            _mlm_rate_problems(ids, inputs, labels, special, p)
        if found:
            return _fail(name, where, *found)
    # the same generator seed must give the same answer, whatever the global RNG does
    ok_a, first = _mlm_call(fn, ids, 0.15, seed=7, global_seed=11)
    ok_b, second = _mlm_call(fn, ids, 0.15, seed=7, global_seed=12)
    if ok_a and ok_b and not (torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])):
        return _fail(name, "case 3 (the same generator seed twice)", "the two results differ",
                     "use the generator argument for every random draw (torch.rand(..., generator=generator)), "
                     "so that a seed reproduces the masking.")
    return _pass(name, 3)


__all__ = ["check_causal_mask", "check_cross_entropy", "check_layer_norm", "check_mlm_mask",
           "check_perplexity", "check_scaled_dot_product_attention", "check_sinusoidal_encoding",
           "check_softmax"]
