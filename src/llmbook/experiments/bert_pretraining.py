"""Pretrain a small BERT on the toy grammar with masked LM (MLM) and next-sentence prediction (NSP),
then ask whether NSP helped: fine-tune on a downstream task with and without it (chapter 5).

The documents are groups of five sentences with the same subject noun ("documents about foxes"), so
consecutive sentences share a *topic* and nothing else: the toy grammar has no discourse, no sentence
ever follows from the one before. An IsNext pair therefore shares the topic, and a NotNext pair (B
from a random other document) usually does not. The downstream task is subject-verb agreement
(llmbook.data.agreement_task), which needs what MLM teaches and has nothing to do with NSP.

    python -m llmbook.experiments.bert_pretraining

runs every objective for several seeds, saves the results (results/bert_pretraining.json) and the
seed-0 models pretrained with MLM + NSP and with MLM alone (results/bert_pretraining_{mlm_nsp,mlm}.pt).

Used in chapter 5, Pretraining.
"""
from __future__ import annotations

import torch

from ..data import agreement_task, mask_tokens, nsp_pairs, pad_batch, parse_toy_sentence, toy_grammar_corpus
from ..models import BERT, BERTConfig
from ..tokenizers import BPETokenizer
from ..train import TrainConfig, save_checkpoint, train
from . import checkpoint_path, run_and_save

SPECIALS = ["[PAD]", "[CLS]", "[SEP]", "[MASK]"]
OBJECTIVES = ("mlm+nsp", "mlm")
MAX_LEN = 40  # [CLS] A [SEP] B [SEP]: the longest toy sentence has 16 tokens
FULL = dict(seeds=(0, 1, 2), finetune_seeds=(0, 1, 2, 3))
TOKENIZER_TEXT = dict(n_sentences=3000, seed=0)  # the GPT's training text in chapter 5 trains the tokenizer


def make_tokenizer() -> BPETokenizer:
    """Byte-level BPE trained on the toy grammar until every word is a single token, with BERT's specials."""
    return BPETokenizer.train(toy_grammar_corpus(**TOKENIZER_TEXT), vocab_size=1000, specials=SPECIALS)


def special_ids(tokenizer) -> dict[str, int]:
    return {s: tokenizer.token_to_id(s) for s in SPECIALS}


def never_drawn(tokenizer) -> list[int]:
    """Ids that masking must neither select nor draw as a random replacement: [PAD], [CLS], [SEP], and
    the byte-level tokens that never occur in the toy grammar (BERT's WordPiece vocabulary has no such
    unused tokens, so a random replacement there is always a real word)."""
    used = set(tokenizer.encode(toy_grammar_corpus(**TOKENIZER_TEXT)))
    ids = special_ids(tokenizer)
    return [ids["[PAD]"], ids["[CLS]"], ids["[SEP]"]] + [
        i for i in range(tokenizer.vocab_size) if i not in used and i not in ids.values()]


def topic_documents(n_sentences: int, seed: int, doc_len: int = 5) -> list[list[str]]:
    """Documents of doc_len sentences that share their subject noun, from toy_grammar_corpus(n_sentences, seed)."""
    by_subject: dict[str, list[str]] = {}
    for sentence in toy_grammar_corpus(n_sentences, seed=seed).splitlines():
        by_subject.setdefault(parse_toy_sentence(sentence).subject, []).append(sentence)
    return [sentences[i : i + doc_len] for _, sentences in sorted(by_subject.items())
            for i in range(0, len(sentences) - doc_len + 1, doc_len)]


