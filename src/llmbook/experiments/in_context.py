"""In-context learning in miniature: a small GPT reads a letter-to-letter mapping from the examples in
its prompt and applies it to a query (chapter 6).

    python -m llmbook.experiments.in_context     # the full run, one CPU thread: see FULL below

Every training sequence is a prompt for a mapping drawn afresh: ``N_INPUTS`` input letters, each sent
to a random output letter, shown as ``K_TRAIN`` examples "x>y" separated by spaces, such as
"c>q a>w c>q d>e ...". The loss is taken only where the model must write an output letter (after each
">"), so the model learns one thing: to answer a query "x>" with the letter that followed "x>" earlier
in the same prompt. Nothing else in the data tells it which letter goes with which: a mapping is used
by one sequence only.

To show that the model reads the mapping instead of remembering pairs, one pair in five never occurs
in training (``held_out_pair``): the test mappings are made of those pairs only. The run records the
training loss, and the accuracy of the answer to a query with k = 0, 1, 2, 4 and 8 examples in the
prompt, on mappings of held-out pairs, in two settings: examples drawn at random from the mapping
(the query may not be among them), and examples that always include the query.

Used in chapter 6, Applications.
"""
from __future__ import annotations

import random
import time

import torch

from ..models import GPT, GPTConfig
from ..prompts import ARROW, SEP, few_shot_prompt
from ..tokenizers import CharTokenizer
from ..train import TrainConfig, save_checkpoint, train
from . import checkpoint_path, run_and_save

LETTERS = "abcdefghijklmnopqrstuvwxyz"
BOS = "<bos>"
N_INPUTS = 4  # input letters per mapping
K_TRAIN = 8  # examples per training prompt
SHOTS = (0, 1, 2, 4, 8)
FULL = dict(steps=2000, batch_size=64, seeds=(0, 1, 2))


def tokenizer() -> CharTokenizer:
    """One id per character: <bos> (id 0), the space, ">", and the 26 letters."""
    return CharTokenizer(LETTERS + ARROW + SEP, specials=(BOS,))


def held_out_pair(x: str, y: str) -> bool:
    """True for the pairs x>y that never occur in training: one in five, spread over all letters."""
    return (LETTERS.index(x) + 2 * LETTERS.index(y)) % 5 == 0


def random_mapping(rng: random.Random, held_out: bool = False, n_inputs: int = N_INPUTS) -> dict[str, str]:
    """n_inputs distinct input letters, each sent to a random output letter (two inputs may share one).

    held_out=False draws only pairs seen in training, held_out=True only held-out pairs.
    """
    inputs = rng.sample(LETTERS, n_inputs)
    return {x: rng.choice([y for y in LETTERS if held_out_pair(x, y) == held_out]) for x in inputs}


def training_batch(rng: random.Random, tok: CharTokenizer, batch_size: int, k: int = K_TRAIN):
    """(x, y), LongTensor (batch_size, 4k): prompts of k examples; targets -100 except after each ">"."""
    rows = []
    for _ in range(batch_size):
        mapping = random_mapping(rng)
        examples = [(x, mapping[x]) for x in rng.choices(list(mapping), k=k)]
        rows.append([tok.token_to_id(BOS)] + tok.encode(few_shot_prompt(examples, "")[:-2]))
    ids = torch.tensor(rows)  # (B, 4k): <bos> x>y x>y ... x>y (no trailing space)
    targets = torch.full_like(ids, -100)
    targets[:, 2::4] = ids[:, 3::4]  # at each ">" the target is the output letter after it
    return ids[:, :-1], targets[:, :-1]


def model_config(tok: CharTokenizer, d_model: int = 32, n_heads: int = 2) -> GPTConfig:
    """A 2-layer GPT with rotary positions and room for 16 examples (4 tokens each) in its context."""
    return GPTConfig(vocab_size=tok.vocab_size, context_length=72, n_layers=2, n_heads=n_heads, d_model=d_model,
                     pos_encoding="rope")


