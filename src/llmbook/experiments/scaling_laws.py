"""Scaling laws in miniature: a family of small GPTs trained on the same data, and power-law fits.

    python -m llmbook.experiments.scaling_laws     # the full run, one CPU thread: see FULL below

Every model sees the same token stream (character-level text from ``llmbook.data.toy_grammar_corpus``)
in the same order, with the same batch size, a constant learning rate after warm-up (so the loss at
every step is a fair end point) that depends on the width only, and at least ``steps`` steps; with a
``compute_budget`` the smaller models train longer, until they too have spent that many FLOPs
(6 N D), so that every size can be compared at every budget up to it. The held-out loss is recorded
every ``eval_every`` steps with the number of tokens seen D, the non-embedding parameter count N, and
the FLOPs of a step as PyTorch counts them (``torch.utils.flop_counter.FlopCounterMode``).

The analysis of its results lives here where it reads the runs' records: ``compute_frontier`` finds,
for each compute budget, the model size with the lowest loss; ``isoflop_profiles`` gathers the losses
of all sizes at one budget (Hoffmann et al.'s "IsoFLOP profiles"). The fits and FLOP counts that do
not depend on this experiment (``fit_power_law``, ``fit_power_law_with_floor``, ``isoflop_optimum``,
``training_flops_per_step``) live in ``llmbook.scaling_laws``.

Used in chapter 8, Scaling and unit scaling.
"""
from __future__ import annotations

import math
import time

import torch

from ..data import lm_batch, toy_grammar_corpus
from ..models import GPT, GPTConfig
from ..scaling_laws import training_flops_per_step
from ..tokenizers import CharTokenizer
from ..train import TrainConfig, train
from . import run_and_save

# (n_layers, d_model) of the full run: about 900 to 800,000 non-embedding parameters. Every size trains
# 600 steps (614,400 tokens) or, for the small ones, until it has spent 1e11 FLOPs (6 N D).
FULL = dict(sizes=[(1, 8), (1, 12), (1, 16), (2, 16), (2, 24), (2, 32), (3, 48), (3, 64), (4, 96), (4, 128)],
            steps=600, eval_every=50, compute_budget=1e11, max_steps=8000, n_sentences=200_000)
BATCH_SIZE, BLOCK_SIZE, N_HEADS_MAX = 16, 64, 4


def learning_rate(d_model: int) -> float:
    """Peak AdamW learning rate for width d_model: wider models need smaller steps."""
    return min(2e-2, 6e-3 * math.sqrt(128 / d_model))


