"""The runs of chapter 10 that take minutes: three ways to adapt the shipped GPT, instruction tuning with
and without the prompt in the loss, and preference optimisation (reward model, best-of-n, DPO).

    python -m llmbook.experiments.adaptation methods        # results/adaptation_methods.json
    python -m llmbook.experiments.adaptation instructions   # results/adaptation_instructions.json
    python -m llmbook.experiments.adaptation preference     # results/adaptation_preference.json

Each part is a full run on one CPU thread (settings in FULL below); the three can run side by side.

1. **Which play?** Windows of WINDOW tokens from the four held-out plays (Macbeth, Twelfth Night,
   Hamlet, The Tempest; `shakespeare-gpt` never read them) are labelled with their play. A linear probe
   on the frozen model's mean final hidden state, full fine-tuning of model and head, and LoRA on the
   attention projections plus the head are trained on windows from the first 80 % of each play and
   scored on windows from the last 20 %, for several seeds.
2. **Instruction tuning.** A small GPT learns from scratch to follow four kinds of instruction on
   random letter strings ("reverse", "upper", "count", "first"), with the prompt masked out of the
   loss or not. Exact match is measured on held-out strings and on a fifth kind it never saw ("sort").
3. **Preference optimisation.** The preference is measurable: a continuation is better the more its
   words belong to *Twelfth Night* rather than *Macbeth* (a naive Bayes log-likelihood ratio, the true
   reward). Pairs of the shipped GPT's continuations get noisy Bradley-Terry labels from it; a reward
   model on bags of tokens learns from those labels; best-of-n sampling uses the reward model; DPO with
   LoRA is trained on the same labelled pairs for several beta, several seeds each.

Used in chapter 10, Adapting and aligning models.
"""
from __future__ import annotations

import copy
import math
import random
import re
import sys
import time
from collections import Counter
from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import corpora, pretrained
from ..alignment import IGNORE, ChatTemplate, bradley_terry_loss, dpo_loss, encode_chat, pad_examples, sequence_logprobs
from ..lora import apply_lora, merge_lora, trainable_parameters
from ..models import GPT, GPTConfig
from ..tokenizers import CharTokenizer
from . import run_and_save

PLAYS = ("Macbeth", "Twelfth Night", "Hamlet", "The Tempest")
WINDOW = 24  # tokens per window of section 1
LORA_TARGETS = [r"attn\.(in|out)_proj"]
FULL = dict(
    methods=dict(seeds=(0, 1, 2), steps=100, n_train=200, n_test=80, batch_size=16),
    instructions=dict(seeds=(0, 1), steps=1000, eval_every=250, n_eval=50),
    preference=dict(n_prompts=256, n_eval_prompts=48, betas=(0.03, 0.1, 0.3, 1.0), epochs=2, best_of=16,
                    seeds=(0, 1, 2)),
)


# ------------------------------------------------------------------------------ shared pieces
def gpt_features(model: GPT, ids: torch.Tensor) -> torch.Tensor:
    """The final hidden states (after the last LayerNorm) of a GPT on ids (B, T): (B, T, d_model)."""
    captured = {}
    handle = model.ln_f.register_forward_hook(lambda module, inputs, output: captured.setdefault("h", output))
    try:
        model(ids)
    finally:
        handle.remove()
    return captured["h"]


class PlayClassifier(nn.Module):
    """A linear head on the mean of a GPT's final hidden states: ids (B, T) -> logits (B, n_classes)."""

    def __init__(self, gpt: GPT, n_classes: int):
        super().__init__()
        self.gpt, self.head = gpt, nn.Linear(gpt.config.d_model, n_classes)

    def forward(self, ids):
        return self.head(gpt_features(self.gpt, ids).mean(1))


def training_state_bytes(model: nn.Module) -> int:
    """float32 bytes held during training, activations aside: every weight (4 bytes), and for each
    trainable number its gradient (4) and Adam's two moment estimates (8)."""
    return 4 * sum(p.numel() for p in model.parameters()) + 12 * trainable_parameters(model)


