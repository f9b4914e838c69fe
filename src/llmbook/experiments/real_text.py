"""Pretraining the shipped models on real text: the shared recipe behind ``shakespeare_gpt``,
``tang_gpt`` and ``shakespeare_bert``.

``pretrain(name)`` trains one of ``llmbook.pretrained.MODELS`` from a fixed seed on its corpus's
training split, scores it on the validation and test splits in float32 and again after rounding the
weights to float16 (the shipped form), draws samples, and writes
``pretrained_data/models/<name>.pt`` (float16 weights, plain data) and ``<name>.json`` (the card).
The ``"cpu"`` scale fits in about an hour on one CPU core under the book's pinned numerical path;
``--scale gpu --device cuda`` trains a bigger model of the same kind for longer.

Used in the front matter, on the page Data and models.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import asdict
from pathlib import Path

import torch

from .. import corpora, numerics, pretrained
from ..data import lm_batch, mask_tokens
from ..models import BERT, GPT, BERTConfig, GPTConfig
from ..train import TrainConfig, save_checkpoint, train

OUT = Path(__file__).resolve().parents[1] / "pretrained_data" / "models"
SEED = 0

_GPT = dict(d_model=256, n_heads=4, d_ff=1024, n_layers=4, dropout=0.0, pos_encoding="rope")
SETTINGS = {
    "cpu": {
        "shakespeare-gpt": dict(config=dict(_GPT, context_length=256), steps=1100, batch_size=16, lr=1e-3),
        "tang-gpt": dict(config=dict(_GPT, d_model=192, d_ff=768, context_length=128), steps=800,
                         batch_size=32, lr=1e-3),
        "shakespeare-bert": dict(config=dict(_GPT, context_length=128), steps=650, batch_size=32, lr=5e-4),
    },
    "gpu": {
        "shakespeare-gpt": dict(config=dict(_GPT, d_model=512, n_heads=8, d_ff=2048, n_layers=8,
                                            dropout=0.1, context_length=256), steps=6000, batch_size=64, lr=6e-4),
        "tang-gpt": dict(config=dict(_GPT, d_model=384, n_heads=6, d_ff=1536, n_layers=6, dropout=0.1,
                                     context_length=128), steps=6000, batch_size=64, lr=6e-4),
        "shakespeare-bert": dict(config=dict(_GPT, d_model=512, n_heads=8, d_ff=2048, n_layers=8,
                                             context_length=128), steps=6000, batch_size=64, lr=3e-4),
    },
}
SHAKESPEARE_PROMPTS = ("ROMEO.\n", "KING.\nWhat news", "To be, or not to be")
TANG_SAMPLES = 200  # poems sampled at temperature 1 for the form and copying statistics


def build(name: str, settings: dict, tok):
    """A fresh model of kind `name` with the settings' config and the tokenizer's vocabulary."""
    config = dict(settings["config"], vocab_size=tok.vocab_size)
    if name == "shakespeare-bert":
        return BERT(BERTConfig(**config, pad_id=tok.token_to_id("[PAD]"), type_vocab_size=1))
    return GPT(GPTConfig(**config))


def batches(name: str, model, tok, ids: torch.Tensor, batch_size: int):
    """get_batch(step) for train(): random windows of the training stream (BERT's masked as BERT's are)."""
    generator = torch.Generator().manual_seed(SEED)
    T = model.config.context_length
    if name != "shakespeare-bert":
        return lambda step: lm_batch(ids, batch_size, T, generator)
    specials = pretrained.bert_special_ids(tok)

    def get_batch(step):
        starts = torch.randint(len(ids) - (T - 2), (batch_size,), generator=generator)
        rows = pretrained.mlm_windows(torch.cat([ids[s: s + T - 2] for s in starts]), T, specials[1], specials[2])
        inputs, targets = mask_tokens(rows, tok.vocab_size, specials[3], specials, generator=generator)
        return {"input_ids": inputs, "targets": targets}

    return get_batch


def rounded(model):
    """A float32 copy of model whose weights went through float16, as the shipped file stores them."""
    copy = type(model)(model.config)
    copy.load_state_dict({k: v.half().float() for k, v in model.state_dict().items()})
    return copy.eval()


def shakespeare_samples(model, tok) -> list[dict]:
    generator = torch.Generator().manual_seed(SEED)
    out = []
    for prompt in SHAKESPEARE_PROMPTS:
        ids = torch.tensor([tok.encode(prompt)])
        new = model.generate(ids, 120, temperature=0.8, top_k=50, generator=generator)
        out.append({"prompt": prompt, "temperature": 0.8, "top_k": 50, "text": tok.decode(new[0])})
    return out


def tang_samples(model, tok, n: int = TANG_SAMPLES) -> dict:
    """n poems sampled at temperature 1 from <eos> (a poem's start): form shares, copied lines, the poems.

    A poem that has not ended within the context is cut there (and is then rarely in form).
    """
    generator = torch.Generator().manual_seed(SEED)
    eos = tok.token_to_id("<eos>")
    start = torch.full((n, 1), eos)
    new = model.generate(start, model.config.context_length - 1, temperature=1.0, generator=generator, eos_id=eos)
    poems = [tok.decode(row[1:].tolist()).split("<eos>")[0] for row in new]
    training_lines = {line for p in corpora.tang_poems("train") for line in corpora.verse_lines("\n".join(p["lines"]))}
    forms = [corpora.poem_form("\n".join(p.split("\n")[1:])) for p in poems]
    lines = [line for p in poems for line in corpora.verse_lines("\n".join(p.split("\n")[1:]))]
    copied = sum(line in training_lines for line in lines)
    shares = {form: forms.count(form) / n for form in corpora.FORMS}
    shares["other"] = forms.count(None) / n
    return {"n": n, "temperature": 1.0, "form_shares": shares, "corpus_form_shares": corpora.form_shares("train"),
            "lines": len(lines), "lines_copied": copied, "poems": poems}


def pretrain(name: str, scale: str = "cpu", device: str | None = None) -> dict:
    """Train, score, sample and save one shipped model; returns its card."""
    settings = SETTINGS[scale][name]
    tok = pretrained.tokenizer(pretrained.MODEL_TOKENIZER[name])
    ids = pretrained.token_stream(name, "train")
    torch.manual_seed(SEED)
    model = build(name, settings, tok)
    cfg = TrainConfig(steps=settings["steps"], lr=settings["lr"], device=device, progress=False, log_every=50,
                      seed=SEED)
    start, cpu_start = time.perf_counter(), time.process_time()
    history = train(model, batches(name, model, tok, ids, settings["batch_size"]), cfg)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    trained_on = str(next(model.parameters()).device)
    model = model.cpu().eval()
    shipped = rounded(model)
    scores = {split: pretrained.evaluate(name, shipped, tok, split) for split in ("validation", "test")}
    float32 = {split: pretrained.evaluate(name, model, tok, split) for split in ("validation", "test")}
    card = {
        "name": name, "model_class": type(model).__name__, "config": asdict(model.config),
        "parameters": model.num_parameters(), "tokenizer": pretrained.MODEL_TOKENIZER[name],
        "data": {"corpus": "tang" if name == "tang-gpt" else "shakespeare", "trained_on": "train",
                 "scored_on": ["validation", "test"], "train_tokens": len(ids)},
        "training": {"scale": scale, "steps": cfg.steps, "batch_size": settings["batch_size"],
                     "tokens_seen": history.tokens, "epochs": round(history.tokens / len(ids), 2), "lr": cfg.lr,
                     "warmup_steps": cfg.warmup_steps, "min_lr_ratio": cfg.min_lr_ratio,
                     "weight_decay": cfg.weight_decay, "betas": list(cfg.betas), "grad_clip": cfg.grad_clip,
                     "seed": SEED, "wall_seconds": round(wall, 1), "cpu_seconds": round(cpu, 1),
                     "device": trained_on,
                     "processor": platform.processor() or platform.machine(),
                     "loss_every_10_steps": [round(v, 4) for v in history.loss[::10]]},
        "numerics": numerics.describe(), "torch": torch.__version__,
        "scores": scores, "scores_float32": float32,
        "float16_cost": {split: scores[split]["loss"] - float32[split]["loss"] for split in scores},
    }
    if name == "shakespeare-gpt":
        card["samples"] = shakespeare_samples(shipped, tok)
    elif name == "tang-gpt":
        card["samples"] = tang_samples(shipped, tok)
    OUT.mkdir(parents=True, exist_ok=True)
    save_checkpoint(OUT / f"{name}.pt", model.half())
    (OUT / f"{name}.json").write_text(json.dumps(card, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(json.dumps({k: card[k] for k in ("name", "parameters", "scores", "float16_cost")}, indent=1))
    return card


def main(name: str) -> None:
    parser = argparse.ArgumentParser(description=f"Pretrain and save {name}")
    parser.add_argument("--scale", choices=sorted(SETTINGS), default="cpu")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: the first available)")
    args = parser.parse_args()
    if args.scale == "cpu" and args.device is None:
        args.device = "cpu"
    pretrain(name, args.scale, args.device)
