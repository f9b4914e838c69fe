"""Throughput of llmbook's GPT next to Hugging Face's GPT2LMHeadModel of the same size.

    .venv/bin/python bench/throughput.py                 # full run, CPU (about 20 minutes on 2 cores)
    .venv/bin/python bench/throughput.py --quick         # smoke run
    .venv/bin/python bench/throughput.py --device cuda --compile --peak-tflops 989

Prints a markdown table: training, forward and generation tokens/s and peak training memory for
both models, and ours/HF. Both models get the same weights (copied from ours into HF, which also
checks that they compute the same function), the same batches and the same AdamW settings.
Each measurement is the median of several repeats that alternate ours/HF, after a warm-up.
See bench/README.md for what each column means.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
# Speed is measured on the kernels and threads torch picks by itself, not the book's pinned path.
os.environ.setdefault("LLMBOOK_NUMERICS", "native")
from llmbook import GPT, GPTConfig  # noqa: E402
from llmbook.interop import gpt2_weight_names  # noqa: E402

CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
clock = CLOCKS["wall"]  # set by --clock
GEN_TOKENS = 200  # new tokens per generation measurement (batch 1, greedy, 1-token prompt)
GEN_BLOCK = 256  # 1 + GEN_TOKENS = 201 positions: generation models get at least this context
PROMPT_TOKEN = 1  # not 0: HF generate treats pad_token_id (0) in the prompt as padding and masks it


@dataclass
class BenchConfig:
    name: str
    vocab_size: int
    context_length: int
    n_layers: int
    n_heads: int
    d_model: int
    batch_size: int


CONFIGS = {
    "small": BenchConfig("small", 65, 128, 4, 4, 128, 32),
    "large": BenchConfig("large", 512, 256, 6, 6, 384, 16),
}


# ------------------------------------------------------------------------------ the models
def build_ours(bc: BenchConfig, context_length: int) -> GPT:
    return GPT(GPTConfig(vocab_size=bc.vocab_size, context_length=context_length, n_layers=bc.n_layers,
                         n_heads=bc.n_heads, d_model=bc.d_model, dropout=0.0))


def build_hf(bc: BenchConfig, context_length: int):
    """GPT2LMHeadModel of the same size, dropout 0, SDPA attention, no bos/eos in this vocabulary."""
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(vocab_size=bc.vocab_size, n_positions=context_length, n_embd=bc.d_model,
                     n_layer=bc.n_layers, n_head=bc.n_heads, resid_pdrop=0.0, embd_pdrop=0.0,
                     attn_pdrop=0.0, bos_token_id=None, eos_token_id=None, attn_implementation="sdpa")
    return GPT2LMHeadModel(cfg)


@torch.no_grad()
def copy_weights(ours: GPT, hf) -> None:
    """Give hf our weights, by the name mapping llmbook.interop uses to load GPT-2."""
    mine, theirs = ours.state_dict(), dict(hf.transformer.named_parameters())
    for our_name, their_name, conv1d in gpt2_weight_names(ours.config.n_layers):
        theirs[their_name].copy_(mine[our_name].T if conv1d else mine[our_name])


def check_same_function(ours: GPT, hf, device) -> float:
    """Max |logits difference| on a random batch: both models must compute the same function."""
    idx = torch.randint(0, ours.config.vocab_size, (2, 32), device=device)
    with torch.no_grad():
        return (ours(idx).logits - hf(input_ids=idx).logits).abs().max().item()


# --------------------------------------------------------------------------- measurements
class Runner:
    """One model behind a common interface: loss, forward and generate, ours or HF."""

    def __init__(self, model, is_hf: bool, device, amp_dtype, compile_: bool):
        self.model, self.is_hf, self.device, self.amp_dtype = model.to(device), is_hf, device, amp_dtype
        self.call = torch.compile(self.model) if compile_ else self.model
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=3e-4, betas=(0.9, 0.95), weight_decay=0.1)

    def autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype) if self.amp_dtype else nullcontext()

    def train_step(self, idx, targets):
        with self.autocast():
            if self.is_hf:  # HF shifts labels itself: labels = the input ids
                loss = self.call(input_ids=idx, labels=idx).loss
            else:
                loss = self.call(idx, targets).loss
        loss.backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)

    @torch.no_grad()
    def forward(self, idx):
        with self.autocast():
            return self.call(input_ids=idx).logits if self.is_hf else self.call(idx).logits

    @torch.no_grad()
    def generate(self, prompt, use_cache):
        with self.autocast():
            if self.is_hf:
                return self.model.generate(prompt, max_new_tokens=GEN_TOKENS, min_new_tokens=GEN_TOKENS,
                                           do_sample=False, pad_token_id=0, use_cache=use_cache)
            return self.model.generate(prompt, GEN_TOKENS, temperature=0, use_cache=use_cache)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device) -> float:
    """Seconds fn() takes on the chosen clock, with the device synchronised before and after."""
    sync(device)
    start = clock()
    fn()
    sync(device)
    return clock() - start


def measure_pair(ours: Runner, hf: Runner, work, repeats: int, warmup: int = 1):
    """Median seconds of work(runner) for ours and HF, in alternating repeats after warm-up."""
    for _ in range(warmup):
        work(ours), work(hf)
    times = {"ours": [], "hf": []}
    for r in range(repeats):
        order = [("ours", ours), ("hf", hf)] if r % 2 == 0 else [("hf", hf), ("ours", ours)]
        for name, runner in order:
            times[name].append(timed(lambda runner=runner: work(runner), runner.device))
    return statistics.median(times["ours"]), statistics.median(times["hf"])


# ---------------------------------------------------------------------------------- memory
MEMORY_CHILD = r"""
import json, sys, torch
sys.path.insert(0, {src!r}); sys.path.insert(0, {bench!r})
import throughput as tp
bc = tp.CONFIGS[{config!r}]
torch.manual_seed(0)
model = (tp.build_hf if {is_hf!r} else tp.build_ours)(bc, bc.context_length)
runner = tp.Runner(model, {is_hf!r}, torch.device("cpu"), None, False)
idx = torch.randint(0, bc.vocab_size, (bc.batch_size, bc.context_length))
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024  # kB -> MiB
open("/proc/self/clear_refs", "w").write("5")  # reset the peak RSS (VmHWM) to the current RSS
base = status("VmRSS")
for _ in range(2):
    runner.train_step(idx, idx)
