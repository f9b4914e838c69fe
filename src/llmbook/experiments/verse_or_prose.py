"""Verse or prose? Fine-tuning ``shakespeare-bert`` on a label the corpus gives, against four baselines.

    python -m llmbook.experiments.verse_or_prose     # about 100 s of CPU time on one core

Shakespeare's characters speak either verse or prose, and the printed text shows which: a verse line
starts with a capital letter, while prose is wrapped like a paragraph, so most of its lines start in
lower case. We label each speech of three lines or more of Macbeth, Twelfth Night, Hamlet and The
Tempest as verse (every line after the first starts with a capital) or prose (at least half of them
start in lower case; speeches in between are left out), and every line of it with at least four words
becomes an example, **with its first letter put in lower case** so that the layout does not give the
answer away. These four plays are the validation and test splits: the shipped BERT never read them.
In each play the first 80 % of the lines form the pool the labelled examples come from, the last 20 %
the test pool (the cut falls wherever the 80 % mark is, so one speech per play may straddle it).
Two layout cues survive the lower-casing: prose lines are longer and mostly end without punctuation
(where the printer broke them), and a line that starts with a quote mark keeps its first letter's case.

Five classifiers learn from the same labelled lines, over several seeds:

- ``fine-tuned``: the pretrained encoder plus a new linear head, every weight trained;
- ``from scratch``: the same architecture and recipe from a random initialisation;
- ``linear probe``: the pretrained encoder frozen, only the linear head trained;
- ``bag of tokens``: a linear classifier on the counts of the line's BPE tokens (no network);
- ``line length``: a linear classifier on one number, the line's length in characters.

The sentence vector is the **mean of the encoder's last hidden states** over the line's tokens
([CLS] and [SEP] included, padding excluded). BERT's pooler is not used: the shipped model was
pretrained on masked tokens only, so its pooler (the tanh layer over the [CLS] state that next-sentence
prediction would have trained) still holds its random initial weights.

Used in chapter 6, Applications.
"""
from __future__ import annotations

import argparse
import random
import re

import torch
import torch.nn.functional as F
from torch import nn

from .. import corpora, pretrained
from ..models import BERT
from . import run_and_save

PLAYS = ("Macbeth", "Twelfth Night", "Hamlet", "The Tempest")
LABELS = ("verse", "prose")
METHODS = ("fine-tuned", "from scratch", "linear probe", "bag of tokens", "line length")
MIN_WORDS = 4  # shorter lines ("O!", "My lord?") say little
MAX_TOKENS = 32  # [CLS] + at most 30 tokens + [SEP]
TRAIN_SHARE = 0.8
_SPEAKER = re.compile(r"^[A-Z][A-Za-z' ]{0,30}\.$")  # "PROSPERO.", "FIRST WITCH.", "Ham."


def speech_label(lines: list[str]) -> int | None:
    """0 (verse) if every line after the first starts with a capital, 1 (prose) if at least half start in
    lower case, None otherwise or for a speech of fewer than three lines."""
    starts = [line[0] for line in lines[1:] if line[0].isalpha()]
    if len(lines) < 3 or not starts:
        return None
    lower = sum(c.islower() for c in starts) / len(starts)
    return 0 if lower == 0 else 1 if lower >= 0.5 else None


def labelled_lines(text: str) -> list[tuple[str, int]]:
    """(line with its first letter in lower case, label) for the lines of every labelled speech, in order."""
    out = []
    for block in text.split("\n\n"):
        rows = [row.strip() for row in block.strip().split("\n")]
        if not _SPEAKER.match(rows[0]):
            continue
        body = [row for row in rows[1:] if row and not row.startswith("[")]
        label = speech_label(body)
        if label is not None:
            out += [(row[0].lower() + row[1:], label) for row in body if len(row.split()) >= MIN_WORDS]
    return out


def split_pools(plays=PLAYS) -> tuple[list, list]:
    """(train pool, test pool) of (line, label): the first TRAIN_SHARE of each play's lines, and the rest."""
    works = {}
    for split in ("train", "validation", "test"):
        works.update(corpora.shakespeare_works(split))
    missing = [p for p in plays if p not in works]
    if missing:
        raise ValueError(f"no work titled {missing} in the corpus; titles are e.g. {sorted(works)[:4]}")
    train, test = [], []
    for play in plays:
        lines = labelled_lines(works[play])
        cut = int(TRAIN_SHARE * len(lines))
        train += lines[:cut]
        test += lines[cut:]
    return train, test


def balanced_sample(pool, per_class: int, n_classes: int, seed: int):
    """per_class examples of each label, drawn without replacement; ValueError if a class has too few."""
    rng = random.Random(seed)
    sample = []
    for label in range(n_classes):
        members = [ex for ex in pool if ex[1] == label]
        if len(members) < per_class:
            raise ValueError(f"class {label} has {len(members)} examples, fewer than per_class={per_class}")
        sample += rng.sample(members, per_class)
    rng.shuffle(sample)
    return sample


def encode(tok, lines) -> torch.Tensor:
    """[CLS] line [SEP] for each line (cut to MAX_TOKENS), right-padded with [PAD]: LongTensor (B, T)."""
    pad, cls, sep, _ = pretrained.bert_special_ids(tok)
    rows = [[cls] + tok.encode(line)[: MAX_TOKENS - 2] + [sep] for line in lines]
    width = max(len(r) for r in rows)
    return torch.tensor([r + [pad] * (width - len(r)) for r in rows])


def mean_pool(encoder: BERT, ids: torch.Tensor) -> torch.Tensor:
    """Mean of the last hidden states over the non-padding tokens: (B, d_model)."""
    hidden, _ = encoder.encode(ids)
    keep = (ids != encoder.config.pad_id).unsqueeze(-1).float()
    return (hidden * keep).sum(1) / keep.sum(1)


