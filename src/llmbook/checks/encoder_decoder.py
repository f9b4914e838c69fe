"""Checkers for the encoder and decoder exercises (chapter 4): layer normalisation."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ._core import Case, _tensor_problem, _run_cases, _generator


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
