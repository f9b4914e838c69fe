"""Small models pretrained on real text, and the tokenizers they read it with, shipped in the package.

``load(name)`` returns ``(model, tokenizer)``, the model in eval mode, read with ``weights_only=True``:

- ``"shakespeare-gpt"``: a GPT trained on Shakespeare's training works (BPE, ``bpe-shakespeare``);
- ``"tang-gpt"``: a GPT trained on the training Tang poems, one token per character (``char-tang``);
- ``"shakespeare-bert"``: a BERT pretrained with masked-token prediction on the same English text.

``card(name)`` is the model's card: config, tokenizer, data and splits, tokens seen, held-out scores,
wall time, device, seed, torch version, samples. ``tokenizer(name)`` loads one of ``TOKENIZERS``.
``evaluate(name, model, tokenizer, split)`` scores a model on a split exactly as its card was made.
Each model is trained by ``python -m llmbook.experiments.<name with _ for ->`` (e.g.
``llmbook.experiments.shakespeare_gpt``); the tokenizers by ``tools/build_tokenizers.py``.

The weights are stored in 16 bits (float16) to keep the package small and loaded into a float32
model; each card records what the rounding costs in held-out loss.

Used in the front matter, on the page Data and models.
"""
from __future__ import annotations

import json
import math
from functools import cache
from importlib import resources

import torch

from . import corpora
from .data import mask_tokens
from .tokenizers import BPETokenizer, CharTokenizer

MODELS = ("shakespeare-gpt", "tang-gpt", "shakespeare-bert")
TOKENIZERS = ("bpe-en-zh", "bpe-shakespeare", "char-shakespeare", "char-tang")
MODEL_TOKENIZER = {"shakespeare-gpt": "bpe-shakespeare", "tang-gpt": "char-tang",
                   "shakespeare-bert": "bpe-shakespeare"}
BERT_SPECIALS = ("[PAD]", "[CLS]", "[SEP]", "[MASK]")  # in this order in bpe-shakespeare
MLM_SEED = 1234  # the masks of an MLM evaluation are drawn from this seed, so a score is repeatable


def _data(*parts: str):
    path = resources.files("llmbook").joinpath("pretrained_data")
    for part in parts:
        path = path.joinpath(part)
    return path


def _check_name(name: str, names: tuple[str, ...], what: str) -> None:
    if name not in names:
        raise ValueError(f"no shipped {what} named {name!r}; the {what}s are: {', '.join(names)}")


@cache
def _tokenizer(name: str):
    cls = CharTokenizer if name.startswith("char-") else BPETokenizer  # load() checks the file's kind
    with resources.as_file(_data("tokenizers", f"{name}.json")) as path:
        return cls.load(path)


def tokenizer(name: str) -> BPETokenizer | CharTokenizer:
    """One of TOKENIZERS, loaded from its shipped JSON (the same object on every call: do not change it)."""
    _check_name(name, TOKENIZERS, "tokenizer")
    return _tokenizer(name)


def tokenizer_record() -> dict:
    """What tools/build_tokenizers.py recorded: sha256 and size of each file, tokens per character per split."""
    return json.loads(_data("tokenizers", "record.json").read_text(encoding="utf-8"))


def card(name: str) -> dict:
    """The model card of one of MODELS (a fresh dict)."""
    _check_name(name, MODELS, "model")
    path = _data("models", f"{name}.json")
    if not path.is_file():
        module = name.replace("-", "_")
        raise FileNotFoundError(f"the model {name!r} has not been trained in this copy of llmbook; "
                                f"run `python -m llmbook.experiments.{module}`")
    return json.loads(path.read_text(encoding="utf-8"))


def load(name: str, device: str | torch.device = "cpu"):
    """(model, tokenizer) of one of MODELS; the model is float32, in eval mode, on `device`."""
    from .train import CONFIGS, load_checkpoint

    info = card(name)
    # the card's config, with any option added to the package since then at its default
    expected = CONFIGS[info["model_class"]](**info["config"])
    with resources.as_file(_data("models", f"{name}.pt")) as path:
        model = load_checkpoint(path, expected_config=expected, map_location="cpu")
    return model.float().to(device).eval(), tokenizer(info["tokenizer"])


def bert_special_ids(tok) -> list[int]:
    """The ids of BERT_SPECIALS ([PAD], [CLS], [SEP], [MASK]) in a tokenizer that has them."""
    return [tok.token_to_id(s) for s in BERT_SPECIALS]


# ------------------------------------------------------------------------------------ the data
def token_stream(name: str, split: str) -> torch.Tensor:
    """The split of the model's corpus as one 1-D tensor of token ids, as the model was trained on it.

    English: the works of the split, encoded whole. Tang: each poem (``corpora.poem_document``)
    followed by ``<eos>``, in the split's order.
    """
    _check_name(name, MODELS, "model")
    tok = tokenizer(MODEL_TOKENIZER[name])
    if name == "tang-gpt":
        eos = tok.token_to_id("<eos>")
        ids = []
        for poem in corpora.tang_poems(split):
            ids += tok.encode(corpora.poem_document(poem)) + [eos]
    else:
        ids = tok.encode(corpora.shakespeare(split))
    return torch.tensor(ids, dtype=torch.long)


def characters(name: str, split: str) -> int:
    """How many characters the split's text has, as bits per character count them (Tang: <eos> is one)."""
    if name == "tang-gpt":
        poems = corpora.tang_poems(split)
        return sum(len(corpora.poem_document(p)) + 1 for p in poems)
    return len(corpora.shakespeare(split))


