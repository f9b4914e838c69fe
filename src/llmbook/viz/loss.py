"""Loss curves: raw, smoothed, with evaluation points, several runs side by side (chapters 2 to 6 and 8).

Used in chapters 2, Core concepts; 3, Attention, step by step; 4, Encoder and decoder; 5,
Pretraining; 6, Applications; and 8, Scaling and unit scaling.
"""
from __future__ import annotations

import torch


def ema(values, weight: float) -> list[float]:
    """Exponential moving average of values: s_t = weight * s_(t-1) + (1 - weight) * v_t, s_0 = v_0.

    Starting at the first value (not 0) keeps the smoothed curve from rising out of zero. weight in
    [0, 1): 0 returns the values, 0.9 averages over roughly the last ten. Raises ValueError for an
    empty sequence or a weight outside [0, 1).
    """
    values = [float(v) for v in values]
    if not values:
        raise ValueError("ema needs at least one value")
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"weight={weight} must lie in [0, 1) (0 = no smoothing)")
    out, s = [], values[0]
    for v in values:
        s = weight * s + (1.0 - weight) * v
        out.append(s)
    return out


def _is_history(obj) -> bool:
    """A llmbook.train.History, or its asdict(): has per-step `step` and `loss` lists."""
    if isinstance(obj, dict):
        return "step" in obj and "loss" in obj
    return hasattr(obj, "step") and hasattr(obj, "loss")


def _curves(obj, label):
    """Turn what plot_loss accepts into a list of (label, steps, losses, is_eval) curves."""
    if _is_history(obj):
        get = obj.get if isinstance(obj, dict) else (lambda key, default=None: getattr(obj, key, default))
        curves = [(label or "train", list(get("step")), list(get("loss")), False)]
        evals = get("evals", None) or []
        names = sorted({k for e in evals for k, v in e.items() if k != "step" and "loss" in k})
        for name in names:  # e.g. "val_loss" recorded every eval_every steps
            points = [(e["step"], e[name]) for e in evals if name in e]
            tag = f"{label}: {name}" if label else name
            curves.append((tag, [s for s, _ in points], [v for _, v in points], True))
        return curves
    if isinstance(obj, dict):  # several runs to compare: {"pre-LN": history, "post-LN": losses}
        return [c for name, run in obj.items() for c in _curves(run, str(name))]
    values = torch.as_tensor(obj, dtype=torch.float64).flatten().tolist()
    return [(label, list(range(len(values))), values, False)]


def plot_loss(history_or_losses, ax=None, smooth=0.0, label=None, log_y=False, title=None):
    """Loss against training step.

    history_or_losses: a sequence or 1-D tensor of losses (one per step); a llmbook.train.History
    (or its asdict()), whose evals' "*loss*" entries (e.g. val_loss) are drawn as points; or a dict
    {label: any of those} to compare runs. smooth in [0, 1): exponential moving average weight
    (0.9 = heavy); the raw curve stays visible, faint, behind the smoothed one. log_y: log-scale loss
    axis. Returns the matplotlib Axes. Raises ValueError for smooth outside [0, 1), an empty curve,
    or a non-positive loss on a log axis.
    """
    import matplotlib.pyplot as plt

    if not 0.0 <= smooth < 1.0:
        raise ValueError(f"smooth={smooth} must lie in [0, 1) (0 = no smoothing)")
    curves = _curves(history_or_losses, label)
    for name, _steps, values, _ in curves:
        if not values:
            raise ValueError(f"the loss curve {name or ''!r} is empty: nothing to plot")
        if log_y and min(values) <= 0:
            raise ValueError(f"log_y needs positive losses, but curve {name or ''!r} has {min(values)}")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    for name, steps, values, is_eval in curves:
        if is_eval:
            ax.plot(steps, values, "o-", markersize=3, label=name)
        elif smooth > 0:
            (raw,) = ax.plot(steps, values, alpha=0.25)
            ax.plot(steps, ema(values, smooth), color=raw.get_color(), label=name)
        else:
            ax.plot(steps, values, label=name)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (log scale)" if log_y else "loss")
    if log_y:
        ax.set_yscale("log")
    if any(name for name, *_ in curves):
        ax.legend()
    if title is not None:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    return ax