# ------------------------------------------------------------------------ 1. ways to adapt
def play_windows(tok, n_train: int, n_test: int, window: int = WINDOW, seed: int = 0):
    """(train_ids, train_labels, test_ids, test_labels): non-overlapping windows of each held-out play,
    train ones from its first 80 %, test ones from its last 20 %, n_train and n_test per play."""
    works = dict(corpora.shakespeare_works("validation") + corpora.shakespeare_works("test"))
    rng = random.Random(seed)
    parts = {"train": ([], []), "test": ([], [])}
    for label, play in enumerate(PLAYS):
        ids = tok.encode(works[play])
        cut = int(0.8 * len(ids))
        for split, (lo, hi), n in (("train", (0, cut), n_train), ("test", (cut, len(ids)), n_test)):
            starts = list(range(lo, hi - window, window))
            if len(starts) < n:
                raise ValueError(f"{play} has {len(starts)} {split} windows of {window} tokens, fewer than {n}")
            for s in rng.sample(starts, n):
                parts[split][0].append(ids[s:s + window])
                parts[split][1].append(label)
    return tuple(torch.tensor(x) for split in ("train", "test") for x in parts[split])


def _accuracy(model, ids, labels, batch=100):
    with torch.no_grad():
        logits = torch.cat([model(ids[i:i + batch]) for i in range(0, len(ids), batch)])
    return (logits.argmax(-1) == labels).double().mean().item()


def _fit(model, ids, labels, steps, batch_size, lr, seed):
    """AdamW on random batches with cross-entropy; returns the CPU seconds per step."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    model.train()
    start = time.process_time()
    for _ in range(steps):
        rows = torch.randint(0, len(ids), (batch_size,), generator=g)
        loss = F.cross_entropy(model(ids[rows]), labels[rows])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return (time.process_time() - start) / steps


def compare_methods(seeds=(0,), steps=10, n_train=8, n_test=4, batch_size=4, base=None) -> dict:
    """Linear probe, full fine-tuning and LoRA on the which-play task; one record per method."""
    gpt, tok = base if base is not None else pretrained.load("shakespeare-gpt")
    x_train, y_train, x_test, y_test = play_windows(tok, n_train, n_test)
    with torch.no_grad():
        start = time.process_time()
        f_train = torch.cat([gpt_features(gpt, x_train[i:i + 100]).mean(1) for i in range(0, len(x_train), 100)])
        f_test = torch.cat([gpt_features(gpt, x_test[i:i + 100]).mean(1) for i in range(0, len(x_test), 100)])
        feature_seconds = time.process_time() - start
    out = {}
    for method in ("linear probe", "LoRA (r=8)", "full fine-tuning"):
        record = {"accuracy": [], "seconds_per_step": []}
        for seed in seeds:
            torch.manual_seed(seed)
            if method == "linear probe":
                model = PlayClassifier(copy.deepcopy(gpt), len(PLAYS))
                for p in model.gpt.parameters():
                    p.requires_grad_(False)
                head = model.head  # trained on the saved features: the frozen model runs once
                sec = _fit(head, f_train, y_train, steps * 5, batch_size * 4, 1e-2, seed)
                record["accuracy"].append((head(f_test).argmax(-1) == y_test).double().mean().item())
            else:
                model = PlayClassifier(copy.deepcopy(gpt), len(PLAYS))
                if method.startswith("LoRA"):
                    apply_lora(model.gpt, rank=8, alpha=16, targets=LORA_TARGETS)
                sec = _fit(model, x_train, y_train, steps, batch_size, 1e-3 if method.startswith("LoRA") else 1e-4,
                           seed)
                record["accuracy"].append(_accuracy(model, x_test, y_test))
            record["seconds_per_step"].append(sec)
        record["trainable"] = trainable_parameters(model)
        record["training_state_bytes"] = training_state_bytes(model)
        out[method] = record
    out["linear probe"]["feature_seconds"] = feature_seconds
    out["data"] = {"plays": list(PLAYS), "window": WINDOW, "n_train": n_train, "n_test": n_test}
    return out


# ---------------------------------------------------------------------- 2. instruction tuning
TRAIN_KINDS = ("reverse", "upper", "count", "first")
UNSEEN_KIND = "sort"
LETTERS = "abcdefghijklmnopqrstuvwxyz"
SPECIALS = ("<pad>", "<user>", "<assistant>", "<end>")


def answer(kind: str, word: str) -> str:
    """The exact response to the instruction 'kind word'."""
    return {"reverse": word[::-1], "upper": word.upper(), "count": str(len(word)), "first": word[0],
            "sort": "".join(sorted(word))}[kind]


def instruction_tokenizer() -> CharTokenizer:
    """One id per character; the kinds' names are lowercase words, the answers letters and digits."""
    return CharTokenizer(LETTERS + LETTERS.upper() + "0123456789 ", specials=SPECIALS)


