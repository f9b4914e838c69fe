"""What quantisation costs the shipped ``shakespeare-gpt``: held-out bits per character and bytes of
weights for int8 and 4-bit weights (one scale per row, or one per group of inputs at several group
sizes), 3-bit weights, PyTorch's int8 kernels (activations quantised too), and an int8 KV cache.

    python -m llmbook.experiments.quantization     # about six minutes on one CPU core

Every variant is scored like the model card (``llmbook.pretrained.lm_nats``: the test works in
consecutive windows of the model's context), so the float32 row reproduces the card's test score.
Bytes are those of the weights as stored (quantize_model keeps int8 in a byte each; GroupwiseLinear
packs 4-bit and 3-bit values two per byte), float32 scales included; none for torch.ao's kernels,
whose packed weights are not plain tensors.
The KV-cache variant runs each window through an int8 cache, so every query reads keys and values
that went through int8, as they would after a long generation. The output layer shares its matrix
with the token embedding and stays in float in every variant (quantize_model's default skip), and
the byte counts include it.

Used in chapter 7, Inference engineering.
"""
from __future__ import annotations

import math

import torch

from .. import pretrained
from ..kv_cache import KVCache
from ..quantize import int8_dynamic, model_nbytes, quantize_model, quantize_model_groupwise
from . import run_and_save

FULL = dict(model="shakespeare-gpt", split="test", tokens=None, group_sizes=(256, 128, 64, 32, 16))


def lm_nats_cached(model, ids: torch.Tensor, int8: bool = True) -> tuple[float, int]:
    """lm_nats with every window's keys and values stored in a KV cache (int8 or not) before attention reads them.

    One window per forward pass, as the saved results were computed.
    """
    c = model.config
    new_cache = lambda: KVCache(c.n_layers, c.context_length, int8=int8)  # noqa: E731
    return pretrained.lm_nats(model, ids, batch_size=1, new_cache=new_cache)


def variants(model, group_sizes) -> dict:
    """name -> model to score. Weights of 4 bits or fewer are packed two per byte (GroupwiseLinear)."""
    out = {"float32": model,
           "int8 per row": quantize_model(model, 8),
           "int8 kernels (torch.ao)": int8_dynamic(model),
           "4-bit per row": quantize_model_groupwise(model, 4, None)}
    for g in group_sizes:
        out[f"4-bit, groups of {g}"] = quantize_model_groupwise(model, 4, g)
    out["3-bit per row"] = quantize_model_groupwise(model, 3, None)
    out["3-bit, groups of 32"] = quantize_model_groupwise(model, 3, 32)
    return out


def run(model: str, split: str, tokens: int | None, group_sizes) -> dict:
    base, _ = pretrained.load(model)
    ids = pretrained.token_stream(model, split)
    if tokens is not None:
        ids = ids[:tokens]
    chars = pretrained.characters(model, split) if tokens is None else None
    rows = {}
    for name, m in variants(base, group_sizes).items():
        nats, count = pretrained.lm_nats(m, ids)
        # torch.ao keeps its int8 weights in packed objects that are not plain tensors: no byte count
        rows[name] = {"loss": nats / count, "bytes": None if "torch.ao" in name else model_nbytes(m)}
        print(f"{name:28s} loss {nats / count:.4f}", flush=True)
    nats, count = lm_nats_cached(base, ids)
    rows["float32 weights, int8 KV cache"] = {"loss": nats / count, "bytes": model_nbytes(base)}
    for row in rows.values():
        row["bits_per_char"] = None if chars is None else row["loss"] * count / math.log(2) / chars
    return {"settings": dict(model=model, split=split, tokens=tokens, group_sizes=list(group_sizes),
                             scored_tokens=count),
            "variants": rows}


if __name__ == "__main__":
    run_and_save("quantization", run, **FULL)
