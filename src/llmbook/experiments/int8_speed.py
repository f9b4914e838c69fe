"""How fast quantised weights run on a CPU: PyTorch's int8 kernels (``llmbook.quantize.int8_dynamic``)
and the book's group-wise 4-bit layer (``GroupwiseLinear``) against float32, for single linear layers
at the shapes of a decode step (1 row) and of a prefill (many rows), and for ``shakespeare-gpt`` end
to end (greedy decoding with a KV cache, and a full-context forward pass).

    LLMBOOK_NUMERICS=native python -m llmbook.experiments.int8_speed   # about two minutes, one thread

Speed has to be measured on the kernels PyTorch picks by itself. Under the book's pinned numerical
path MKL runs its vendor-independent code, which slows the float32 matrix products down and would
flatter int8 (whose kernels, FBGEMM's, the pin does not change); ``main()`` therefore refuses to run
pinned, and ``run()`` records in ``settings["pinned"]`` which path it ran on. Each time is the median
of interleaved repeats of CPU time on one thread (``llmbook.timing.cpu_seconds_interleaved``).

Used in chapter 7, Inference engineering.
"""
from __future__ import annotations

import os

import torch
from torch import nn

from .. import numerics, pretrained
from ..generate import generate
from ..quantize import GroupwiseLinear, int8_dynamic, quantize_model_groupwise
from ..timing import cpu_seconds_interleaved
from . import run_and_save

# (name, in_features, out_features): shakespeare-gpt's MLP input layer and a Llama-7B-sized square layer
FULL = dict(layers=(("shakespeare-gpt fc1", 256, 1024), ("Llama-7B attention projection", 4096, 4096)),
            rows=(1, 256), model="shakespeare-gpt", new_tokens=128, repeats=7, group_size=32)


@torch.no_grad()
def time_layer(d_in: int, d_out: int, rows: int, repeats: int, group_size: int) -> dict:
    """Milliseconds per call of one (d_in -> d_out) layer on a (rows, d_in) input: float32, int8, 4-bit."""
    torch.manual_seed(0)
    dense = nn.Sequential(nn.Linear(d_in, d_out)).eval()
    int8 = int8_dynamic(dense)
    four_bit = GroupwiseLinear(dense[0], bits=4, group_size=group_size).eval()
    x = torch.randn(rows, d_in)
    calls = max(1, 2_000_000 // (d_in * d_out))  # enough calls that one timing lasts a few milliseconds
    fns = [lambda m=m: [m(x) for _ in range(calls)] for m in (dense, int8, four_bit)]
    fp32, i8, i4 = (1e3 * t / calls for t in cpu_seconds_interleaved(fns, repeats))
    return {"rows": rows, "in": d_in, "out": d_out, "float32_ms": fp32, "int8_ms": i8, "int4_ms": i4}


@torch.no_grad()
def time_model(name: str, new_tokens: int, repeats: int, group_size: int) -> dict:
    """Greedy decoding tokens/s and full-context forward tokens/s of a shipped model: float32, int8, 4-bit."""
    model, _ = pretrained.load(name)
    variants = {"float32": model, "int8": int8_dynamic(model),
                "int4": quantize_model_groupwise(model, 4, group_size)}
    prompt = torch.ones(1, 1, dtype=torch.long)
    batch = torch.randint(0, model.config.vocab_size, (4, model.config.context_length),
                          generator=torch.Generator().manual_seed(0))
    decode = cpu_seconds_interleaved([lambda m=m: generate(m, prompt, new_tokens, temperature=0)
                                      for m in variants.values()], repeats)
    forward = cpu_seconds_interleaved([lambda m=m: m(batch) for m in variants.values()], repeats)
    reference = generate(model, prompt, new_tokens, temperature=0)
    same = [torch.equal(generate(m, prompt, new_tokens, temperature=0), reference) for m in variants.values()]
    return {name_: {"decode_tokens_per_s": new_tokens / d, "forward_tokens_per_s": batch.numel() / f,
                    "same_greedy_tokens_as_float32": s}
            for name_, d, f, s in zip(variants, decode, forward, same)}


def run(layers=(("small", 64, 128),), rows=(1, 16), model="shakespeare-gpt", new_tokens=8, repeats=3,
        group_size=32) -> dict:
    """Time every layer at every row count, then the model; plain data with the settings and machine."""
    for _, d_in, _ in layers:
        if d_in % group_size:
            raise ValueError(f"in_features={d_in} is not a multiple of group_size={group_size}")
    layer_rows = [{"layer": label, **time_layer(d_in, d_out, r, repeats, group_size)}
                  for label, d_in, d_out in layers for r in rows]
    settings = dict(model=model, new_tokens=new_tokens, repeats=repeats, group_size=group_size,
                    threads=torch.get_num_threads(), torch=torch.__version__, cpu=numerics.cpuinfo_field("model name"),
                    cpu_capability=torch.backends.cpu.get_cpu_capability(),
                    pinned=numerics.describe()["pinned"],
                    quantized_engine=torch.backends.quantized.engine)
    return {"settings": settings, "layers": layer_rows, "model": time_model(model, new_tokens, repeats, group_size)}


def main() -> None:
    if os.environ.get(numerics.OPT_OUT, "").lower() != "native":
        raise SystemExit(f"measure speed on PyTorch's own kernels: run with {numerics.OPT_OUT}=native "
                         f"(the pinned path slows float32 matrix products, not int8 ones)")
    data = run_and_save("int8_speed", run, **FULL)
    for row in data["layers"]:
        print(f"{row['layer']:32s} rows {row['rows']:4d}: float32 {row['float32_ms']:.3f} ms, "
              f"int8 {row['int8_ms']:.3f} ms, 4-bit {row['int4_ms']:.3f} ms")
    for name, row in data["model"].items():
        print(f"{name:8s} decode {row['decode_tokens_per_s']:.0f} tokens/s, "
              f"forward {row['forward_tokens_per_s']:.0f} tokens/s, same tokens {row['same_greedy_tokens_as_float32']}")


if __name__ == "__main__":
    main()