def model_config(n_layers: int, d_model: int, vocab_size: int) -> GPTConfig:
    """The GPT of one size: head width d_model / n_heads with at most 4 heads and at least 4 dims each."""
    n_heads = max(1, min(N_HEADS_MAX, d_model // 4))
    return GPTConfig(vocab_size=vocab_size, context_length=BLOCK_SIZE, n_layers=n_layers, n_heads=n_heads,
                     d_model=d_model)


def corpus(n_sentences: int = 30_000, seed: int = 0):
    """(train ids, validation ids, vocab_size): two independent samples of the toy grammar, char-level."""
    train_text = toy_grammar_corpus(n_sentences, seed=seed)
    tokenizer = CharTokenizer(train_text)
    valid_text = toy_grammar_corpus(max(200, n_sentences // 20), seed=seed + 1)
    encode = lambda text: torch.tensor(tokenizer.encode(text))  # noqa: E731
    return encode(train_text), encode(valid_text), tokenizer.vocab_size


@torch.no_grad()
def _eval_loss(model, batches) -> float:
    device = next(model.parameters()).device
    return sum(model(x.to(device), targets=y.to(device)).loss.item() for x, y in batches) / len(batches)


def steps_for(non_embedding_params: int, steps: int, compute_budget: float | None, max_steps: int | None) -> int:
    """Steps for one size: at least `steps`, and enough to spend compute_budget = 6 N D FLOPs
    (D = steps * batch * context), but at most max_steps."""
    if compute_budget is None:
        return steps
    needed = math.ceil(compute_budget / (6 * non_embedding_params * BATCH_SIZE * BLOCK_SIZE))
    return max(steps, min(needed, max_steps or needed))


def run(sizes, steps: int, eval_every: int = 50, n_sentences: int = 30_000, n_eval_batches: int = 8,
        seed: int = 0, progress: bool = False, device: str | None = "cpu", compute_budget: float | None = None,
        max_steps: int | None = None) -> dict:
    """Train one GPT per (n_layers, d_model) in sizes for `steps` steps (more with a compute_budget,
    see steps_for); return plain data.

    device: where to train ("cpu" by default, so results do not depend on the machine; None picks
    cuda or mps when there is one).
    Returns {"settings": {...}, "runs": [one dict per size with n_layers, d_model, params,
    non_embedding_params, lr, flops_per_step, step, tokens, eval_loss, train_loss (lists aligned
    with step), wall_seconds]}. Raises ValueError for an empty sizes list or steps < 1.
    """
    if not sizes:
        raise ValueError("sizes is empty: give at least one (n_layers, d_model)")
    if steps < 1 or eval_every < 1:
        raise ValueError(f"steps={steps} and eval_every={eval_every} must be >= 1")
    train_ids, valid_ids, vocab_size = corpus(n_sentences, seed)
    g = torch.Generator().manual_seed(seed + 1)
    eval_batches = [lm_batch(valid_ids, BATCH_SIZE, BLOCK_SIZE, generator=g) for _ in range(n_eval_batches)]
    runs = []
    for n_layers, d_model in sizes:
        torch.manual_seed(seed)
        model = GPT(model_config(n_layers, d_model, vocab_size))
        flops_per_step = training_flops_per_step(model, BATCH_SIZE, BLOCK_SIZE)
        n_steps = steps_for(model.num_parameters(non_embedding=True), steps, compute_budget, max_steps)
        batches = torch.Generator().manual_seed(seed)  # every size sees the same batches
        record = {"step": [], "tokens": [], "eval_loss": []}

        def evaluate(m):
            return {"eval_loss": _eval_loss(m, eval_batches)}

        cfg = TrainConfig(steps=n_steps, lr=learning_rate(d_model), warmup_steps=min(50, steps // 10),
                          min_lr_ratio=1.0,  # constant after warm-up: every step is a fair end point
                          weight_decay=0.0, eval_every=eval_every, progress=False, log_every=0, seed=seed,
                          device=device)
        def batch_fn(step, batches=batches):
            return lm_batch(train_ids, BATCH_SIZE, BLOCK_SIZE, generator=batches)

        start = time.perf_counter()
        history = train(model, batch_fn, cfg, eval_fn=evaluate)
        seconds = time.perf_counter() - start
        for e in history.evals:
            record["step"].append(e["step"] + 1)
            record["tokens"].append((e["step"] + 1) * BATCH_SIZE * BLOCK_SIZE)
            record["eval_loss"].append(round(e["eval_loss"], 5))
        window = max(1, eval_every // 2)  # train loss: mean of the steps just before each evaluation
        record["train_loss"] = [round(sum(history.loss[s - window:s]) / window, 5) for s in record["step"]]
        runs.append({"n_layers": n_layers, "d_model": d_model, "params": model.num_parameters(),
                     "non_embedding_params": model.num_parameters(non_embedding=True),
                     "lr": learning_rate(d_model), "flops_per_step": flops_per_step,
                     "wall_seconds": round(seconds, 1), **record})
        if progress:
            print(f"n_layers={n_layers} d_model={d_model:4d}  N={runs[-1]['non_embedding_params']:>8,}  "
                  f"eval loss {record['eval_loss'][-1]:.3f}  {seconds:.0f} s", flush=True)
    settings = {"batch_size": BATCH_SIZE, "block_size": BLOCK_SIZE, "steps": steps, "eval_every": eval_every,
                "compute_budget": compute_budget, "max_steps": max_steps, "n_sentences": n_sentences,
                "vocab_size": vocab_size, "seed": seed, "train_tokens_available": len(train_ids)}
    return {"settings": settings, "runs": runs}


def compute_frontier(runs, budgets, flops_key: str = "flops_6nd"):
    """For each compute budget C: (best loss, N of the best size), interpolating each size's eval loss
    linearly in log C between its evaluations; sizes whose runs do not reach C are left out.

    runs: the "runs" list of run(); flops_key: "flops_6nd" (6 N D) or "flops_measured".
    Returns (best_loss list, best_N list), None where no size reaches the budget.
    """
    best_loss, best_n = [], []
    for C in budgets:
        candidates = [(loss, r["non_embedding_params"]) for r in runs
                      if (loss := loss_at_compute(r, C, flops_key)) is not None]
        loss, n = min(candidates) if candidates else (None, None)
        best_loss.append(loss)
        best_n.append(n)
    return best_loss, best_n


def loss_at_compute(r, C: float, flops_key: str = "flops_6nd") -> float | None:
    """The eval loss of run r when it had spent C FLOPs, interpolated linearly in log C between its
    evaluations; None when C lies outside the run's evaluations."""
    flops = run_flops(r)[flops_key]
    for i in range(len(flops) - 1):
        if flops[i] <= C <= flops[i + 1]:
            t = (math.log(C) - math.log(flops[i])) / (math.log(flops[i + 1]) - math.log(flops[i]))
            return r["eval_loss"][i] + t * (r["eval_loss"][i + 1] - r["eval_loss"][i])
    return None


def isoflop_profiles(runs, budgets, flops_key: str = "flops_6nd") -> list[list[tuple[int, float]]]:
    """For each budget C, the (N, loss at C) of every run that was evaluated around C, ordered by N."""
    profiles = []
    for C in budgets:
        points = [(r["non_embedding_params"], loss_at_compute(r, C, flops_key)) for r in runs]
        profiles.append(sorted((n, loss) for n, loss in points if loss is not None))
    return profiles


def loss_at_tokens(r, tokens: int) -> float | None:
    """The eval loss of run r after `tokens` tokens, if it was evaluated exactly then."""
    return r["eval_loss"][r["tokens"].index(tokens)] if tokens in r["tokens"] else None


def run_flops(r) -> dict:
    """{"flops_6nd": 6 N D at each evaluation, "flops_measured": counted FLOPs per step * steps}."""
    return {"flops_6nd": [6 * r["non_embedding_params"] * d for d in r["tokens"]],
            "flops_measured": [r["flops_per_step"] * s for s in r["step"]]}


def main() -> None:
    run_and_save("scaling_laws", run, **FULL, progress=True)


if __name__ == "__main__":
    main()
