"""Post-LN vs pre-LN, with and without learning-rate warm-up: does a small encoder-decoder train?

    python -m llmbook.experiments.ln_placement     # the full sweep, one CPU thread: see FULL below

Each run trains a fresh ``Seq2Seq`` (3 encoder + 3 decoder layers, d_model = 32) to reverse random
sequences of 8 tokens (``llmbook.data.reverse_task``) for ``steps`` AdamW steps with the book's
``llmbook.train.train`` (cosine decay, gradient clipping at 1.0), and records the loss of every step.
The grid is: LayerNorm placement (post-LN, pre-LN) x warm-up (none, ``warmup`` steps) x peak
learning rate x seed. Chapter 4 runs the four runs of one learning rate and one seed live and reads
the whole grid from ``results/ln_placement.json``.

Used in chapter 4, Encoder and decoder.
"""
from __future__ import annotations

import torch

from ..data import BOS_ID, EOS_ID, reverse_task
from ..models import Seq2Seq, Seq2SeqConfig
from ..train import TrainConfig, train
from . import run_and_save

FULL = dict(lrs=[1e-3, 2e-3, 5e-3, 1e-2, 2e-2], seeds=[0, 1, 2], grad_norms=False)  # the chapter plots the losses only
SEQ_LEN, VOCAB = 8, 16  # reverse 8 tokens drawn from 13 content ids (0, 1, 2 are pad, bos, eos)
PLACEMENTS = {"post-LN": False, "pre-LN": True}  # name -> norm_first


def reverse_batches(batch_size: int, seed: int):
    """get_batch(step) -> (src, decoder inputs, labels) for reversing, from a pool of 20,000 sequences."""
    src, tgt = reverse_task(20_000, SEQ_LEN, VOCAB, seed=0)
    g = torch.Generator().manual_seed(seed)
    bos, eos = torch.full((batch_size, 1), BOS_ID), torch.full((batch_size, 1), EOS_ID)

    def get_batch(step):
        i = torch.randint(len(src), (batch_size,), generator=g)
        return src[i], torch.cat([bos, tgt[i]], dim=1), torch.cat([tgt[i], eos], dim=1)  # (B, 8), (B, 9), (B, 9)

    return get_batch


def run_one(norm_first: bool, warmup_steps: int, lr: float, seed: int = 0, steps: int = 100, n_layers: int = 3,
            d_model: int = 32, batch_size: int = 32) -> dict:
    """Train one model; returns {"loss": [per step], "grad_norm": [per step, before clipping]}."""
    torch.manual_seed(seed)
    model = Seq2Seq(Seq2SeqConfig(src_vocab_size=VOCAB, tgt_vocab_size=VOCAB, context_length=2 * SEQ_LEN,
                                  n_encoder_layers=n_layers, n_decoder_layers=n_layers, n_heads=4,
                                  d_model=d_model, norm_first=norm_first))
    history = train(model, reverse_batches(batch_size, seed),
                    TrainConfig(steps=steps, lr=lr, warmup_steps=warmup_steps, progress=False, log_every=0,
                                seed=seed, device="cpu"))
    return {"loss": [round(v, 5) for v in history.loss], "grad_norm": [round(v, 5) for v in history.grad_norm]}


def run(lrs=(1e-2,), seeds=(0,), steps: int = 100, warmup: int = 20, n_layers: int = 3, d_model: int = 32,
        batch_size: int = 32, grad_norms: bool = True) -> dict:
    """The grid: one entry per (placement, warm-up, lr, seed) in data["runs"], with its loss curve.

    Returns {"settings": {...}, "runs": [{"placement", "warmup_steps", "lr", "seed", "loss",
    "grad_norm", "final_loss"}, ...]}; final_loss is the mean loss of the last 10 steps. With
    grad_norms=False the runs leave out "grad_norm" (half the size of the result file).
    """
    runs = []
    for lr in lrs:
        for seed in seeds:
            for placement, norm_first in PLACEMENTS.items():
                for warmup_steps in (0, warmup):
                    out = run_one(norm_first, warmup_steps, lr, seed, steps, n_layers, d_model, batch_size)
                    tail = out["loss"][-10:]
                    if not grad_norms:
                        del out["grad_norm"]
                    runs.append({"placement": placement, "warmup_steps": warmup_steps, "lr": lr, "seed": seed,
                                 **out, "final_loss": round(sum(tail) / len(tail), 4)})
    settings = dict(steps=steps, warmup=warmup, n_layers=n_layers, d_model=d_model, batch_size=batch_size,
                    task=f"reverse {SEQ_LEN} tokens, vocabulary {VOCAB}")
    return {"settings": settings, "runs": runs}


def main() -> None:
    run_and_save("ln_placement", run, **FULL)


if __name__ == "__main__":
    main()
