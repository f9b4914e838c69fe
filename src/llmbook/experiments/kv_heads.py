"""Grouped-query and multi-query attention: KV-cache bytes per token against held-out loss.

    python -m llmbook.experiments.kv_heads     # the full run, one CPU thread: see FULL below

Small rotary GPTs with H query heads are trained on Shakespeare as characters (``llmbook.corpora``,
train split) with H, H/2 and 1 key/value heads (``GPTConfig(n_kv_heads=...)``), every setting with
the same data, steps and seeds. Fewer key/value heads also shrink W_K and W_V, so each smaller
setting is trained twice: as it comes (fewer parameters) and "matched", with a wider feed-forward
layer (d_ff) that gives back the removed weights (all but one bias per added hidden unit: 96 of
about 100,000 parameters for H_kv = 1 at the full size). Each run records its
held-out loss on fixed windows of the validation split (*Macbeth*, *Twelfth Night*), its parameter
count and its KV-cache bytes per token, read from ``nbytes`` of the model's own cache after a
forward pass over one full window. Chapter 7 reads ``results/kv_heads.json``.

Used in chapter 7, Inference engineering.
"""
from __future__ import annotations

import statistics

import torch

from ..corpora import shakespeare
from ..data import lm_batch
from ..models import GPT, GPTConfig
from ..tokenizers import CharTokenizer
from ..train import TrainConfig, train
from . import run_and_save

FULL = dict(n_heads=4, n_layers=2, d_model=64, steps=500, lr=3e-3, batch_size=16, window=128,
            seeds=[0, 1, 2], eval_windows=256)


def shakespeare_chars():
    """(tokenizer, train ids, validation ids): Shakespeare as characters; the alphabet of both splits."""
    train_text, val_text = shakespeare("train"), shakespeare("validation")
    tokenizer = CharTokenizer(train_text + val_text)
    return tokenizer, torch.tensor(tokenizer.encode(train_text)), torch.tensor(tokenizer.encode(val_text))


def train_char_gpt(config: GPTConfig, train_ids: torch.Tensor, steps: int, lr: float, seed: int,
                   batch_size: int, window: int, model: GPT | None = None) -> GPT:
    """Train GPT(config) (or continue `model`) on random windows of train_ids; returned in eval mode.

    The batches come from their own generator seeded with `seed`, so runs that differ only in the
    model see the same windows in the same order.
    """
    torch.manual_seed(seed)
    model = GPT(config) if model is None else model
    batches = torch.Generator().manual_seed(seed)
    train(model, lambda step: lm_batch(train_ids, batch_size, window, generator=batches),
          TrainConfig(steps=steps, lr=lr, progress=False, log_every=0, seed=seed, device="cpu"))
    return model.eval()


@torch.no_grad()
def held_out_loss(model: GPT, x: torch.Tensor, y: torch.Tensor, batch_size: int = 64) -> float:
    """Mean cross-entropy (nats per character) of model on the windows x -> y, (N, T) each."""
    total = sum(model(x[i:i + batch_size], y[i:i + batch_size]).loss.item() * len(x[i:i + batch_size])
                for i in range(0, len(x), batch_size))
    return total / len(x)


@torch.no_grad()
def cache_bytes_per_token(model: GPT, x: torch.Tensor) -> float:
    """Bytes per token of the model's own KV cache after a forward pass over the windows x (B, T)."""
    cache = model.new_kv_cache()
    model(x, kv_cache=cache)
    return cache.nbytes / x.numel()


def matched_d_ff(d_model: int, n_heads: int, n_kv_heads: int, d_ff: int) -> int:
    """The feed-forward width that gives back the weights W_K and W_V lose with n_kv_heads < n_heads.

    Per layer W_K and W_V lose 2 d_model (n_heads - n_kv_heads) d_head weights; one more hidden unit
    of the feed-forward layer adds 2 d_model weights (one row of W_1, one column of W_2) and a bias.
    """
    d_head = d_model // n_heads
    return d_ff + (n_heads - n_kv_heads) * d_head


