"""Decoding settings and prompts, measured on the shipped ``tang-gpt`` and ``shakespeare-gpt``.

    python -m llmbook.experiments.real_generation     # about 100 s of CPU time on one core

Three measurements, each on text none of the models trained on (the test split):

- ``poems``: tang-gpt writes a poem after each of ``n_poems`` titles of test poems, under every
  decoding setting of SETTINGS; ``corpora.poem_form`` says whether the poem has a regular form
  (4 or 8 lines of 5 or 7 characters), compared with the share of such poems in the training text.
- ``speakers``: in Hamlet and The Tempest, a speech's first line is scored (nats per token) by
  shakespeare-gpt after the real dialogue before it and its speaker's name, once with the true name
  and once with the name of another speaker of the same play. Does the name in the prompt help?
- ``topic``: shakespeare-gpt continues three prompts (nothing but a newline, an instruction to write
  about the sea, a line of dialogue about the sea), and we count the continuations that use a word
  of the sea. Does the model follow an instruction, or only the text it is continuing?

Used in chapter 6, Applications.
"""
from __future__ import annotations

import math
import random
import re

import torch

from .. import corpora, pretrained
from ..generate import generate
from . import run_and_save

SETTINGS = {
    "greedy": {"temperature": 0.0},
    "T = 0.7": {"temperature": 0.7},
    "T = 1.0": {"temperature": 1.0},
    "T = 1.5": {"temperature": 1.5},
    "top-k 10": {"temperature": 1.0, "top_k": 10},
    "top-p 0.8": {"temperature": 1.0, "top_p": 0.8},
}
SEA_WORDS = {"sea", "seas", "wave", "waves", "ship", "ships", "shore", "tide", "ocean", "sail", "sailor",
             "sailors", "storm", "tempest", "deep", "waters", "water", "wind", "winds", "mariners"}
TOPIC_PROMPTS = {
    "newline only": "\n",
    "instruction": "Write a speech about the sea.\n\n",
    "dialogue about the sea": "BOATSWAIN.\nThe sea is high, the waves break on the ship;\n",
}
_HEADER = re.compile(r"\n\n([A-Z][A-Za-z ]{1,30})\.\n")  # "\n\nHAMLET.\n", "\n\nHor.\n"


def sample_poems_and_stops(model, tok, titles, setting: dict, seed: int,
                           max_new_tokens: int = 100) -> list[tuple[str, bool]]:
    """For each title, (the poem: the text after the title's line, up to <eos>; whether it wrote <eos>
    within max_new_tokens), titles of equal length batched."""
    eos = tok.token_to_id("<eos>")
    generator = torch.Generator().manual_seed(seed)
    poems = {}
    for length in sorted({len(t) for t in titles}):
        group = [t for t in titles if len(t) == length]
        prompts = torch.tensor([tok.encode(t + "\n") for t in group])
        out = generate(model, prompts, max_new_tokens, generator=generator, eos_id=eos, **setting)
        for title, row in zip(group, out[:, prompts.size(1):].tolist()):
            poems[title] = (tok.decode(row[:row.index(eos)]), True) if eos in row else (tok.decode(row), False)
    return [poems[t] for t in titles]


def sample_poems(model, tok, titles, setting: dict, seed: int, max_new_tokens: int = 100) -> list[str]:
    """One poem (the text after the title's line, up to <eos>) for each title, titles of equal length batched."""
    return [poem for poem, _ in sample_poems_and_stops(model, tok, titles, setting, seed, max_new_tokens)]


def repeated_line_share(poem: str) -> float:
    """The share of a poem's verse lines that repeat an earlier line of the same poem (0 for no lines)."""
    lines = corpora.verse_lines(poem)
    return sum(line in lines[:i] for i, line in enumerate(lines)) / len(lines) if lines else 0.0


def poems(n_poems: int, seed: int = 0) -> dict:
    model, tok = pretrained.load("tang-gpt")
    titles = [p["title"] for p in corpora.tang_poems("test") if 2 <= len(p["title"]) <= 6]
    titles = list(dict.fromkeys(titles))[:n_poems]  # distinct titles, in the split's order
    results = {}
    for name, setting in SETTINGS.items():
        written = sample_poems(model, tok, titles, setting, seed)
        forms = [corpora.poem_form(p) or "other" for p in written]
        regular = sum(f != "other" for f in forms) / len(forms)
        results[name] = {
            "setting": setting,
            "regular_share": regular,
            "standard_error": math.sqrt(regular * (1 - regular) / len(forms)),
            "forms": {f: forms.count(f) for f in (*corpora.FORMS, "other")},
            "repeated_line_share": sum(map(repeated_line_share, written)) / len(written),
            "distinct_poems": len(set(written)) / len(written),
            "examples": [[t, p] for t, p in zip(titles[:3], written[:3])],
        }
    shares = corpora.form_shares("train")
    return {"n_poems": len(titles), "settings": results, "corpus_regular_share": 1 - shares["other"],
            "corpus_form_shares": shares}


