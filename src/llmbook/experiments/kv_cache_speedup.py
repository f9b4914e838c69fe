"""Greedy generation with and without a KV cache, against the number of generated tokens.

    python -m llmbook.experiments.kv_cache_speedup     # the full sweep, one CPU thread: see FULL below

Without a cache, step t runs the model on all t tokens so far, so generating n tokens costs
O(n^2) token-passes; with the cache each step processes one token and n tokens cost O(n). The
time depends on the sizes, not on the values of the weights, so the full run uses an untrained
GPT of the benchmark's "small" size (4 layers, d_model 128) with a context of 1,024. ``measure``
is what chapter 7 calls live on its own trained model at lengths up to 255.

Used in chapter 7, Inference engineering.
"""
from __future__ import annotations

import torch

from ..generate import generate
from ..models import GPT, GPTConfig
from ..timing import cpu_seconds
from . import run_and_save

FULL = dict(n_layers=4, d_model=128, n_heads=4, block_size=1024, lengths=[16, 32, 64, 128, 256, 512, 1023],
            repeats=3)


def measure(model, lengths, repeats: int = 3) -> dict:
    """CPU seconds (median of repeats) to generate n tokens greedily from a 1-token prompt, for n in lengths.

    Returns {"lengths", "cached_s", "uncached_s", "speedup"} (plain lists).
    """
    prompt = torch.ones(1, 1, dtype=torch.long)
    for use_cache in (True, False):  # one short warm-up of each path, instead of one per length
        generate(model, prompt, min(lengths), temperature=0, use_cache=use_cache)
    out = {"lengths": list(lengths), "cached_s": [], "uncached_s": [], "speedup": []}
    for n in lengths:
        cached = cpu_seconds(lambda n=n: generate(model, prompt, n, temperature=0, use_cache=True), repeats, False)
        uncached = cpu_seconds(lambda n=n: generate(model, prompt, n, temperature=0, use_cache=False), repeats, False)
        out["cached_s"].append(round(cached, 5))
        out["uncached_s"].append(round(uncached, 5))
        out["speedup"].append(round(uncached / cached, 3))
    return out


def run(n_layers: int = 2, d_model: int = 64, n_heads: int = 4, block_size: int = 128, lengths=(16, 64, 127),
        repeats: int = 3, vocab_size: int = 65) -> dict:
    """Build an untrained GPT of this size (seed 0) and measure; plain data with the settings."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=vocab_size, context_length=block_size, n_layers=n_layers, n_heads=n_heads,
                          d_model=d_model)).eval()
    settings = dict(n_layers=n_layers, d_model=d_model, n_heads=n_heads, block_size=block_size,
                    vocab_size=vocab_size, parameters=model.num_parameters(), repeats=repeats,
                    torch=torch.__version__, threads=torch.get_num_threads())
    return {"settings": settings, **measure(model, lengths, repeats)}


def main() -> None:
    data = run_and_save("kv_cache_speedup", run, **FULL)
    print(f"speed-ups {data['speedup']} at lengths {data['lengths']}")


if __name__ == "__main__":
    main()