def random_word(rng: random.Random) -> str:
    return "".join(rng.choice(LETTERS) for _ in range(rng.randint(3, 7)))


def instruction_batch(rng, tok, batch_size, mask_prompt, held_out: set):
    """(ids, labels) of batch_size random training instructions, words in held_out excluded."""
    examples = []
    while len(examples) < batch_size:
        word = random_word(rng)
        if word in held_out:
            continue
        kind = rng.choice(TRAIN_KINDS)
        examples.append(encode_chat(tok, ChatTemplate(), f"{kind} {word}", answer(kind, word), mask_prompt))
    return pad_examples(examples, tok.token_to_id("<pad>"))


def follow(model, tok, instructions, max_new_tokens=9) -> list[str]:
    """Greedy responses of model to the instructions (text up to <end>); prompts grouped by length."""
    template, end = ChatTemplate(), tok.token_to_id("<end>")
    by_length = {}
    for i, text in enumerate(instructions):
        ids, _ = encode_chat(tok, template, text, "")
        prompt = ids[:-1]  # drop the <end> of the empty response
        by_length.setdefault(len(prompt), []).append((i, prompt))
    out = [None] * len(instructions)
    for items in by_length.values():
        prompts = torch.tensor([p for _, p in items])
        new = model.generate(prompts, max_new_tokens, temperature=0, eos_id=end)[:, prompts.size(1):]
        for (i, _), row in zip(items, new.tolist()):
            row = row[:row.index(end)] if end in row else row
            out[i] = tok.decode(row)
    return out


def eval_instructions(model, tok, held_out_words) -> dict:
    """Exact match per kind on the held-out words, and what the unseen kind's answers look like."""
    scores = {}
    for kind in TRAIN_KINDS + (UNSEEN_KIND,):
        got = follow(model, tok, [f"{kind} {w}" for w in held_out_words])
        scores[kind] = sum(g == answer(kind, w) for g, w in zip(got, held_out_words)) / len(held_out_words)
        if kind == UNSEEN_KIND:
            # what the model wrote instead: the answer of a trained kind, or the word itself
            scores["unseen_answers_like"] = {k: sum(g == answer(k, w) for g, w in zip(got, held_out_words))
                                             / len(held_out_words) for k in TRAIN_KINDS}
            scores["unseen_answers_like"]["copy"] = sum(g == w for g, w in zip(got, held_out_words)) / len(got)
            scores["unseen_examples"] = [[w, g] for w, g in zip(held_out_words[:6], got[:6])]
    return scores