print(json.dumps(status("VmHWM") - base))
"""


def peak_train_memory_mib(bc: BenchConfig, is_hf: bool, device) -> float | None:
    """Peak memory a training step adds above the built model (weights included in neither).

    CUDA: torch.cuda.max_memory_allocated. CPU: peak RSS growth in a fresh subprocess (so nothing
    an earlier measurement allocated is counted), including AdamW's state created in step 1.
    Returns None where the CPU measurement is unavailable (no /proc/self/clear_refs).
    """
    if device.type == "cuda":
        return None  # measured in the main process, see cuda_peak_mib
    here = Path(__file__).resolve().parent
    code = MEMORY_CHILD.format(src=str(here.parent / "src"), bench=str(here), config=bc.name, is_hf=is_hf)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode:
        print(f"memory measurement failed: {out.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    return float(out.stdout.strip().splitlines()[-1])


def cuda_peak_mib(runner: Runner, idx) -> float:
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    runner.train_step(idx, idx)
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - before) / 2**20


# ------------------------------------------------------------------------------- one config
def bench_config(bc: BenchConfig, args, device, amp_dtype) -> tuple[list[tuple], list[str]]:
    """Rows (measurement, ours, hf) for one config, and notes on the models measured."""
    torch.manual_seed(0)
    ours_m, hf_m = build_ours(bc, bc.context_length), build_hf(bc, bc.context_length)
    copy_weights(ours_m, hf_m)
    diff = check_same_function(ours_m.to(device), hf_m.to(device), device)
    notes = [f"{bc.name}: {ours_m.num_parameters():,} parameters (HF: "
             f"{sum(p.numel() for p in hf_m.parameters()):,}); max |logits ours - HF| = {diff:.1e}"]
    ours, hf = (Runner(m, is_hf, device, amp_dtype, args.compile) for m, is_hf in ((ours_m, False), (hf_m, True)))
    B, T = bc.batch_size, bc.context_length
    idx = torch.randint(0, bc.vocab_size, (B, T), device=device)
    targets = torch.randint(0, bc.vocab_size, (B, T), device=device)

    def train_work(r):
        for _ in range(args.train_steps):
            r.train_step(idx, targets)

    def fwd_work(r):
        for _ in range(args.forward_steps):
            r.forward(idx)

    t_ours, t_hf = measure_pair(ours, hf, train_work, args.repeats)
    rows = [("train tokens/s", args.train_steps * B * T / t_ours, args.train_steps * B * T / t_hf)]
    if args.peak_tflops:
        n = ours_m.num_parameters()
        mfu = lambda tps: 100 * 6 * n * tps / (args.peak_tflops * 1e12)  # noqa: E731
        rows.append(("train MFU %", mfu(rows[0][1]), mfu(rows[0][2])))
    t_ours, t_hf = measure_pair(ours, hf, fwd_work, args.repeats)
    rows.append(("forward tokens/s", args.forward_steps * B * T / t_ours, args.forward_steps * B * T / t_hf))
    gen_rows, gen_note = bench_generation(bc, args, device, amp_dtype)
    rows += gen_rows
    notes.append(gen_note)
    if not args.no_memory:
        rows.append(bench_memory(bc, device, ours, hf, idx))
    return rows, notes


def bench_generation(bc: BenchConfig, args, device, amp_dtype) -> tuple[list[tuple], str]:
    """Generation rows and a note. 1 + GEN_TOKENS positions exceed the small config's context:
    generation uses a model of the same sizes with context_length / n_positions >= GEN_BLOCK."""
    gen_block = max(bc.context_length, GEN_BLOCK)
    torch.manual_seed(0)
    ours_m, hf_m = build_ours(bc, gen_block), build_hf(bc, gen_block)
    copy_weights(ours_m, hf_m)
    ours, hf = (Runner(m.eval(), is_hf, device, amp_dtype, False) for m, is_hf in ((ours_m, False), (hf_m, True)))
    prompt = torch.full((1, 1), PROMPT_TOKEN, dtype=torch.long, device=device)
    same = torch.equal(ours.generate(prompt, True), hf.generate(prompt, True))
    rows = []
    for use_cache in (True, False):
        t_ours, t_hf = measure_pair(ours, hf, lambda r, use_cache=use_cache: r.generate(prompt, use_cache),
                                    args.repeats)
        label = "KV cache" if use_cache else "no cache"
        rows.append((f"generate tokens/s, {label}", GEN_TOKENS / t_ours, GEN_TOKENS / t_hf))
    rows.append(("cached / uncached speed-up", rows[0][1] / rows[1][1], rows[0][2] / rows[1][2]))
    if device.type == "cpu" and amp_dtype is None:
        rows.append(("weight-read floor tokens/s (matrix-vector products only)",
                     GEN_TOKENS / matvec_floor_seconds(ours_m, device, args.repeats), None))
    note = (f"{bc.name} generation: context_length/n_positions {gen_block}, prompt [[{PROMPT_TOKEN}]], "
            f"{GEN_TOKENS} greedy tokens; ours and HF generate the same tokens: {'yes' if same else 'NO'}")
    return rows, note


@torch.no_grad()
def matvec_floor_seconds(model, device, repeats: int) -> float:
    """Seconds for GEN_TOKENS decode steps that do nothing but multiply one vector by each weight
    matrix of the model (every Linear, the output layer included): the work of a batch-1 fp32 step
    that neither implementation can skip, since both read every weight once per token."""
    mats = [m.weight for m in model.modules() if isinstance(m, torch.nn.Linear)]
    xs = [torch.randn(1, w.shape[1], device=device) for w in mats]

    def steps():
        for _ in range(GEN_TOKENS):
            for w, x in zip(mats, xs):
                torch.nn.functional.linear(x, w)

    steps()  # warm-up
    return statistics.median(timed(steps, device) for _ in range(repeats))


def bench_memory(bc, device, ours: Runner, hf: Runner, idx) -> tuple:
    if device.type == "cuda":
        return ("train peak MiB (allocated)", cuda_peak_mib(ours, idx), cuda_peak_mib(hf, idx))
    return ("train peak MiB (RSS growth)", peak_train_memory_mib(bc, False, device),
            peak_train_memory_mib(bc, True, device))


# ---------------------------------------------------------------------------------- output
def fmt(v) -> str:
    if v is None:
        return "n/a"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.2f}"


def print_table(results, header: str) -> None:
    print(header)
    print("\n| config | measurement | ours | HF | ours/HF |\n|---|---|---:|---:|---:|")
    for cfg_name, rows in results:
        for label, a, b in rows:
            ratio = f"{a / b:.2f}x" if isinstance(a, float) and isinstance(b, float) and b else ""
            print(f"| {cfg_name} | {label} | {fmt(a)} | {fmt(b)} | {ratio} |")


def check_targets(results) -> None:
    """The targets on 2 CPU cores: print PASS/MISS for each."""
    print("\n| target | value | |\n|---|---:|---|")
    for cfg_name, rows in results:
        r = {label: (a, b) for label, a, b in rows}
        checks = [("ours train >= 1.2x HF", r["train tokens/s"][0] / r["train tokens/s"][1], 1.2),
                  ("ours cached generate >= 2x HF generate",
                   r["generate tokens/s, KV cache"][0] / r["generate tokens/s, KV cache"][1], 2.0),
                  ("ours cached >= 5x ours uncached", r["cached / uncached speed-up"][0], 5.0)]
        if "weight-read floor tokens/s (matrix-vector products only)" in r:
            floor = r["weight-read floor tokens/s (matrix-vector products only)"][0]
            print(f"| {cfg_name}: fastest cached generate the floor allows, / HF | "
                  f"{floor / r['generate tokens/s, KV cache'][1]:.2f}x | bound |")
        for text, value, goal in checks:
            print(f"| {cfg_name}: {text} | {value:.2f}x | {'PASS' if value >= goal else 'MISS'} |")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu", help="cpu or cuda (cuda adds bf16 autocast)")
    p.add_argument("--compile", action="store_true", help="torch.compile both models for train/forward")
    p.add_argument("--peak-tflops", type=float, default=None, help="device peak TFLOP/s, to report MFU")
    p.add_argument("--quick", action="store_true", help="smoke run: small config, 1 repeat, 1 step, no memory")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory row")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--train-steps", type=int, default=2, help="training steps per timed repeat")
    p.add_argument("--forward-steps", type=int, default=3, help="forward passes per timed repeat")
    p.add_argument("--configs", default="small,large")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                   help="wall: elapsed time; cpu: process CPU time, steadier on a shared machine "
                        "(use with --threads 1 on CPU: it leaves out time spent waiting for a core)")
    args = p.parse_args(argv)
    if args.quick:
        args.repeats, args.configs, args.train_steps, args.forward_steps = 1, "small", 1, 1
        args.no_memory = True
    return args


def main(argv=None) -> None:
    global clock
    args = parse_args(argv)
    if args.clock == "cpu" and args.device != "cpu":
        raise SystemExit("--clock cpu measures CPU time: use it with --device cpu")
    clock = CLOCKS[args.clock]
    if args.threads:
        torch.set_num_threads(args.threads)
    import transformers

    transformers.logging.set_verbosity_error()
    device = torch.device(args.device)
    amp_dtype = torch.bfloat16 if device.type == "cuda" else None
    results, notes = [], []
    for name in args.configs.split(","):
        rows, config_notes = bench_config(CONFIGS[name], args, device, amp_dtype)
        results.append((name, rows))
        notes += config_notes
        print(f"[{name} done]", file=sys.stderr)
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    header = (f"device {device}, torch {torch.__version__}, transformers {transformers.__version__}, "
              f"{torch.get_num_threads()} threads, {'bf16 autocast' if amp_dtype else 'fp32'}"
              f"{', compiled' if args.compile else ''}; {args.clock} clock; median of {args.repeats} "
              f"alternating repeats; "
              f"load average at the end {load} ({os.cpu_count()} CPUs)\n"
              + "".join(f"\n- {n}" for n in notes))
    print_table(results, header)
    check_targets(results)


if __name__ == "__main__":
    main()
