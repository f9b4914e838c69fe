"""Emergence or measurement? Small GPTs of several sizes learn 3-digit addition, scored three ways.

    python -m llmbook.experiments.emergence     # the full run, one CPU thread: see FULL below

Every size is trained from several seeds: a seed sets the model's initial weights and the order of
its batches; the problems (training pool and held-out set) are the same for every seed.

Every model sees the same problems in the same order ("042+517=0559" and a newline: numbers written
with a fixed number of digits, so that digit k of every number sits at the same position), is trained
with the loss on the answer only, and is evaluated every ``eval_every`` steps on the same held-out
problems with three metrics computed from one teacher-forced forward pass
(``llmbook.metrics.answer_metrics``):

- ``exact_match``: the fraction of problems whose whole answer (digits and the closing newline) is
  right at every position. It equals the accuracy of greedy decoding: greedy decoding writes the
  correct answer exactly when the most likely token is the correct one at every answer position.
- ``token_accuracy``: the fraction of answer tokens whose most likely prediction is right.
- ``answer_log_likelihood``: log P(correct answer | question) in nats, the sum over the answer
  tokens of log p(token | everything before it), averaged over the problems.

The learning rate is constant after a short warm-up, so every evaluation is a fair end point and a
shorter run with the same seed retraces the beginning of a longer one.

Used in chapter 9, Emergent abilities.
"""
from __future__ import annotations

import time

import torch

from ..data import addition_task
from ..metrics import answer_metrics
from ..models import GPT, GPTConfig
from ..tokenizers import CharTokenizer
from ..train import TrainConfig, train
from . import run_and_save

ALPHABET = "0123456789+=\n"
N_DIGITS = 3
# (n_layers, d_model) of the full run: 1,960 to 57,840 parameters, three seeds each (d_model 64 and 96,
# 101,696 and 226,272 parameters, cost as much CPU time as the six smaller sizes together)
FULL = dict(sizes=[(2, 8), (2, 16), (2, 24), (2, 32), (2, 40), (2, 48)], steps=1500,
            eval_every=50, n_test=1000, seeds=(0, 1, 2))
BATCH_SIZE, LR, WARMUP_STEPS = 64, 3e-3, 50


def tokenizer() -> CharTokenizer:
    """One id per character of ALPHABET: the ten digits, "+", "=" and the newline."""
    return CharTokenizer(ALPHABET)


def format_problem(question: str, answer: str, n_digits: int = N_DIGITS) -> str:
    """("42+517=", "559") from llmbook.data.addition_task -> "042+517=0559\\n": operands with n_digits
    digits, the sum with n_digits + 1, so every line of a task has the same layout.

    Raises ValueError for a question that is not "a+b=" or numbers longer than the layout allows.
    """
    if not question.endswith("=") or question.count("+") != 1:
        raise ValueError(f"expected a question of the form 'a+b=', got {question!r}")
    a, b = question[:-1].split("+")
    if max(len(a), len(b)) > n_digits or len(answer) > n_digits + 1:
        raise ValueError(f"{question}{answer} does not fit {n_digits}-digit operands")
    return f"{int(a):0{n_digits}d}+{int(b):0{n_digits}d}={int(answer):0{n_digits + 1}d}\n"


def answer_start(n_digits: int = N_DIGITS) -> int:
    """Index of the first answer character in a formatted line ("042+517=" has 2 n_digits + 2 chars)."""
    return 2 * n_digits + 2


def encode_problems(lines: list[str], n_digits: int = N_DIGITS) -> tuple[torch.Tensor, torch.Tensor]:
    """Formatted lines -> (inputs, targets), LongTensor (N, T) each with T = len(line) - 1.

    targets[:, t] is the character after position t where that character belongs to the answer
    (n_digits + 1 digits and the newline), and -100 (ignored by the loss) on the question.
    Raises ValueError if the lines do not all have the layout of n_digits-digit problems.
    """
    length = answer_start(n_digits) + n_digits + 2
    bad = [line for line in lines if len(line) != length]
    if bad:
        raise ValueError(f"every line must have {length} characters for {n_digits}-digit problems, got {bad[0]!r}")
    ids = torch.tensor(tokenizer().encode("".join(lines))).view(len(lines), length)  # (N, length)
    inputs, targets = ids[:, :-1], ids[:, 1:].clone()
    targets[:, : answer_start(n_digits) - 1] = -100  # the question cannot be predicted
    return inputs, targets


