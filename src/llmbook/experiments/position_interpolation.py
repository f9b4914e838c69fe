"""RoPE beyond the trained length: extrapolation, position interpolation, and a short fine-tune.

    python -m llmbook.experiments.position_interpolation     # the full run, one CPU thread: see FULL below

A rotary GPT is trained on windows of ``train_len`` characters of Shakespeare (train split), built
with ``context_length = 4 * train_len`` so that longer inputs are allowed at all. Its held-out loss
is then measured at every position of fixed windows of ``4 * train_len`` characters of the
validation split, for these variants (same weights unless fine-tuned):

- ``extrapolate``: the model as trained, positions beyond ``train_len`` at angles it never saw;
- ``interpolate x2`` / ``interpolate x4``: position interpolation (Chen et al., 2023;
  ``GPTConfig(rope_interpolation=f)``), positions divided by f = L_eval / train_len, no training;
  x2 is scored on the first ``2 * train_len`` positions, x4 on all;
- ``interpolate x4 + fine-tune``: x4, then ``ft_steps`` steps on windows of ``4 * train_len``;
- ``fine-tune, no interpolation``: the same fine-tuning with the positions left as they are;
- ``more short training``: the same number of extra steps, but on windows of ``train_len`` (a control:
  how much of a fine-tune's gain is just more training).

Every variant runs for every seed (the seed sets the initial weights and the training windows).
The losses are kept as means over the evaluation windows in buckets of ``bucket`` positions.
Chapter 7 reads ``results/position_interpolation.json``.

Used in chapter 7, Inference engineering.
"""
from __future__ import annotations

import statistics

import torch
import torch.nn.functional as F

from ..data import lm_batch
from ..models import GPT, GPTConfig
from . import run_and_save
from .kv_heads import shakespeare_chars, train_char_gpt

FULL = dict(train_len=64, n_layers=2, d_model=64, n_heads=4, steps=600, lr=3e-3, batch_size=32,
            ft_steps=150, ft_lr=1e-3, seeds=[0, 1, 2], eval_windows=128, bucket=16)
VARIANTS = ("extrapolate", "interpolate x2", "interpolate x4", "interpolate x4 + fine-tune",
            "fine-tune, no interpolation", "more short training")


def with_interpolation(model: GPT, factor: float) -> GPT:
    """A copy of model (its weights copied) whose rotary positions are divided by factor.

    The rotary angle tables are buffers that the state dict leaves out, so the same weights load
    into a model built with another rope_interpolation.
    """
    config = GPTConfig(**{**vars(model.config), "rope_interpolation": float(factor)})
    other = GPT(config)
    other.load_state_dict(model.state_dict())
    return other.eval()