def encode_pairs(tokenizer, pairs) -> dict[str, torch.Tensor]:
    """[CLS] A [SEP] B [SEP] for each (a, b, label): input_ids, token_type_ids (B, T) right-padded, and
    nsp_labels (B,)."""
    ids = special_ids(tokenizer)
    rows, segments = [], []
    for a, b, _ in pairs:
        ea, eb = tokenizer.encode(a), tokenizer.encode(b)
        rows.append([ids["[CLS]"]] + ea + [ids["[SEP]"]] + eb + [ids["[SEP]"]])
        segments.append([0] * (len(ea) + 2) + [1] * (len(eb) + 1))
    input_ids, _ = pad_batch(rows, ids["[PAD]"])
    token_type_ids, _ = pad_batch(segments, 0)
    return {"input_ids": input_ids, "token_type_ids": token_type_ids,
            "nsp_labels": torch.tensor([label for *_, label in pairs])}


def bert_config(tokenizer, d_model: int = 64, n_layers: int = 2, **overrides) -> BERTConfig:
    return BERTConfig(vocab_size=tokenizer.vocab_size, context_length=MAX_LEN, n_layers=n_layers, n_heads=4,
                      d_model=d_model, pad_id=special_ids(tokenizer)["[PAD]"], **overrides)


def pretraining_batches(tokenizer, data: dict, objective: str, batch_size: int, generator: torch.Generator):
    """get_batch(step) for llmbook.train.train: a random batch of pairs, masked afresh at every step
    (dynamic masking), with the NSP labels only if the objective has NSP."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective={objective!r}; choose one of {OBJECTIVES}")
    ids, exclude = special_ids(tokenizer), never_drawn(tokenizer)
    pad = ids["[PAD]"]

    def get_batch(step):
        rows = torch.randint(len(data["input_ids"]), (batch_size,), generator=generator)
        x = data["input_ids"][rows]
        T = int((x != pad).sum(1).max())  # trim the padding every row of this batch has
        inputs, labels = mask_tokens(x[:, :T], tokenizer.vocab_size, ids["[MASK]"], exclude, 0.15, generator)
        batch = {"input_ids": inputs, "token_type_ids": data["token_type_ids"][rows, :T], "targets": labels}
        if objective == "mlm+nsp":
            batch["nsp_labels"] = data["nsp_labels"][rows]
        return batch

    return get_batch


def pretrain(objective: str = "mlm+nsp", steps: int = 2000, seed: int = 0, batch_size: int = 32, lr: float = 3e-3,
             n_sentences: int = 6000, n_pairs: int = 20000, d_model: int = 64, n_layers: int = 2,
             device: str | None = "cpu", eval_every: int = 0, tokenizer=None):
    """Pretrain a BERT from scratch; returns (model in eval mode, History).

    The pairs come from topic_documents(n_sentences, seed=100 + seed); the validation metrics (recorded
    in history.evals every eval_every steps and after the last) are the MLM loss and accuracy and the
    NSP accuracy on 512 pairs from other documents, masked once with a fixed generator.
    """
    tokenizer = tokenizer or make_tokenizer()
    data = encode_pairs(tokenizer, nsp_pairs(topic_documents(n_sentences, seed=100 + seed), n_pairs, seed=seed))
    val = encode_pairs(tokenizer, nsp_pairs(topic_documents(2000, seed=99), 512, seed=99))
    ids = special_ids(tokenizer)
    val_inputs, val_labels = mask_tokens(val["input_ids"], tokenizer.vocab_size, ids["[MASK]"],
                                         never_drawn(tokenizer), 0.15, torch.Generator().manual_seed(99))

    def evaluate(model):
        device_of = next(model.parameters()).device
        labels = val_labels.to(device_of)
        out = model(val_inputs.to(device_of), token_type_ids=val["token_type_ids"].to(device_of), targets=labels)
        selected = labels != -100
        predicted = out.logits.argmax(-1)[selected].cpu()
        return {"mlm_loss": out.loss.item(),
                "mlm_accuracy": (predicted == labels[selected].cpu()).float().mean().item(),
                "nsp_accuracy": (out.nsp_logits.argmax(-1).cpu() == val["nsp_labels"]).float().mean().item()}

    torch.manual_seed(seed)
    model = BERT(bert_config(tokenizer, d_model, n_layers))
    get_batch = pretraining_batches(tokenizer, data, objective, batch_size, torch.Generator().manual_seed(seed))
    history = train(model, get_batch, TrainConfig(steps=steps, lr=lr, seed=seed, device=device, progress=False,
                                                  log_every=0, eval_every=eval_every), eval_fn=evaluate)
    return model.eval(), history


def nsp_probe_pairs(n: int = 400, seed: int = 98) -> dict[str, list[tuple[str, str, int]]]:
    """Held-out NSP pairs of four kinds, n each, from topic_documents(3000, seed): "IsNext" (B follows A);
    "NotNext, other topic" (B from a document about another noun, as most NotNext pairs are);
    "NotNext, same topic" (B from another document about the same noun); "A and B swapped" (B is the
    sentence *before* A, so B does not follow A)."""
    import random

    rng = random.Random(seed)
    docs = topic_documents(3000, seed=seed)
    topic = [parse_toy_sentence(doc[0]).subject for doc in docs]
    kinds = {"IsNext": [], "NotNext, other topic": [], "NotNext, same topic": [], "A and B swapped": []}
    while min(len(v) for v in kinds.values()) < n:
        d = rng.randrange(len(docs))
        i = rng.randrange(len(docs[d]) - 1)
        a, b = docs[d][i], docs[d][i + 1]
        same = [k for k in range(len(docs)) if k != d and topic[k] == topic[d]]
        other = [k for k in range(len(docs)) if topic[k] != topic[d]]
        kinds["IsNext"].append((a, b, 0))
        kinds["NotNext, other topic"].append((a, rng.choice(docs[rng.choice(other)]), 1))
        kinds["NotNext, same topic"].append((a, rng.choice(docs[rng.choice(same)]), 1))
        kinds["A and B swapped"].append((b, a, 1))
    return {kind: pairs[:n] for kind, pairs in kinds.items()}


def nsp_predictions(model, tokenizer, probe=None) -> dict[str, float]:
    """The share of each kind of nsp_probe_pairs that the model calls IsNext."""
    probe = probe or nsp_probe_pairs()
    device = next(model.parameters()).device
    out = {}
    with torch.no_grad():
        for kind, pairs in probe.items():
            batch = encode_pairs(tokenizer, pairs)
            logits = model(batch["input_ids"].to(device), token_type_ids=batch["token_type_ids"].to(device)).nsp_logits
            out[kind] = (logits.argmax(-1) == 0).float().mean().item()
    return out


def agreement_data(tokenizer, n: int, seed: int) -> dict[str, torch.Tensor]:
    """agreement_task(n, seed) as BERT inputs [CLS] sentence [SEP] (right-padded) and class_labels."""
    ids = special_ids(tokenizer)
    pairs = agreement_task(n, seed=seed)
    rows = [[ids["[CLS]"]] + tokenizer.encode(s) + [ids["[SEP]"]] for s, _ in pairs]
    input_ids, _ = pad_batch(rows, ids["[PAD]"])
    return {"input_ids": input_ids, "class_labels": torch.tensor([label for _, label in pairs])}


def finetune_agreement(pretrained: BERT | None, tokenizer, steps: int = 100, seed: int = 0, n_train: int = 200,
                       batch_size: int = 32, lr: float = 1e-3, device: str | None = "cpu") -> float:
    """Fine-tune a copy of `pretrained` (None: a BERT trained from scratch) on n_train agreement examples;
    returns the accuracy on 2,000 held-out examples. The pretrained model itself is left unchanged."""
    config = bert_config(tokenizer, pretrained.config.d_model if pretrained else 64,
                         pretrained.config.n_layers if pretrained else 2, num_labels=2)
    torch.manual_seed(1000 + seed)
    model = BERT(config)  # a fresh classifier head; everything else comes from the pretrained model
    if pretrained is not None:
        missing, unexpected = model.load_state_dict(pretrained.state_dict(), strict=False)
        assert not unexpected and all(k.startswith("classifier") for k in missing), (missing, unexpected)
    train_data, test = agreement_data(tokenizer, n_train, seed=200 + seed), agreement_data(tokenizer, 2000, seed=7)
    generator = torch.Generator().manual_seed(seed)

    def get_batch(step):
        rows = torch.randint(n_train, (batch_size,), generator=generator)
        return {"input_ids": train_data["input_ids"][rows], "class_labels": train_data["class_labels"][rows]}

    train(model, get_batch, TrainConfig(steps=steps, lr=lr, seed=seed, device=device, progress=False, log_every=0))
    model.eval()
    with torch.no_grad():
        logits = model(test["input_ids"].to(next(model.parameters()).device)).class_logits.cpu()
    return (logits.argmax(-1) == test["class_labels"]).float().mean().item()


def run(seeds=(0,), finetune_seeds=(0,), pretrain_steps: int = 2000, finetune_steps: int = 100, n_train: int = 200,
        eval_every: int = 100, keep_models: bool = False, **pretrain_options) -> dict:
    """Pretrain with each objective for every seed, then fine-tune each model on agreement once per
    fine-tuning seed (a different labelled sample, classifier initialisation and batch order); a BERT
    fine-tuned from random weights is the baseline.

    Returns plain data: {"settings"; "histories": {objective: {"loss" per step (rounded), "evals",
    "tokens"}} and "nsp_probe" (nsp_predictions of the MLM + NSP model) for the first seed;
    "downstream": {"mlm+nsp" | "mlm": [[accuracy per fine-tuning seed] per pretraining seed],
    "scratch": [[accuracy per fine-tuning seed]]}}. With keep_models, the first seed's
    pretrained models are returned too, under "models" (not plain data).
    """
    tokenizer = make_tokenizer()
    out = {"settings": {"seeds": list(seeds), "finetune_seeds": list(finetune_seeds), "pretrain_steps": pretrain_steps,
                        "finetune_steps": finetune_steps, "n_train": n_train, **pretrain_options},
           "histories": {}, "downstream": {name: [] for name in (*OBJECTIVES, "scratch")}}
    models = {}

    def finetuned(model):
        return [round(finetune_agreement(model, tokenizer, finetune_steps, s, n_train), 4) for s in finetune_seeds]

    for seed in seeds:
        for objective in OBJECTIVES:
            model, history = pretrain(objective, pretrain_steps, seed, eval_every=eval_every, tokenizer=tokenizer,
                                      **pretrain_options)
            if seed == seeds[0]:
                out["histories"][objective] = {"loss": [round(v, 4) for v in history.loss], "tokens": history.tokens,
                                               "evals": [{k: round(v, 4) for k, v in e.items()} for e in history.evals]}
                models[objective] = model
                if objective == "mlm+nsp":
                    out["nsp_probe"] = nsp_predictions(model, tokenizer)
            out["downstream"][objective].append(finetuned(model))
    out["downstream"]["scratch"].append(finetuned(None))
    if keep_models:
        out["models"] = models
    return out


def run_and_keep_models(**options) -> dict:
    """run(**options), with the first seed's pretrained models saved beside the results."""
    data = run(**options, keep_models=True)
    for objective, model in data.pop("models").items():
        save_checkpoint(checkpoint_path(f"bert_pretraining_{objective.replace('+', '_')}"), model,
                        objective=objective, merges=[list(m) for m in make_tokenizer().merges], specials=SPECIALS)
    return data


def main() -> None:
    data = run_and_save("bert_pretraining", run_and_keep_models, **FULL)
    for name, per_seed in data["downstream"].items():
        print(f"{name:>8}: agreement accuracy {per_seed}")


if __name__ == "__main__":
    main()
