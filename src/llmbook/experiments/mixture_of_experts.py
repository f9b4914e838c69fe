"""A mixture of experts against dense models: same active parameters, same data, same batches.

    python -m llmbook.experiments.mixture_of_experts     # the full run, one CPU thread: see FULL below
    python -m llmbook.experiments.mixture_of_experts "moe, straight-through"   # one variant, merged in

Five character-level GPTs (2 layers, d_model = 64, 4 heads; batches of 16 windows of 64 characters)
are trained on Shakespeare's training split with the same batches in the same order and evaluated on
the validation split:

- "dense": the ordinary feed-forward network, d_ff = 4 d_model;
- "moe": ``GPTConfig(n_experts=..., moe_top_k=1)``, every feed-forward network a ``MoEFeedForward`` of
  ``n_experts`` experts of the same size with top-1 routing (Switch), trained on the language-model loss
  plus ``aux_weight`` times the load-balancing loss (the model's ``.aux_loss``):
  each token passes through one expert, so the parameters it uses (its *active* parameters) are
  those of "dense" plus the router;
- "moe, no balancing": the same without the load-balancing loss;
- "moe, straight-through": "moe" (same initial weights, same balancing loss) with the chosen expert's
  output multiplied by a straight-through weight, 1 in the forward pass but with the gradient of p_e
  (StraightThroughMoE): the router still learns from the main loss, but the expert's output is not
  shrunk by p_e (about 1/n_experts at initialisation). Each expert still sees ~1/n_experts of the tokens;
- "dense, wide": one feed-forward network with n_experts * d_ff hidden units, the same *total*
  parameters as "moe" and n_experts times its feed-forward work per token.

For every run the result holds the validation loss every ``eval_every`` steps, and for the routed
models how many of the validation tokens each layer sends to each expert and the load-balancing
loss during training. Chapter 8 reads ``results/mixture_of_experts.json``.

Used in chapter 8, Scaling and unit scaling.
"""
from __future__ import annotations

import torch

from ..blocks import MoEFeedForward, load_balancing_loss
from ..corpora import shakespeare
from ..data import lm_batch
from ..models import GPT, GPTConfig
from ..tokenizers import CharTokenizer
from . import run_and_save

FULL = dict(steps=400, seeds=(0, 1), n_experts=8, aux_weight=0.01, eval_every=50, batch_size=16)
VARIANTS = ("dense", "moe", "moe, no balancing", "dense, wide", "moe, straight-through")
BALANCED = ("moe", "moe, straight-through")  # the variants trained with the load-balancing loss


class StraightThroughMoE(MoEFeedForward):
    """MoEFeedForward with top-1 routing whose chosen expert's output is weighted by p_e / p_e.detach():
    the value 1 in the forward pass, the gradient of p_e in the backward pass."""

    def forward(self, x):
        if self.top_k != 1:
            raise ValueError(f"the straight-through weight is defined for top_k=1, got top_k={self.top_k}")
        tokens = x.reshape(-1, x.size(-1))
        probs = self.router(tokens).softmax(dim=-1)
        p, chosen = probs.topk(1, dim=-1)  # (N, 1) each
        weights = p / p.detach()  # 1 forward; d(weights)/d(p) = 1 / p, so the router's gradient is that of p / p_value
        out = torch.zeros_like(tokens)
        for e, expert in enumerate(self.experts):
            token, slot = (chosen == e).nonzero(as_tuple=True)
            if token.numel():
                out.index_add_(0, token, weights[token, slot, None] * expert(tokens[token]))
        self.aux_loss = load_balancing_loss(probs, chosen)
        return out.view_as(x)


def _data():
    train_text, valid_text = shakespeare("train"), shakespeare("validation")
    tokenizer = CharTokenizer(train_text + valid_text)  # the character set of both splits
    return tokenizer, torch.tensor(tokenizer.encode(train_text)), torch.tensor(tokenizer.encode(valid_text))