def instruction_tuning(seeds=(0,), steps=20, eval_every=10, n_eval=8, batch_size=32) -> dict:
    """Train a small GPT on instructions with the prompt masked and not; exact match as training goes."""
    tok = instruction_tokenizer()
    rng = random.Random(1234)
    held_out = []
    while len(held_out) < n_eval:
        w = random_word(rng)
        if w not in held_out:
            held_out.append(w)
    out = {"held_out_words": held_out, "runs": {}}
    for mask_prompt in (True, False):
        runs = []
        for seed in seeds:
            torch.manual_seed(seed)
            model = GPT(GPTConfig(vocab_size=tok.vocab_size, context_length=32, d_model=64, n_heads=4, n_layers=2))
            opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)
            data_rng = random.Random(seed)
            curve = []
            for step in range(1, steps + 1):
                ids, labels = instruction_batch(data_rng, tok, batch_size, mask_prompt, set(held_out))
                loss = model(ids[:, :-1], targets=labels[:, 1:]).loss
                opt.zero_grad()
                loss.backward()
                opt.step()
                if step % eval_every == 0:
                    model.eval()
                    curve.append({"step": step, **eval_instructions(model, tok, held_out)})
                    model.train()
            runs.append(curve)
        out["runs"]["masked" if mask_prompt else "not masked"] = runs
    out["parameters"] = model.num_parameters()
    return out


# ---------------------------------------------------------------------- 3. preference optimisation
WORD = re.compile(r"[a-z']+")


class ComedyScore:
    """The true reward: the mean over a text's words of log p(word | Twelfth Night) / p(word | Macbeth),
    add-one smoothed over the words of both plays (0 for a text without a known word)."""

    def __init__(self):
        works = dict(corpora.shakespeare_works("validation"))
        comedy, tragedy = (Counter(WORD.findall(works[p].lower())) for p in ("Twelfth Night", "Macbeth"))
        vocab = set(comedy) | set(tragedy)
        nc, nt = sum(comedy.values()) + len(vocab), sum(tragedy.values()) + len(vocab)
        self.log_ratio = {w: math.log((comedy[w] + 1) / nc) - math.log((tragedy[w] + 1) / nt) for w in sorted(vocab)}

    def __call__(self, text: str) -> float:
        scores = [self.log_ratio[w] for w in WORD.findall(text.lower()) if w in self.log_ratio]
        return sum(scores) / len(scores) if scores else 0.0


def speech_prompts(tok, n, length=8, seed=0) -> torch.Tensor:
    """(n, length) token ids: the starts of random speeches ("NAME.\\n...") of Hamlet and The Tempest."""
    text = corpora.shakespeare("test")
    starts = [m.start() for m in re.finditer(r"\n\n([A-Z][A-Z ]+)\.\n", text)]
    rng = random.Random(seed)
    prompts = []
    for s in rng.sample(starts, n):
        prompts.append(tok.encode(text[s + 2:s + 200])[:length])
    return torch.tensor(prompts)


def sample(model, prompts, n_new, seed) -> torch.Tensor:
    """Continuations drawn at temperature 1 (the model's own distribution): (B, T + n_new) ids."""
    return model.generate(prompts, n_new, temperature=1.0, generator=torch.Generator().manual_seed(seed))


def response_labels(ids, prompt_length) -> torch.Tensor:
    labels = ids.clone()
    labels[:, :prompt_length] = IGNORE
    return labels


def batched_logprobs(model, ids, prompt_length, batch=64) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([sequence_logprobs(model, ids[i:i + batch], response_labels(ids[i:i + batch], prompt_length))
                          for i in range(0, len(ids), batch)])


def bag_of_tokens(ids, vocab_size, prompt_length) -> torch.Tensor:
    """Normalised counts of the response tokens: (B, vocab_size) rows summing to 1."""
    counts = torch.zeros(len(ids), vocab_size)
    counts.scatter_add_(1, ids[:, prompt_length:], torch.ones_like(ids[:, prompt_length:], dtype=torch.float))
    return counts / counts.sum(1, keepdim=True)


