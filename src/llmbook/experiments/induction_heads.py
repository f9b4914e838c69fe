"""Induction heads in miniature: attention-only GPTs on repeating random letters.

    python -m llmbook.experiments.induction_heads     # the full run, one CPU thread: see FULL below

Each training sequence is a random string of distinct letters repeated over and over, with a period
drawn anew for every sequence (``repeated_letters``). The first period cannot be predicted; after it,
every letter can be, by finding the earlier copy of the current letter and predicting the letter that
followed it. That is what an **induction head** does (Olsson et al., 2022), and an attention-only model
needs two layers to build one: a head in layer 0 that copies each position's previous letter into it,
and a head in layer 1 whose query (the current letter) matches that copied key. Because the period
changes from sequence to sequence, no fixed positional offset solves the task.

Every ``eval_every`` steps the run records, on held-out sequences of period 16: the mean loss on the
first period and on the rest, the largest induction score of the last layer's heads and the largest
previous-token score of layer 0's heads (``llmbook.attention_patterns``).

Used in chapter 9, Emergent abilities.
"""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from ..attention_patterns import induction_scores, previous_token_scores
from ..models import GPT, GPTConfig
from ..tokenizers import CharTokenizer
from ..train import TrainConfig, train
from . import run_and_save

LETTERS = "abcdefghijklmnopqrstuvwxyz"
SEQ_LEN, PERIODS, EVAL_PERIOD = 32, (4, 16), 16
FULL = dict(n_layers=(1, 2), seeds=(0, 1, 2, 3, 4), steps=1000, eval_every=20)
BATCH_SIZE, LR, WARMUP_STEPS = 32, 3e-3, 30


def tokenizer() -> CharTokenizer:
    """One id per lowercase letter a..z (ids 0..25)."""
    return CharTokenizer(LETTERS)