def mlm_windows(ids: torch.Tensor, context_length: int, cls_id: int, sep_id: int) -> torch.Tensor:
    """Cut a token stream into consecutive (N, context_length) rows of [CLS] text [SEP] (the tail is dropped)."""
    n = context_length - 2
    rows = ids[: len(ids) // n * n].view(-1, n)
    cls = torch.full((len(rows), 1), cls_id, dtype=ids.dtype)
    sep = torch.full((len(rows), 1), sep_id, dtype=ids.dtype)
    return torch.cat([cls, rows, sep], dim=1)


# ------------------------------------------------------------------------------------ scoring
@torch.no_grad()
def lm_nats(model, ids: torch.Tensor, batch_size: int = 16, new_cache=None) -> tuple[float, int]:
    """Sum of -ln p(token) over a stream, in consecutive windows of the model's context, and the count.

    Every token but the first is predicted once, from the tokens before it in its window (on average
    half a context). new_cache: a function returning an empty KV cache; each batch of windows then
    goes through a fresh one, so attention reads the keys and values as the cache stores them (an
    int8 cache, say). Returns (total nats, number of predicted tokens).
    """
    T = model.config.context_length
    starts = list(range(0, len(ids) - 1, T))
    total, count = 0.0, 0
    for i in range(0, len(starts), batch_size):
        rows = [ids[s: s + T + 1] for s in starts[i: i + batch_size]]
        full = [r for r in rows if len(r) == T + 1]
        groups = ([torch.stack(full)] if full else []) + [r[None] for r in rows if len(r) < T + 1]
        for batch in groups:  # the last window may be short: it is scored on its own
            logits = model(batch[:, :-1], kv_cache=None if new_cache is None else new_cache()).logits
            nats = torch.nn.functional.cross_entropy(logits.flatten(0, 1), batch[:, 1:].flatten(), reduction="sum")
            total += float(nats)
            count += batch[:, 1:].numel()
    return total, count


@torch.no_grad()
def mlm_scores(model, windows: torch.Tensor, vocab_size: int, mask_id: int, special_ids,
               batch_size: int = 32) -> dict:
    """BERT's masking rule (15 %; 80/10/10) over rows of text, drawn from MLM_SEED: mean loss and accuracy.

    masked_accuracy: the share of the selected positions where the top prediction is the original
    token (a tenth of them were left unchanged, so the model could see the answer there);
    hidden_accuracy: the same share over the positions replaced by [MASK] only.
    """
    generator = torch.Generator().manual_seed(MLM_SEED)
    total, correct, count, hidden_correct, hidden = 0.0, 0, 0, 0, 0
    for start in range(0, len(windows), batch_size):
        inputs, targets = mask_tokens(windows[start: start + batch_size], vocab_size, mask_id, special_ids,
                                      generator=generator)
        logits = model(inputs).logits
        picked = targets != -100
        total += float(torch.nn.functional.cross_entropy(logits[picked], targets[picked], reduction="sum"))
        right = logits.argmax(-1) == targets
        correct += int((right & picked).sum())
        count += int(picked.sum())
        masked = picked & (inputs == mask_id)  # the 80 % the model cannot see (the rest stay or are swapped)
        hidden_correct += int((right & masked).sum())
        hidden += int(masked.sum())
    return {"loss": total / count, "masked_accuracy": correct / count, "masked_tokens": count,
            "hidden_accuracy": hidden_correct / hidden, "hidden_tokens": hidden}


def evaluate(name: str, model, tok, split: str) -> dict:
    """Score a model of kind `name` on a split as its card does.

    GPTs: ``loss`` (nats per token), ``bits_per_char`` and ``tokens``; BERT: ``loss`` (nats per selected
    token), ``masked_accuracy``, ``masked_tokens``, ``hidden_accuracy`` and ``hidden_tokens``.
    """
    ids = token_stream(name, split)
    was_training = model.training
    model.eval()
    try:
        if name == "shakespeare-bert":
            specials = bert_special_ids(tok)
            windows = mlm_windows(ids, model.config.context_length, specials[1], specials[2])
            return mlm_scores(model, windows, tok.vocab_size, specials[3], specials)
        nats, count = lm_nats(model, ids)
        # bits per character: all of the text's characters share the bits (the unscored first token
        # holds a few of them), so models with different tokenizers compare on the same text
        return {"loss": nats / count, "bits_per_char": nats / math.log(2) / characters(name, split),
                "tokens": count}
    finally:
        model.train(was_training)


@torch.no_grad()
def fill_mask(model, tok, text: str, top: int = 5) -> list[list[tuple[str, float]]]:
    """BERT's guesses for each "[MASK]" in text: per mask, the `top` tokens and their probabilities.

    The text is framed as [CLS] text [SEP]. Raises ValueError when it holds no "[MASK]" or is longer
    than the model's context.
    """
    ids = tok.encode(text, allow_specials=True)
    mask_id = tok.token_to_id("[MASK]")
    if mask_id not in ids:
        raise ValueError(f"the text holds no [MASK] to fill: {text!r}")
    ids = [tok.token_to_id("[CLS]"), *ids, tok.token_to_id("[SEP]")]
    if len(ids) > model.config.context_length:
        raise ValueError(f"the text takes {len(ids)} tokens with [CLS] and [SEP]; the model reads at most "
                         f"{model.config.context_length}")
    model.eval()
    probs = model(torch.tensor([ids])).logits[0].softmax(-1)
    guesses = []
    for position in (i for i, t in enumerate(ids) if t == mask_id):
        p, index = probs[position].topk(top)
        guesses.append([(tok.decode([int(i)]), float(q)) for i, q in zip(index, p)])
    return guesses
