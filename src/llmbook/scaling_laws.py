"""Scaling laws (chapters 5 and 8): FLOP counts, power-law fits, and the compute-optimal model size.

Throughout, N is the non-embedding parameter count, ``model.num_parameters(non_embedding=True)``
(Kaplan et al.'s N; Hoffmann et al., whose 20-tokens-per-parameter rule ``compute_optimal`` uses,
count every parameter), D the number of training tokens, and C the training compute in FLOPs,
estimated as C = 6 N D. ``training_flops_per_step`` counts what PyTorch really executes instead.
The experiment that trains the family of models these functions analyse is
``llmbook.experiments.scaling_laws``.

Used in chapters 5, Pretraining, and 8, Scaling and unit scaling.
"""
from __future__ import annotations

import math

import torch


def training_flops_per_step(model, batch_size: int, context_length: int) -> int:
    """FLOPs of one forward and backward pass of a language model on a (batch_size, context_length) batch,
    as PyTorch counts them: matrix products, attention included (elementwise work is not counted).
    The pass uses the explicit attention path (return_attention=True), whose matrix products the
    counter sees. The gradients it leaves are cleared."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(batch_size, context_length, dtype=torch.long)
    with FlopCounterMode(display=False) as counter:
        model(x, targets=x, return_attention=True).loss.backward()
    model.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


def fit_power_law(x, y) -> tuple[float, float]:
    """(a, alpha) of y = a * x^(-alpha), by least squares of log y on log x.

    Raises ValueError unless x and y are equally long (at least 2) and positive.
    """
    x, y = torch.as_tensor(x, dtype=torch.float64).flatten(), torch.as_tensor(y, dtype=torch.float64).flatten()
    if x.numel() != y.numel() or x.numel() < 2:
        raise ValueError(f"need x and y of equal length >= 2, got {x.numel()} and {y.numel()}")
    if (x <= 0).any() or (y <= 0).any():
        raise ValueError("a power law needs positive x and y (it is fitted on log-log axes)")
    lx, ly = x.log(), y.log()
    slope = ((lx - lx.mean()) * (ly - ly.mean())).sum() / ((lx - lx.mean()) ** 2).sum()
    intercept = ly.mean() - slope * lx.mean()
    return math.exp(intercept.item()), -slope.item()


def fit_power_law_with_floor(x, y, n_grid: int = 400) -> tuple[float, float, float]:
    """(E, a, alpha) of y = E + a * x^(-alpha), E in [0, min y): a grid over E, each E fitted by
    fit_power_law on y - E; the E with the smallest squared error in log y wins. Needs >= 3 points."""
    y = torch.as_tensor(y, dtype=torch.float64).flatten()
    if y.numel() < 3:
        raise ValueError(f"fitting a floor needs at least 3 points, got {y.numel()}")
    best = None
    for E in torch.linspace(0.0, y.min().item(), n_grid + 1)[:-1].tolist():
        a, alpha = fit_power_law(x, y - E)
        pred = E + a * torch.as_tensor(x, dtype=torch.float64).flatten() ** (-alpha)
        err = ((pred.log() - y.log()) ** 2).sum().item()
        if best is None or err < best[0]:
            best = (err, E, a, alpha)
    return best[1], best[2], best[3]


def isoflop_optimum(points) -> float:
    """The compute-optimal N of one IsoFLOP profile [(N, loss), ...] (the losses of several sizes at one
    compute budget): the minimum of a parabola in log N through the lowest point and its two
    neighbours (the lowest point's N if it lies at an end). Raises ValueError for an empty profile."""
    if not points:
        raise ValueError("an IsoFLOP profile needs at least one (N, loss) point")
    i = min(range(len(points)), key=lambda k: points[k][1])
    if i == 0 or i == len(points) - 1:
        return float(points[i][0])
    (x0, y0), (x1, y1), (x2, y2) = [(math.log(n), loss) for n, loss in points[i - 1:i + 2]]
    # vertex of the parabola through three points
    denom = (x0 - x1) * (x0 - x2) * (x1 - x2)
    a = (x2 * (y1 - y0) + x1 * (y0 - y2) + x0 * (y2 - y1)) / denom
    b = (x2 ** 2 * (y0 - y1) + x1 ** 2 * (y2 - y0) + x0 ** 2 * (y1 - y2)) / denom
    return math.exp(-b / (2 * a)) if a > 0 else float(points[i][0])


def compute_optimal(C: float, tokens_per_param: float = 20.0, flops_per_param_token: float = 6.0):
    """(N, D) that spend C = flops_per_param_token * N * D FLOPs with D = tokens_per_param * N
    (Chinchilla's rule of thumb: about 20 tokens per parameter)."""
    n = math.sqrt(C / (flops_per_param_token * tokens_per_param))
    return n, tokens_per_param * n