def repeated_letters(batch_size: int, seq_len: int = SEQ_LEN, periods=PERIODS, generator=None,
                     vocab_size: int = len(LETTERS)) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch of repeating random strings for next-token training: (x, y), LongTensor (B, seq_len) each.

    Each row draws a period P uniformly from periods = (lo, hi) (or takes P = periods if it is an
    int), draws P distinct ids from [0, vocab_size) and repeats them: x[b, t] = ids[t % P], and
    y[b, t] = x[b, t + 1]. Raises ValueError for a period outside [1, vocab_size] or above seq_len.
    """
    lo, hi = (periods, periods) if isinstance(periods, int) else periods
    if not 1 <= lo <= hi <= min(vocab_size, seq_len):
        raise ValueError(f"periods {periods} must satisfy 1 <= lo <= hi <= min(vocab_size={vocab_size}, "
                         f"seq_len={seq_len}): a period repeats distinct ids within the sequence")
    period = torch.randint(lo, hi + 1, (batch_size, 1), generator=generator)  # (B, 1)
    letters = torch.rand(batch_size, vocab_size, generator=generator).argsort(-1)  # a random order per row
    seq = letters.gather(1, torch.arange(seq_len + 1) % period)  # (B, seq_len + 1)
    return seq[:, :-1], seq[:, 1:]


def attention_only_config(n_layers: int, d_model: int = 64, n_heads: int = 2, seq_len: int = SEQ_LEN) -> GPTConfig:
    """A GPT without feed-forward sublayers (d_ff=0) or biases; its unembedding is not tied to the
    embedding: with tied weights the direct path favours predicting the current letter again, and
    the induction head forms much later."""
    return GPTConfig(vocab_size=len(LETTERS), context_length=seq_len, n_layers=n_layers, n_heads=n_heads,
                     d_model=d_model, d_ff=0, bias=False, tie_weights=False)


def eval_batch(n: int = 256, seed: int = 123):
    """Held-out sequences of period EVAL_PERIOD (16): the first half is new, the second half repeats it."""
    return repeated_letters(n, SEQ_LEN, EVAL_PERIOD, generator=torch.Generator().manual_seed(seed))


def measure(model: GPT, x: torch.Tensor, y: torch.Tensor, period: int = EVAL_PERIOD) -> dict[str, float]:
    """Loss on the first period and on the repeated part, best induction score in the last layer,
    best previous-token score in layer 0."""
    with torch.no_grad():
        out = model(x, targets=y, return_attention=True)
    loss = F.cross_entropy(out.logits.transpose(1, 2), y, reduction="none").mean(0)  # (T,)
    attentions = [a.mean(0) for a in out.attentions]  # per layer (H, T, T), averaged over the batch
    return {"loss_first_period": loss[: period - 1].mean().item(),  # targets 1 .. period-1: all new letters
            "loss_repeated": loss[period:].mean().item(),  # targets period+1 .. T: all predictable
            "induction_score": induction_scores(attentions[-1], period).max().item(),
            "previous_token_score": previous_token_scores(attentions[0]).max().item()}


def train_attention_only(n_layers: int, steps: int, eval_every: int = 20, seed: int = 0, d_model: int = 64,
                         n_heads: int = 2, device: str | None = "cpu"):
    """Train one attention-only GPT on repeated_letters; returns (model, record), record holding "step"
    and one list per entry of ``measure``. device: "cpu" by default, so the numbers do not depend
    on the machine."""
    if steps < 1 or eval_every < 1:
        raise ValueError(f"steps={steps} and eval_every={eval_every} must be >= 1")
    torch.manual_seed(seed)
    model = GPT(attention_only_config(n_layers, d_model, n_heads))
    batches = torch.Generator().manual_seed(seed)
    x_eval, y_eval = eval_batch()

    def evaluate(m):
        device_ = next(m.parameters()).device
        return measure(m, x_eval.to(device_), y_eval.to(device_))

    cfg = TrainConfig(steps=steps, lr=LR, warmup_steps=min(WARMUP_STEPS, steps // 2), min_lr_ratio=1.0,
                      eval_every=eval_every, progress=False, log_every=0, seed=seed, device=device)
    history = train(model, lambda step: repeated_letters(BATCH_SIZE, generator=batches), cfg, eval_fn=evaluate)
    record = {"step": [e["step"] + 1 for e in history.evals]}
    for key in ("loss_first_period", "loss_repeated", "induction_score", "previous_token_score"):
        record[key] = [round(e[key], 5) for e in history.evals]
    return model, record


def phase_change_step(record: dict, threshold: float = 0.5) -> int | None:
    """The first evaluated step at which the loss on the repeated part is below threshold (nats), or
    None if it never is. 0.5 nats lies far below what a model without an induction head reaches
    (about 1.3 to 2.3 for one layer; ln 26 = 3.26 for a uniform guess) and far above the loss of a
    working induction head (a few hundredths)."""
    for step, loss in zip(record["step"], record["loss_repeated"]):
        if loss < threshold:
            return step
    return None


def run(n_layers=(1, 2), seeds=(0,), steps: int = 300, eval_every: int = 20, progress: bool = False,
        device: str | None = "cpu") -> dict:
    """Train one attention-only GPT per (depth, seed); return plain data {"settings", "runs": [{n_layers,
    seed, params, wall_seconds, phase_change_step, step, loss_first_period, loss_repeated, induction_score,
    previous_token_score}, ...]}. Raises ValueError for an empty n_layers or seeds."""
    if not n_layers or not seeds:
        raise ValueError(f"n_layers={n_layers} and seeds={seeds} must not be empty")
    runs = []
    for depth in n_layers:
        for seed in seeds:
            start = time.perf_counter()
            model, record = train_attention_only(depth, steps, eval_every, seed, device=device)
            seconds = time.perf_counter() - start
            runs.append({"n_layers": depth, "seed": seed, "params": model.num_parameters(),
                         "wall_seconds": round(seconds, 1), "phase_change_step": phase_change_step(record), **record})
            if progress:
                print(f"n_layers={depth} seed={seed}  loss on the repeated part {record['loss_repeated'][-1]:.3f}"
                      f"  induction score {record['induction_score'][-1]:.3f}"
                      f"  phase change at step {runs[-1]['phase_change_step']}  {seconds:.0f} s", flush=True)
    settings = {"seq_len": SEQ_LEN, "periods": list(PERIODS), "eval_period": EVAL_PERIOD, "batch_size": BATCH_SIZE,
                "lr": LR, "steps": steps, "eval_every": eval_every, "vocab_size": len(LETTERS)}
    return {"settings": settings, "runs": runs}


def main() -> None:
    run_and_save("induction_heads", run, **FULL, progress=True)


if __name__ == "__main__":
    main()