def build(variant: str, vocab_size: int, n_experts: int, seed: int, d_model: int = 64, n_layers: int = 2,
          context_length: int = 64) -> GPT:
    """The GPT of one variant, GPT-2's initialisation (std 0.02) everywhere, experts and router included.

    The two routed variants are the same model; they differ only in the training loss (see run_one).
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {VARIANTS}")
    d_ff = 4 * d_model * (n_experts if variant == "dense, wide" else 1)
    routed = dict(n_experts=n_experts, moe_top_k=1) if variant.startswith("moe") else {}
    torch.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=vocab_size, context_length=context_length, n_layers=n_layers, n_heads=4,
                          d_model=d_model, d_ff=d_ff, **routed))
    if variant == "moe, straight-through":  # same weights as "moe"; only the forward pass changes
        for block in model.blocks:
            block.ff.__class__ = StraightThroughMoE
    return model


def _moe_layers(model):
    return [b.ff for b in model.blocks if isinstance(b.ff, MoEFeedForward)]


def expert_load(model, ids: torch.Tensor, context_length: int, n_windows: int = 64) -> list[list[int]]:
    """Per routed layer, how many tokens of n_windows validation windows go to each expert."""
    counts = []

    def count(module, inputs, logits):  # the router's output: (N, n_experts) scores; top-1 picks the largest
        counts.append(torch.bincount(logits.argmax(-1), minlength=logits.size(-1)).tolist())

    hooks = [m.router.register_forward_hook(count) for m in _moe_layers(model)]
    starts = torch.linspace(0, len(ids) - context_length - 1, n_windows).long()
    with torch.no_grad():
        model.eval()(torch.stack([ids[s:s + context_length] for s in starts]))
    model.train()
    for h in hooks:
        h.remove()
    return counts


def evaluate(model, ids: torch.Tensor, context_length: int, n_windows: int = 64) -> float:
    """Mean cross-entropy (nats per character) on n_windows evenly spaced validation windows."""
    starts = torch.linspace(0, len(ids) - context_length - 1, n_windows).long()
    x = torch.stack([ids[s:s + context_length] for s in starts])
    y = torch.stack([ids[s + 1:s + context_length + 1] for s in starts])
    with torch.no_grad():
        loss = model.eval()(x, targets=y).loss.item()
    model.train()
    return loss


def run_one(variant: str, train_ids, valid_ids, vocab_size: int, steps: int, seed: int, n_experts: int,
            aux_weight: float, batch_size: int = 16, context_length: int = 64, lr: float = 3e-3,
            eval_every: int = 100) -> dict:
    """Train one variant with AdamW (constant lr after 50 warm-up steps); returns its record."""
    model = build(variant, vocab_size, n_experts, seed, context_length=context_length)
    weight = aux_weight if variant in BALANCED else 0.0
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 50))
    batches = torch.Generator().manual_seed(seed)  # every variant of a seed sees the same batches
    record = {"variant": variant, "seed": seed, "step": [], "valid_loss": [], "aux_loss": [],
              "total_params": sum(p.numel() for p in model.parameters())}
    for step in range(steps):
        x, y = lm_batch(train_ids, batch_size, context_length, generator=batches)
        out = model(x, targets=y)
        aux = out.aux_loss  # the load-balancing loss, mean over the layers; None for the dense variants
        (out.loss + weight * aux if aux is not None else out.loss).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        if (step + 1) % eval_every == 0:
            record["step"].append(step + 1)
            record["valid_loss"].append(round(evaluate(model, valid_ids, context_length), 5))
            record["aux_loss"].append(round(float(aux.detach()), 5) if aux is not None else None)
    record["expert_load"] = expert_load(model, valid_ids, context_length)
    return record


def run(steps: int = 400, seeds=(0, 1), n_experts: int = 8, aux_weight: float = 0.01,
        variants=VARIANTS, eval_every: int = 100, batch_size: int = 16) -> dict:
    """Every variant for every seed: {"settings": {...}, "runs": [record, ...]}."""
    tokenizer, train_ids, valid_ids = _data()
    runs = [run_one(v, train_ids, valid_ids, tokenizer.vocab_size, steps, seed, n_experts, aux_weight,
                    batch_size=batch_size, eval_every=eval_every)
            for seed in seeds for v in variants]
    settings = dict(steps=steps, seeds=list(seeds), n_experts=n_experts, top_k=1, aux_weight=aux_weight,
                    d_model=64, n_layers=2, d_ff=256, batch_size=batch_size, context_length=64, lr=3e-3,
                    vocab_size=tokenizer.vocab_size, data="Shakespeare, characters; validation split")
    return {"settings": settings, "runs": runs}


def main(only: str | None = None) -> None:
    """The full run; with only=variant, run that variant alone and merge it into the saved results."""
    if only is None:
        run_and_save("mixture_of_experts", run, **FULL)
        return
    import time

    from . import load_results, save_results
    saved = load_results("mixture_of_experts")
    torch.set_num_threads(1)  # as run_and_save does for the full run
    start, cpu_start = time.perf_counter(), time.process_time()
    new = run(**{**FULL, "variants": (only,)})
    new["settings"].update(wall_seconds=round(time.perf_counter() - start, 1),
                           cpu_seconds=round(time.process_time() - cpu_start, 1))
    saved["runs"] = [r for r in saved["runs"] if r["variant"] != only] + new["runs"]
    saved["settings"][f"{only}: cpu_seconds"] = new["settings"]["cpu_seconds"]
    saved["settings"][f"{only}: wall_seconds"] = new["settings"]["wall_seconds"]
    save_results("mixture_of_experts", saved)


if __name__ == "__main__":
    import sys
    main(sys.argv[1] if len(sys.argv) > 1 else None)