def eval_prompts(k: int, n: int, include_query: bool, seed: int = 1, held_out: bool = True):
    """n (prompt, answer) pairs with k examples from fresh mappings of held-out (or seen) pairs.

    include_query=True puts the query's own example at a random place among the k (k >= 1);
    otherwise the k examples are drawn at random from the mapping and may miss the query.
    """
    rng = random.Random(seed * 1000 + k)
    out = []
    for _ in range(n):
        mapping = random_mapping(rng, held_out=held_out)
        query = rng.choice(list(mapping))
        xs = rng.choices(list(mapping), k=k)
        if include_query and k > 0:
            xs[rng.randrange(k)] = query
        out.append((few_shot_prompt([(x, mapping[x]) for x in xs], query), mapping[query]))
    return out


@torch.no_grad()
def answers(model: GPT, tok: CharTokenizer, prompts: list[str]) -> list[str]:
    """The model's most likely next character after each prompt (prompts of one length per call)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    ids = torch.tensor([[tok.token_to_id(BOS)] + tok.encode(p) for p in prompts], device=device)
    out = model(ids).logits[:, -1].argmax(-1).tolist()
    model.train(was_training)
    return [tok.decode([i]) for i in out]


def accuracy(model: GPT, tok: CharTokenizer, pairs) -> float:
    """Fraction of (prompt, answer) pairs whose most likely next character is the answer."""
    got = answers(model, tok, [p for p, _ in pairs])
    return sum(g == a for g, (_, a) in zip(got, pairs)) / len(pairs)


def shot_accuracies(model: GPT, tok: CharTokenizer, n: int = 500, held_out: bool = True) -> dict[str, list[float]]:
    """Accuracy at each k of SHOTS, with the query among the examples and with random examples."""
    return {setting: [accuracy(model, tok, eval_prompts(k, n, setting == "query shown", held_out=held_out))
                      for k in SHOTS] for setting in ("query shown", "random examples")}


def train_model(steps: int, batch_size: int = 64, seed: int = 0, lr: float = 3e-3, d_model: int = 32,
                progress: bool = False):
    """Train a fresh model; returns (model, tokenizer, History)."""
    tok = tokenizer()
    torch.manual_seed(seed)
    model = GPT(model_config(tok, d_model))
    rng = random.Random(seed)
    history = train(model, lambda step: training_batch(rng, tok, batch_size),
                    TrainConfig(steps=steps, lr=lr, progress=progress, log_every=0, seed=seed))
    return model.eval(), tok, history


def train_and_measure(steps: int = 300, batch_size: int = 64, seed: int = 0, n_eval: int = 500,
                      progress: bool = False):
    """Train one model and measure it; returns (model, results as plain data, see run)."""
    start = time.process_time()
    model, tok, history = train_model(steps, batch_size, seed, progress=progress)
    results = {
        "steps": steps, "batch_size": batch_size, "seed": seed, "shots": list(SHOTS),
        "loss": [round(v, 4) for v in history.loss],
        "held_out": shot_accuracies(model, tok, n_eval, held_out=True),
        "seen": shot_accuracies(model, tok, n_eval, held_out=False),
        "cpu_seconds": round(time.process_time() - start, 1),
    }
    return model, results


def run(steps: int = 300, batch_size: int = 64, seed: int = 0, n_eval: int = 500, progress: bool = False) -> dict:
    """Train one model for `steps` steps and measure it. Returns plain data: the settings, the loss of
    every step, the accuracy at each k of SHOTS on n_eval prompts ("held_out" and "seen" pairs, each
    with "query shown" and "random examples"), and the CPU seconds it took."""
    return train_and_measure(steps, batch_size, seed, n_eval, progress)[1]


def run_seeds(steps: int, batch_size: int, seeds) -> dict:
    """One model per seed, measured as in run; the first seed's model is saved beside the results.
    Returns {"settings": {"steps", "batch_size", "seeds"}, "runs": [one run() result per seed]}."""
    runs = []
    for seed in seeds:
        model, results = train_and_measure(steps, batch_size, seed, progress=True)
        if seed == seeds[0]:
            save_checkpoint(checkpoint_path("in_context"), model)
        runs.append(results)
        print({k: v for k, v in results.items() if k != "loss"})
    return {"settings": {"steps": steps, "batch_size": batch_size, "seeds": list(seeds)}, "runs": runs}


def main() -> None:
    run_and_save("in_context", run_seeds, **FULL)


if __name__ == "__main__":
    main()