class LineClassifier(nn.Module):
    """A BERT encoder, mean pooling and one linear layer to the classes."""

    def __init__(self, encoder: BERT, n_classes: int):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.config.d_model, n_classes)

    def forward(self, ids):
        return self.head(mean_pool(self.encoder, ids))


def train_network(model: nn.Module, ids, labels, epochs: int, lr: float, seed: int, batch_size: int = 32):
    """AdamW on the cross-entropy, shuffled mini-batches, linear decay to zero; trains in place."""
    generator = torch.Generator().manual_seed(seed)
    steps = epochs * -(-len(ids) // batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1 - s / steps)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(ids), generator=generator)
        for start in range(0, len(ids), batch_size):
            batch = order[start: start + batch_size]
            loss = F.cross_entropy(model(ids[batch]), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
    model.eval()


def train_linear(features, labels, n_classes: int, seed: int, steps: int = 300, lr: float = 1e-2):
    """A linear classifier on fixed features (standardised), full-batch Adam with a little weight decay."""
    torch.manual_seed(seed)
    mean, std = features.mean(0), features.std(0) + 1e-6
    head = nn.Linear(features.shape[1], n_classes)
    optimizer = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=1e-2)
    x = (features - mean) / std
    for _ in range(steps):
        loss = F.cross_entropy(head(x), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return lambda f: head((f - mean) / std)


def token_counts(ids: torch.Tensor, vocab_size: int, skip: list[int]) -> torch.Tensor:
    """(B, vocab_size) counts of each token id in each row, special tokens left out."""
    counts = torch.zeros(len(ids), vocab_size)
    counts.scatter_add_(1, ids, torch.ones_like(ids, dtype=torch.float))
    counts[:, skip] = 0
    return counts


def accuracy(logits, labels) -> float:
    return float((logits.argmax(-1) == labels).float().mean())


def line_lengths(lines) -> torch.Tensor:
    return torch.tensor([[float(len(line))] for line in lines])


def run(per_class: int = 100, test_per_class: int = 150, seeds=(0, 1, 2), epochs: int = 5,
        lr: float = 1e-4, plays=PLAYS) -> dict:
    """Test accuracy of the METHODS for each seed, with the settings and a few example lines."""
    base, tok = pretrained.load("shakespeare-bert")
    config = base.config
    n = len(LABELS)
    train_pool, test_pool = split_pools(plays)
    test = balanced_sample(test_pool, test_per_class, n, seed=1234)
    test_ids, test_labels = encode(tok, [t for t, _ in test]), torch.tensor([y for _, y in test])
    with torch.no_grad():
        test_features = mean_pool(base, test_ids)
    specials = pretrained.bert_special_ids(tok)
    results = {m: [] for m in METHODS}
    confusion = None
    for seed in seeds:
        labelled = balanced_sample(train_pool, per_class, n, seed=seed)
        ids, labels = encode(tok, [t for t, _ in labelled]), torch.tensor([y for _, y in labelled])

        torch.manual_seed(seed)
        tuned = LineClassifier(pretrained.load("shakespeare-bert")[0], n)
        train_network(tuned, ids, labels, epochs, lr, seed)
        with torch.no_grad():
            tuned_logits = tuned(test_ids)
        results["fine-tuned"].append(accuracy(tuned_logits, test_labels))
        if confusion is None:
            flat = test_labels * n + tuned_logits.argmax(-1)
            confusion = torch.bincount(flat, minlength=n * n).view(n, n).tolist()

        torch.manual_seed(seed)
        scratch = LineClassifier(BERT(config), n)
        train_network(scratch, ids, labels, epochs, lr, seed)
        with torch.no_grad():
            results["from scratch"].append(accuracy(scratch(test_ids), test_labels))

        with torch.no_grad():
            features = mean_pool(base, ids)
        probe = train_linear(features, labels, n, seed)
        results["linear probe"].append(accuracy(probe(test_features), test_labels))

        bag = train_linear(token_counts(ids, config.vocab_size, specials), labels, n, seed)
        results["bag of tokens"].append(accuracy(bag(token_counts(test_ids, config.vocab_size, specials)),
                                                 test_labels))
        length = train_linear(line_lengths([t for t, _ in labelled]), labels, n, seed)
        results["line length"].append(accuracy(length(line_lengths([t for t, _ in test])), test_labels))
        print(f"seed {seed}: " + ", ".join(f"{m} {results[m][-1]:.3f}" for m in METHODS), flush=True)
    return {
        "plays": list(plays),
        "labels": list(LABELS),
        "accuracy": results,
        "fine_tuned_confusion_first_seed": confusion,
        "pool_sizes": {"train": len(train_pool), "test": len(test_pool),
                       "train_prose": sum(y for _, y in train_pool), "test_prose": sum(y for _, y in test_pool)},
        "examples": [[line, LABELS[y]] for line, y in test[:6]],
        "mean_test_length": {label: sum(len(t) for t, y in test if y == i) / test_per_class
                             for i, label in enumerate(LABELS)},
        "settings": {"per_class": per_class, "test_per_class": test_per_class, "seeds": list(seeds),
                     "epochs": epochs, "lr": lr, "batch_size": 32, "min_words": MIN_WORDS,
                     "max_tokens": MAX_TOKENS, "train_share": TRAIN_SHARE, "pooling": "mean of last hidden states"},
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    run_and_save("verse_or_prose", run, seeds=tuple(range(args.seeds)))


if __name__ == "__main__":
    main()