def settings_grid(n_heads: int, d_model: int) -> list[dict]:
    """The settings: {"name", "n_kv_heads", "d_ff", "matched"} for H, H/2, 1 key/value heads, plain and matched."""
    d_ff = 4 * d_model
    grid = []
    for n_kv in sorted({n_heads, max(n_heads // 2, 1), 1}, reverse=True):
        grid.append({"name": f"H_kv = {n_kv}", "n_kv_heads": n_kv, "d_ff": d_ff, "matched": False})
        if n_kv < n_heads:
            grid.append({"name": f"H_kv = {n_kv}, wider FFN", "n_kv_heads": n_kv,
                         "d_ff": matched_d_ff(d_model, n_heads, n_kv, d_ff), "matched": True})
    return grid


def run(n_heads: int = 4, n_layers: int = 2, d_model: int = 64, steps: int = 800, lr: float = 3e-3,
        batch_size: int = 16, window: int = 128, seeds=(0, 1), eval_windows: int = 256) -> dict:
    """Train every setting of settings_grid with every seed; plain data.

    Returns {"settings": {...}, "runs": [{"name", "n_kv_heads", "d_ff", "matched", "seed", "val_loss",
    "parameters", "cache_bytes_per_token"}], "summary": [{"name", ..., "loss_mean", "loss_sd"}]}
    (sd: the sample standard deviation over seeds, 0 with one seed).
    """
    tokenizer, train_ids, val_ids = shakespeare_chars()
    x_val, y_val = lm_batch(val_ids, eval_windows, window, generator=torch.Generator().manual_seed(1234))
    runs = []
    for setting in settings_grid(n_heads, d_model):
        config = GPTConfig(vocab_size=tokenizer.vocab_size, context_length=window, n_layers=n_layers,
                           n_heads=n_heads, d_model=d_model, d_ff=setting["d_ff"], n_kv_heads=setting["n_kv_heads"],
                           pos_encoding="rope")
        for seed in seeds:
            model = train_char_gpt(config, train_ids, steps, lr, seed, batch_size, window)
            runs.append({**setting, "seed": seed, "val_loss": round(held_out_loss(model, x_val, y_val), 5),
                         "parameters": model.num_parameters(),
                         "cache_bytes_per_token": cache_bytes_per_token(model, x_val[:1])})
            print(f"{setting['name']:22s} seed {seed}: loss {runs[-1]['val_loss']:.4f}", flush=True)
    summary = []
    for setting in settings_grid(n_heads, d_model):
        mine = [r for r in runs if r["name"] == setting["name"]]
        losses = [r["val_loss"] for r in mine]
        summary.append({**setting, "parameters": mine[0]["parameters"],
                        "cache_bytes_per_token": mine[0]["cache_bytes_per_token"],
                        "loss_mean": round(statistics.mean(losses), 5),
                        "loss_sd": round(statistics.stdev(losses), 5) if len(losses) > 1 else 0.0})
    settings = dict(n_heads=n_heads, n_layers=n_layers, d_model=d_model, steps=steps, lr=lr, batch_size=batch_size,
                    window=window, seeds=list(seeds), eval_windows=eval_windows, vocab_size=tokenizer.vocab_size,
                    data="Shakespeare characters: train split; loss on fixed windows of the validation split",
                    torch=torch.__version__)
    return {"settings": settings, "runs": runs, "summary": summary}


def main() -> None:
    data = run_and_save("kv_heads", run, **FULL)
    for s in data["summary"]:
        print(f"{s['name']:22s} {s['parameters']:7,} parameters, {s['cache_bytes_per_token']:5.0f} B/token, "
              f"loss {s['loss_mean']:.4f} +- {s['loss_sd']:.4f}")


if __name__ == "__main__":
    main()