def speeches(text: str) -> list[tuple[int, str, str]]:
    """(offset of the header, speaker, first line of the speech) for each speech of a play's text."""
    out = []
    for match in _HEADER.finditer(text):
        first = text[match.end():].split("\n", 1)[0].strip()
        if first and not first.startswith("["):
            out.append((match.start(), match.group(1), first))
    return out


@torch.no_grad()
def line_nats(model, tok, context: str, line: str) -> float:
    """Mean nats per token of `line` given `context` (the context cut to fit the model's window)."""
    ctx, target = tok.encode(context), tok.encode(line)
    ctx = ctx[-(model.config.context_length - len(target)):]
    ids = torch.tensor([ctx + target])
    logp = model(ids[:, :-1]).logits[0].log_softmax(-1)
    picked = logp[len(ctx) - 1:].gather(-1, ids[0, len(ctx):, None])
    return float(-picked.mean())


def speakers(n_per_play: int, seed: int = 0, context_chars: int = 600, min_speeches: int = 30) -> dict:
    model, tok = pretrained.load("shakespeare-gpt")
    rng = random.Random(seed)
    rows = []
    for title, text in corpora.shakespeare_works("test"):
        found = [s for s in speeches(text) if s[0] > context_chars and len(s[2].split()) >= 4]
        counts = {}
        for _, name, _ in found:
            counts[name] = counts.get(name, 0) + 1
        main = sorted(n for n, c in counts.items() if c >= min_speeches)
        chosen = rng.sample([s for s in found if s[1] in main], n_per_play)
        for offset, name, line in chosen:
            context = text[offset - context_chars: offset] + "\n\n"
            wrong = rng.choice([n for n in main if n != name])
            rows.append({"play": title, "speaker": name, "wrong": wrong, "line": line,
                         "true_nats": line_nats(model, tok, context + f"{name}.\n", line),
                         "wrong_nats": line_nats(model, tok, context + f"{wrong}.\n", line)})
    gain = [r["wrong_nats"] - r["true_nats"] for r in rows]
    mean = sum(gain) / len(gain)
    sd = math.sqrt(sum((g - mean) ** 2 for g in gain) / (len(gain) - 1))
    return {"n": len(rows), "mean_gain_nats": mean, "standard_error": sd / math.sqrt(len(gain)),
            "share_true_better": sum(g > 0 for g in gain) / len(gain),
            "mean_true_nats": sum(r["true_nats"] for r in rows) / len(rows), "rows": rows[:8]}


def sea_share(text: str) -> bool:
    return bool(SEA_WORDS & set(re.findall(r"[a-z]+", text.lower())))


def topic(n_samples: int, seed: int = 0, max_new_tokens: int = 60) -> dict:
    model, tok = pretrained.load("shakespeare-gpt")
    results = {}
    for name, prompt in TOPIC_PROMPTS.items():
        ids = torch.tensor([tok.encode(prompt)] * n_samples)
        out = generate(model, ids, max_new_tokens, temperature=1.0, generator=torch.Generator().manual_seed(seed))
        texts = [tok.decode(row[ids.size(1):].tolist()) for row in out]
        share = sum(map(sea_share, texts)) / len(texts)
        results[name] = {"prompt": prompt, "sea_share": share,
                         "standard_error": math.sqrt(share * (1 - share) / len(texts)), "examples": texts[:2]}
    return results


def run(n_poems: int = 200, n_speeches: int = 100, n_samples: int = 100, seed: int = 0) -> dict:
    return {"poems": poems(n_poems, seed), "speakers": speakers(n_speeches, seed), "topic": topic(n_samples, seed),
            "settings": {"n_poems": n_poems, "n_speeches_per_play": n_speeches, "n_samples": n_samples,
                         "seed": seed}}


def main():
    run_and_save("real_generation", run)


if __name__ == "__main__":
    main()
