"""Training and forward throughput of llmbook's GPT next to nanoGPT's, on the same weights.

    .venv/bin/python bench/nanogpt_peer.py --nanogpt /path/to/nanoGPT/model.py
    .venv/bin/python bench/nanogpt_peer.py --nanogpt /path/to/model.py --profile large   # where the time goes

nanoGPT (github.com/karpathy/nanoGPT) is not vendored: give the path of its `model.py`. Both models
get the same configurations as bench/throughput.py (dropout 0, learned positions, pre-LN, biases,
tied embeddings) with exact GELU (nanoGPT's `nn.GELU()`), our weights copied into nanoGPT's (both
use `nn.Linear`, so nothing is transposed), and the script checks that they compute the same loss.
"train" is forward + backward + AdamW step; "forward" is the loss under `torch.no_grad()` (nanoGPT
computes all logits only when given targets, so both are given targets). Medians of alternating
repeats after a warm-up, wall clock, on torch's own kernels and threads (not the book's pin).
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
os.environ.setdefault("LLMBOOK_NUMERICS", "native")
from llmbook import GPT, GPTConfig  # noqa: E402
from llmbook.interop import gpt2_weight_names  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import CONFIGS  # noqa: E402


def load_nanogpt(path: str):
    if not Path(path).is_file():
        sys.exit(f"nanogpt_peer: {path} is not a file; pass the path of nanoGPT's model.py")
    spec = importlib.util.spec_from_file_location("nanogpt_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_pair(nano, bc):
    torch.manual_seed(0)
    ours = GPT(GPTConfig(vocab_size=bc.vocab_size, context_length=bc.context_length, n_layers=bc.n_layers,
                         n_heads=bc.n_heads, d_model=bc.d_model, dropout=0.0, activation="gelu"))
    theirs = nano.GPT(nano.GPTConfig(block_size=bc.context_length, vocab_size=bc.vocab_size, n_layer=bc.n_layers,
                                     n_head=bc.n_heads, n_embd=bc.d_model, dropout=0.0, bias=True))
    mine, params = ours.state_dict(), dict(theirs.named_parameters())
    with torch.no_grad():
        for our_name, their_name, _ in gpt2_weight_names(bc.n_layers):
            params[f"transformer.{their_name}"].copy_(mine[our_name])
    return ours, theirs


def loss_of(model, is_ours, idx, targets):
    return model(idx, targets).loss if is_ours else model(idx, targets)[1]


def measure(pair, work, repeats):
    for name, model in pair:
        work(name, model)  # warm-up
    times = {name: [] for name, _ in pair}
    for r in range(repeats):
        for name, model in (pair if r % 2 == 0 else pair[::-1]):
            start = time.perf_counter()
            work(name, model)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def bench(nano, bc, args):
    ours, theirs = build_pair(nano, bc)
    B, T = bc.batch_size, bc.context_length
    idx = torch.randint(0, bc.vocab_size, (B, T))
    targets = torch.randint(0, bc.vocab_size, (B, T))
    with torch.no_grad():
        gap = abs(loss_of(ours, True, idx, targets).item() - loss_of(theirs, False, idx, targets).item())
    opts = {name: torch.optim.AdamW(m.parameters(), lr=3e-4, betas=(0.9, 0.95), weight_decay=0.1)
            for name, m in (("ours", ours), ("nanoGPT", theirs))}
    pair = [("ours", ours), ("nanoGPT", theirs)]

    def train(name, model):
        for _ in range(args.train_steps):
            loss_of(model, name == "ours", idx, targets).backward()
            opts[name].step()
            opts[name].zero_grad(set_to_none=True)

    def forward(name, model):
        with torch.no_grad():
            for _ in range(args.forward_steps):
                loss_of(model, name == "ours", idx, targets)

    rows = []
    for label, work, steps in (("train", train, args.train_steps), ("forward", forward, args.forward_steps)):
        t = measure(pair, work, args.repeats)
        rows.append((label, steps * B * T / t["ours"], steps * B * T / t["nanoGPT"]))
    return rows, gap


def profile(nano, bc, rows=15):
    """The ops that take the most time in one training step of each model."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    ours, theirs = build_pair(nano, bc)
    idx = torch.randint(0, bc.vocab_size, (bc.batch_size, bc.context_length))
    for name, model in (("ours", ours), ("nanoGPT", theirs)):
        loss_of(model, name == "ours", idx, idx).backward()  # warm-up
        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            loss_of(model, name == "ours", idx, idx).backward()
        print(f"\n### {name}, {bc.name}: one forward + backward\n")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nanogpt", required=True, help="path of nanoGPT's model.py")
    p.add_argument("--configs", default="small,large")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--train-steps", type=int, default=2)
    p.add_argument("--forward-steps", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--profile", default=None, help="a config to profile instead of timing")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    nano = load_nanogpt(args.nanogpt)
    if args.profile:
        profile(nano, CONFIGS[args.profile])
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    print("| config | measurement | ours tokens/s | nanoGPT tokens/s | ours/nanoGPT |\n|---|---|---:|---:|---:|")
    for name in args.configs.split(","):
        rows, gap = bench(nano, CONFIGS[name], args)
        for label, a, b in rows:
            print(f"| {name} | {label} | {a:,.0f} | {b:,.0f} | {a / b:.2f}x |")
        print(f"| {name} | \\|loss ours - nanoGPT\\| | {gap:.1e} | | |")


if __name__ == "__main__":
    main()
