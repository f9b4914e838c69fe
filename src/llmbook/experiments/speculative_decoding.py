"""Speculative decoding on the CPU: acceptance, tokens per target pass and speed-up against draft length.

    python -m llmbook.experiments.speculative_decoding     # the full run, one CPU thread: see FULL below

A target GPT and a much smaller draft GPT are trained on the toy grammar (characters,
``llmbook.data.toy_grammar_corpus``). For each draft length k, ``measure`` runs greedy speculative
decoding (``llmbook.speculative``) from a few prompts, checks that the output equals the target's
own greedy output, and records the acceptance rate (accepted / proposed), the conditional
acceptance alpha, the new tokens per target pass and the speed-up:
the CPU time of ordinary cached greedy decoding with the target divided by that of speculative
decoding (medians of ``repeats`` runs of each, timed in turns). It also records c, the CPU time of
one draft decode step divided by that of one target step, which the speed-up depends on. Chapter 7
trains a small pair live and calls ``measure`` on it; the full run uses a larger target, whose steps
cost more than the draft's.

Used in chapter 7, Inference engineering.
"""
from __future__ import annotations

import torch

from ..data import lm_batch, toy_grammar_corpus
from ..generate import generate
from ..models import GPT, GPTConfig
from ..speculative import speculative_generate
from ..timing import cpu_seconds_interleaved
from ..tokenizers import CharTokenizer
from ..train import TrainConfig, train
from . import run_and_save

FULL = dict(target=dict(n_layers=4, d_model=256, n_heads=8, steps=600, lr=3e-3),
            draft=dict(n_layers=1, d_model=32, n_heads=4, steps=300, lr=1e-2),
            ks=[1, 2, 3, 4, 6, 8], new_tokens=120, repeats=3)
PROMPTS = ["the cat", "some dogs that", "a teacher", "many birds are"]


def corpus(n_sentences: int = 3000, seed: int = 0):
    """(tokenizer, train ids, validation ids): the toy grammar as characters, split 90/10."""
    text = toy_grammar_corpus(n_sentences, seed=seed)
    tokenizer = CharTokenizer(text)
    ids = torch.tensor(tokenizer.encode(text))
    split = int(0.9 * len(ids))
    return tokenizer, ids[:split], ids[split:]


def train_gpt(train_ids, vocab_size: int, n_layers: int, d_model: int, n_heads: int, steps: int, lr: float,
              seed: int = 0, batch_size: int = 8, window: int = 128, block_size: int = 256,
              device: str = "cpu") -> GPT:
    """A rotary GPT trained on random windows of train_ids on device; returned on the CPU in eval mode."""
    torch.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=vocab_size, context_length=block_size, n_layers=n_layers, n_heads=n_heads,
                          d_model=d_model, pos_encoding="rope"))
    batches = torch.Generator().manual_seed(seed)
    train(model, lambda step: lm_batch(train_ids, batch_size, window, generator=batches),
          TrainConfig(steps=steps, lr=lr, progress=False, log_every=0, seed=seed, device=device))
    return model.cpu().eval()


def measure(target, draft, prompts, ks, new_tokens: int = 120, repeats: int = 3) -> dict:
    """Speculative decoding of each prompt (a (1, T) id tensor) for every draft length in ks.

    Returns plain data: ks, and per k the mean acceptance_rate (accepted / proposed), alpha (the
    conditional acceptance, ``SpeculativeStats.conditional_acceptance``) and tokens_per_target_call over the
    prompts, identical (whether every output equalled the target's greedy output) and speedup
    (CPU time of target greedy decoding / speculative decoding, summed over the prompts, medians of
    repeats, the two timed in turns); plus cost_ratio, a draft decode step's CPU time over a target step's.
    """
    out = {"ks": list(ks), "acceptance_rate": [], "alpha": [], "tokens_per_target_call": [], "identical": [],
           "speedup": []}

    def plain(model):
        return lambda: [generate(model, p, new_tokens, temperature=0) for p in prompts]

    greedy = plain(target)()
    target_time, draft_time = cpu_seconds_interleaved([plain(target), plain(draft)], repeats)
    out["cost_ratio"] = round(draft_time / target_time, 3)
    for k in ks:
        runs = [speculative_generate(target, draft, p, new_tokens, draft_tokens=k) for p in prompts]
        out["identical"].append(all(torch.equal(ids, g) for (ids, _), g in zip(runs, greedy)))
        out["acceptance_rate"].append(round(sum(s.acceptance_rate for _, s in runs) / len(runs), 4))
        out["alpha"].append(round(sum(s.conditional_acceptance for _, s in runs) / len(runs), 4))
        out["tokens_per_target_call"].append(round(sum(s.tokens_per_target_call for _, s in runs) / len(runs), 4))
        plain_time, spec_time = cpu_seconds_interleaved(
            [plain(target), lambda k=k: [speculative_generate(target, draft, p, new_tokens, k) for p in prompts]],
            repeats)
        out["speedup"].append(round(plain_time / spec_time, 4))
    return out


def run(target=None, draft=None, ks=(1, 2, 4), new_tokens: int = 120, repeats: int = 3) -> dict:
    """Train the pair (dicts of n_layers, d_model, n_heads, steps, lr) and measure; plain data."""
    target = dict(FULL["target"] if target is None else target)
    draft = dict(FULL["draft"] if draft is None else draft)
    tokenizer, train_ids, val_ids = corpus()
    models = {name: train_gpt(train_ids, tokenizer.vocab_size, **settings)
              for name, settings in (("target", target), ("draft", draft))}
    x, y = lm_batch(val_ids, 32, 128, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        val = {name: round(m(x, y).loss.item(), 4) for name, m in models.items()}
    prompts = [torch.tensor([tokenizer.encode("\n" + p)]) for p in PROMPTS]
    data = measure(models["target"], models["draft"], prompts, ks, new_tokens, repeats)
    settings = {"target": {**target, "parameters": models["target"].num_parameters(), "val_loss": val["target"]},
                "draft": {**draft, "parameters": models["draft"].num_parameters(), "val_loss": val["draft"]},
                "new_tokens": new_tokens, "repeats": repeats, "prompts": PROMPTS,
                "torch": torch.__version__, "threads": torch.get_num_threads()}
    return {"settings": settings, **data}


def main() -> None:
    data = run_and_save("speculative_decoding", run, **FULL)
    print(f"speed-ups {data['speedup']} for k = {data['ks']}")


if __name__ == "__main__":
    main()