@torch.no_grad()
def loss_per_position(model: GPT, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy at every position, averaged over the windows: (T,) for x, y of shape (N, T)."""
    logits = model.eval()(x).logits  # (N, T, V)
    return F.cross_entropy(logits.transpose(1, 2), y, reduction="none").mean(0)


def buckets(losses: torch.Tensor, size: int) -> list[float]:
    """Means of consecutive groups of `size` positions (the length must be a multiple of size)."""
    if len(losses) % size:
        raise ValueError(f"{len(losses)} positions do not split into buckets of {size}")
    return [round(v, 5) for v in losses.view(-1, size).mean(1).tolist()]


def run_seed(seed: int, train_ids, x, y, vocab_size: int, train_len: int, n_layers: int, d_model: int,
             n_heads: int, steps: int, lr: float, batch_size: int, ft_steps: int, ft_lr: float) -> dict:
    """Per-position held-out losses (T,) of every variant, for one seed."""
    long_len = 4 * train_len
    config = GPTConfig(vocab_size=vocab_size, context_length=long_len, n_layers=n_layers, n_heads=n_heads,
                       d_model=d_model, pos_encoding="rope")
    base = train_char_gpt(config, train_ids, steps, lr, seed, batch_size, train_len)
    out = {"extrapolate": loss_per_position(base, x, y),
           "interpolate x2": loss_per_position(with_interpolation(base, 2), x[:, :2 * train_len], y[:, :2 * train_len]),
           "interpolate x4": loss_per_position(with_interpolation(base, 4), x, y)}
    long_batch = max(batch_size * train_len // long_len, 1)  # the same number of characters per step
    tuned = {"interpolate x4 + fine-tune": (with_interpolation(base, 4), long_len, long_batch),
             "fine-tune, no interpolation": (with_interpolation(base, 1), long_len, long_batch),
             "more short training": (with_interpolation(base, 1), train_len, batch_size)}
    for name, (model, window, batch) in tuned.items():
        model = train_char_gpt(config, train_ids, ft_steps, ft_lr, 1000 + seed, batch, window, model=model.train())
        out[name] = loss_per_position(model, x, y)
    return out


def run(train_len: int = 64, n_layers: int = 2, d_model: int = 64, n_heads: int = 4, steps: int = 600,
        lr: float = 3e-3, batch_size: int = 32, ft_steps: int = 150, ft_lr: float = 1e-3, seeds=(0,),
        eval_windows: int = 128, bucket: int = 16) -> dict:
    """Every variant for every seed; plain data.

    Returns {"settings": {...}, "bucket_starts": [...], "runs": {variant: {seed: [bucket means]}},
    "ranges": {variant: {"0-L", "L-2L", "2L-4L": {"mean", "sd"}}}} where L = train_len, each range's
    value is the mean held-out loss over its positions (sd over seeds; 0 with one seed). Interpolate x2
    has no "2L-4L" range.
    """
    tokenizer, train_ids, val_ids = shakespeare_chars()
    long_len = 4 * train_len
    x, y = lm_batch(val_ids, eval_windows, long_len, generator=torch.Generator().manual_seed(4321))
    per_seed = {}
    for seed in seeds:
        per_seed[seed] = run_seed(seed, train_ids, x, y, tokenizer.vocab_size, train_len, n_layers, d_model, n_heads,
                                  steps, lr, batch_size, ft_steps, ft_lr)
        print(f"seed {seed}: " + ", ".join(f"{k} {v[-train_len:].mean():.3f}" for k, v in per_seed[seed].items()),
              flush=True)
    spans = {"0-L": (0, train_len), "L-2L": (train_len, 2 * train_len), "2L-4L": (2 * train_len, long_len)}
    ranges = {}
    for name in VARIANTS:
        ranges[name] = {}
        for span, (a, b) in spans.items():
            if b > len(per_seed[seeds[0]][name]):
                continue
            values = [per_seed[s][name][a:b].mean().item() for s in seeds]
            ranges[name][span] = {"mean": round(statistics.mean(values), 5),
                                  "sd": round(statistics.stdev(values), 5) if len(values) > 1 else 0.0}
    settings = dict(train_len=train_len, eval_len=long_len, n_layers=n_layers, d_model=d_model, n_heads=n_heads,
                    steps=steps, lr=lr, batch_size=batch_size, ft_steps=ft_steps, ft_lr=ft_lr, seeds=list(seeds),
                    eval_windows=eval_windows, bucket=bucket, vocab_size=tokenizer.vocab_size,
                    data="Shakespeare characters: train split; loss on fixed windows of the validation split",
                    torch=torch.__version__)
    runs = {name: {str(s): buckets(per_seed[s][name], bucket) for s in seeds} for name in VARIANTS}
    return {"settings": settings, "bucket_starts": list(range(0, long_len, bucket)), "runs": runs, "ranges": ranges}


def main() -> None:
    data = run_and_save("position_interpolation", run, **FULL)
    for name, spans in data["ranges"].items():
        print(f"{name:28s} " + "  ".join(f"{k}: {v['mean']:.3f} +- {v['sd']:.3f}" for k, v in spans.items()))


if __name__ == "__main__":
    main()