def train_reward_model(features_a, features_b, a_preferred, steps=400, l2=1e-4, seed=0) -> nn.Linear:
    """A linear reward on bag-of-token features, trained with the Bradley-Terry loss on labelled pairs."""
    torch.manual_seed(seed)
    rm = nn.Linear(features_a.size(1), 1, bias=False)
    nn.init.zeros_(rm.weight)
    chosen = torch.where(a_preferred[:, None], features_a, features_b)
    rejected = torch.where(a_preferred[:, None], features_b, features_a)
    opt = torch.optim.Adam(rm.parameters(), lr=0.05)
    for _ in range(steps):
        loss = bradley_terry_loss(rm(chosen)[:, 0], rm(rejected)[:, 0]) + l2 * rm.weight.pow(2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return rm


def preference(n_prompts=8, n_eval_prompts=4, betas=(0.1,), epochs=1, best_of=4, n_new=24, batch_size=16,
               seeds=(0,), base=None) -> dict:
    """Reward model, best-of-n and DPO on the comedy preference; see the module docstring. The data,
    the reward model and best-of-n are made once; DPO is trained once per beta and seed."""
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct and at least one, got {seeds!r}")
    ref, tok = base if base is not None else pretrained.load("shakespeare-gpt")
    score = ComedyScore()
    P = 8  # prompt tokens
    prompts = speech_prompts(tok, n_prompts + n_eval_prompts)
    train_prompts, eval_prompts = prompts[:n_prompts], prompts[n_prompts:]
    a, b = sample(ref, train_prompts, n_new, seed=1), sample(ref, train_prompts, n_new, seed=2)
    true_a = torch.tensor([score(tok.decode(r[P:].tolist())) for r in a])
    true_b = torch.tensor([score(tok.decode(r[P:].tolist())) for r in b])
    # Noisy labels, as from people: P(a preferred) = sigmoid((r(a) - r(b)) / temperature)
    temperature = (true_a - true_b).std().item() / 2
    labels = torch.rand(n_prompts, generator=torch.Generator().manual_seed(3)) < torch.sigmoid(
        (true_a - true_b) / temperature)
    n_fit = int(0.8 * n_prompts)
    fa, fb = bag_of_tokens(a, tok.vocab_size, P), bag_of_tokens(b, tok.vocab_size, P)
    rm = train_reward_model(fa[:n_fit], fb[:n_fit], labels[:n_fit])
    with torch.no_grad():
        rm_a, rm_b = rm(fa)[:, 0], rm(fb)[:, 0]
    held = slice(n_fit, None)
    out = {"settings": {"n_prompts": n_prompts, "n_eval_prompts": n_eval_prompts, "n_new": n_new,
                        "label_temperature": temperature},
           "labels_agree_with_true_reward": ((true_a > true_b) == labels).double().mean().item(),
           "reward_model_accuracy_held_out": ((rm_a[held] > rm_b[held]) == labels[held]).double().mean().item(),
           "reward_model_accuracy_true_order_held_out": ((rm_a[held] > rm_b[held]) == (true_a[held] > true_b[held]))
           .double().mean().item()}

    # best-of-n on the evaluation prompts: n samples each, the reward model picks
    many = sample(ref, eval_prompts.repeat_interleave(best_of, 0), n_new, seed=4)
    true_many = torch.tensor([score(tok.decode(r[P:].tolist())) for r in many]).view(-1, best_of)
    with torch.no_grad():
        rm_many = rm(bag_of_tokens(many, tok.vocab_size, P))[:, 0].view(-1, best_of)
    ns = [n for n in (1, 2, 4, 8, 16, 32) if n <= best_of]
    out["best_of_n"] = {"n": ns,
                        "true_reward_rm_pick": [true_many[:, :n].gather(1, rm_many[:, :n].argmax(1, keepdim=True))
                                                .mean().item() for n in ns],
                        "rm_reward_rm_pick": [rm_many[:, :n].max(1).values.mean().item() for n in ns],
                        "true_reward_true_pick": [true_many[:, :n].max(1).values.mean().item() for n in ns],
                        # every sample's scores (prompt by prompt), for standard errors of the picks
                        "true_scores": [[round(v, 4) for v in row] for row in true_many.tolist()],
                        "rm_scores": [[round(v, 4) for v in row] for row in rm_many.tolist()]}

    # DPO: the labelled pairs, reference log-probabilities computed once
    chosen = torch.where(labels[:, None], a, b)
    rejected = torch.where(labels[:, None], b, a)
    ref_chosen, ref_rejected = batched_logprobs(ref, chosen, P), batched_logprobs(ref, rejected, P)
    # the reference model scored on the same evaluation samples' seeds as the DPO runs (5 + seed)
    ref_scores = [_scores(ref, eval_prompts, n_new, 5 + seed, tok, score, P) for seed in seeds]
    out["reference"] = {"seeds": list(seeds), "true_reward": [s.mean().item() for s in ref_scores],
                        "true_reward_sd": [s.std().item() for s in ref_scores]}
    out["dpo"] = []
    for beta in betas:
        runs = [_dpo_run(ref, tok, rm, score, chosen, rejected, ref_chosen, ref_rejected, eval_prompts, beta, epochs,
                         n_new, batch_size, seed, P) for seed in seeds]
        # one record per beta, each measurement a list over the seeds; the samples shown are seed 0's
        record = {"beta": beta, "seeds": list(seeds), "examples": runs[0].pop("examples")}
        record.update({key: [r[key] for r in runs] for key in runs[0]})
        out["dpo"].append(record)
    return out


def _scores(model, eval_prompts, n_new, seed, tok, score, P) -> torch.Tensor:
    """The true scores of four continuations per evaluation prompt, drawn with the given seed: (4 B,)."""
    ys = sample(model, eval_prompts.repeat_interleave(4, 0), n_new, seed=seed)
    return torch.tensor([score(tok.decode(r[P:].tolist())) for r in ys])


def _dpo_run(ref, tok, rm, score, chosen, rejected, ref_chosen, ref_rejected, eval_prompts, beta, epochs, n_new,
             batch_size, seed, P) -> dict:
    """One DPO training run: the seed sets the LoRA initialisation, the batch order and the evaluation
    samples (drawn with seed 5 + seed, so seed 0 is the single run the chapter first used)."""
    n_prompts = len(chosen)
    torch.manual_seed(seed)
    policy = copy.deepcopy(ref)
    apply_lora(policy, rank=8, alpha=16, targets=LORA_TARGETS)
    opt = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=2e-3, weight_decay=0.0)
    g = torch.Generator().manual_seed(seed)
    losses, margins = [], []
    start = time.process_time()
    policy.train()
    for _ in range(epochs):
        order = torch.randperm(n_prompts, generator=g)
        for i in range(0, n_prompts, batch_size):
            rows = order[i:i + batch_size]
            pc = sequence_logprobs(policy, chosen[rows], response_labels(chosen[rows], P))
            pr = sequence_logprobs(policy, rejected[rows], response_labels(rejected[rows], P))
            loss, rc, rr = dpo_loss(pc, pr, ref_chosen[rows], ref_rejected[rows], beta)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
            margins.append((rc - rr).mean().item())
    policy.eval()
    seconds = time.process_time() - start
    merge_lora(policy)
    ys = sample(policy, eval_prompts.repeat_interleave(4, 0), n_new, seed=5 + seed)
    kl = (batched_logprobs(policy, ys, P) - batched_logprobs(ref, ys, P)).mean().item()
    with torch.no_grad():
        rm_reward = rm(bag_of_tokens(ys, tok.vocab_size, P))[:, 0].mean().item()
    true = torch.tensor([score(tok.decode(r[P:].tolist())) for r in ys])
    return {"true_reward": true.mean().item(), "true_reward_sd": true.std().item(), "rm_reward": rm_reward,
            "kl": kl, "losses": losses, "margins": margins, "cpu_seconds": seconds,
            "examples": [tok.decode(r.tolist()) for r in ys[:8:4]]}


PARTS = {"methods": compare_methods, "instructions": instruction_tuning, "preference": preference}


def main(argv=None):
    parts = (argv if argv is not None else sys.argv[1:]) or list(PARTS)
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise SystemExit(f"unknown parts {unknown}; choose from {list(PARTS)}")
    for part in parts:
        run_and_save(f"adaptation_{part}", partial(_run_part, part), **FULL[part])


def _run_part(part: str, **settings) -> dict:
    return {**PARTS[part](**settings), "run_settings": settings}


if __name__ == "__main__":
    main()