def model_config(n_layers: int, d_model: int, n_digits: int = N_DIGITS) -> GPTConfig:
    """The GPT of one size: at most 4 heads of at least 4 dimensions each (2 heads at d_model = 8)."""
    n_heads = max(1, min(4, d_model // 4))
    return GPTConfig(vocab_size=len(ALPHABET), context_length=answer_start(n_digits) + n_digits + 1,
                     n_layers=n_layers, n_heads=n_heads, d_model=d_model)


def problems(n_train: int, n_test: int, seed: int = 0, n_digits: int = N_DIGITS):
    """(train inputs, train targets, test inputs, test targets); no test problem is in the training pool."""
    test = [format_problem(q, a, n_digits) for q, a in addition_task(n_test, n_digits, seed=seed + 10_000)]
    held_out = set(test)
    pool = [line for line in (format_problem(q, a, n_digits) for q, a in addition_task(n_train, n_digits, seed=seed))
            if line not in held_out]
    return (*encode_problems(pool, n_digits), *encode_problems(test, n_digits))


def train_adder(n_layers: int, d_model: int, steps: int, eval_every: int = 50, n_test: int = 1000,
                n_train: int = 100_000, seed: int = 0, device: str | None = "cpu", data=None):
    """Train one GPT on addition; returns (model, record) with record["step"] and one list per metric.

    data: the tuple from ``problems`` (built here if None). Every model with the same seed sees the
    same batches. device: "cpu" by default, so the numbers do not depend on the machine.
    """
    if steps < 1 or eval_every < 1:
        raise ValueError(f"steps={steps} and eval_every={eval_every} must be >= 1")
    x_train, y_train, x_test, y_test = data if data is not None else problems(n_train, n_test, seed)
    torch.manual_seed(seed)
    model = GPT(model_config(n_layers, d_model))
    batches = torch.Generator().manual_seed(seed)

    def get_batch(step):
        index = torch.randint(len(x_train), (BATCH_SIZE,), generator=batches)
        return x_train[index], y_train[index]

    def evaluate(m):
        device_ = next(m.parameters()).device
        return answer_metrics(m(x_test.to(device_)).logits.cpu(), y_test)

    cfg = TrainConfig(steps=steps, lr=LR, warmup_steps=min(WARMUP_STEPS, steps // 2), min_lr_ratio=1.0,
                      eval_every=eval_every, progress=False, log_every=0, seed=seed, device=device)
    history = train(model, get_batch, cfg, eval_fn=evaluate)
    record = {"step": [e["step"] + 1 for e in history.evals]}
    for key in ("exact_match", "token_accuracy", "answer_log_likelihood"):
        record[key] = [round(e[key], 5) for e in history.evals]
    record["position_accuracy"] = [[round(v, 5) for v in e["position_accuracy"]] for e in history.evals]
    return model, record


def run(sizes, steps: int, eval_every: int = 50, n_test: int = 1000, n_train: int = 100_000, seeds=(0,),
        data_seed: int = 0, progress: bool = False, device: str | None = "cpu") -> dict:
    """Train one GPT per (n_layers, d_model) in sizes and per seed, on the same addition problems (drawn
    from data_seed); return plain data: {"settings": {...}, "runs": [{n_layers, d_model, seed, params,
    wall_seconds, step, exact_match, token_accuracy, answer_log_likelihood, position_accuracy}, ...]},
    seed by seed, with the metric lists aligned with step (position_accuracy holds one list of
    n_digits + 2 accuracies per evaluation).
    Raises ValueError for an empty sizes or seeds, or steps < 1.
    """
    if not sizes or not seeds:
        raise ValueError(f"sizes={sizes} and seeds={seeds} must not be empty: give at least one of each")
    data = problems(n_train, n_test, data_seed)
    runs = []
    for seed in seeds:
        for n_layers, d_model in sizes:
            start = time.perf_counter()
            model, record = train_adder(n_layers, d_model, steps, eval_every, n_test, n_train, seed, device, data)
            seconds = time.perf_counter() - start
            runs.append({"n_layers": n_layers, "d_model": d_model, "seed": seed, "params": model.num_parameters(),
                         "wall_seconds": round(seconds, 1), **record})
            if progress:
                print(f"seed={seed} n_layers={n_layers} d_model={d_model:3d}  params={runs[-1]['params']:>7,}  "
                      f"exact match {record['exact_match'][-1]:.3f}  token accuracy {record['token_accuracy'][-1]:.3f}"
                      f"  log-likelihood {record['answer_log_likelihood'][-1]:.3f}  {seconds:.0f} s", flush=True)
    settings = {"n_digits": N_DIGITS, "answer_tokens": N_DIGITS + 2, "batch_size": BATCH_SIZE, "lr": LR,
                "warmup_steps": min(WARMUP_STEPS, steps // 2), "steps": steps, "eval_every": eval_every,
                "n_test": n_test, "n_train": len(data[0]), "seeds": list(seeds), "data_seed": data_seed}
    return {"settings": settings, "runs": runs}


def main() -> None:
    run_and_save("emergence", run, **FULL, progress=True)


if __name__ == "__main__":
    main()
