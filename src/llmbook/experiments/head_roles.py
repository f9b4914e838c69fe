"""Which heads of the shipped Shakespeare models do a recognisable job, scored over the test split.

    python -m llmbook.experiments.head_roles     # both models on Hamlet and The Tempest, one CPU thread

A *role* is a set of keys that a query could look at: the previous token, the token just after an
earlier copy of the current one (what an induction head reads), the last line break, the name of
the character who is speaking, and so on (``role_masks``). The score of a head for a role is the
attention weight the head puts on those keys, averaged over every query of the test split that has
at least one such key (``head_scores``). Beside each score the run records the baseline: the score
of a head that spreads its weight evenly over every key it may see. A head whose score is far above
the baseline does that job; nothing here is picked by eye.

`shakespeare-gpt` reads the test text in consecutive windows of its full context (256 tokens);
`shakespeare-bert` reads it as its pretraining did, in rows of [CLS] + 126 tokens + [SEP], without
any [MASK] (so it sees plain text).

Used in chapter 3, Attention, step by step.
"""
from __future__ import annotations

import re

import torch

from .. import pretrained
from . import run_and_save

CAUSAL_ROLES = ("previous token", "first token", "earlier copy", "induction", "last newline",
                "current speaker", "punctuation")
BIDIRECTIONAL_ROLES = ("previous token", "next token", "[CLS]", "[SEP]", "earlier copy", "last newline",
                       "current speaker", "punctuation")
PUNCTUATION = set(".,;:!?'\"-()[]")
# A speaker's name stands alone on a line after a blank line and ends with a full stop ("Hor.", "First Sailor.").
SPEAKER_LINE = re.compile(r"(?<=\n\n)[A-Z][A-Za-z']*(?: [A-Za-z][A-Za-z']*){0,3}\.(?=\n)")


def token_features(text: str, pieces: list[str]) -> dict[str, torch.Tensor]:
    """Per token of `text` (split into `pieces`, which must join to it): three (N,) tensors.

    ``newline``: the piece holds a line break; ``punctuation``: the piece is punctuation only (spaces
    aside); ``speaker``: the index of the speaker label (``SPEAKER_LINE``) the piece belongs to, -1 if none.
    Raises ValueError when the pieces do not join to the text.
    """
    if "".join(pieces) != text:
        raise ValueError("the token pieces do not join to the text: decode the ids one by one from the same text")
    starts = torch.tensor([0] + [len(p) for p in pieces]).cumsum(0)  # (N + 1,): char offset of each piece
    speaker = torch.full((len(pieces),), -1)
    for label, match in enumerate(SPEAKER_LINE.finditer(text)):
        inside = (starts[:-1] < match.end()) & (starts[1:] > match.start())  # the piece overlaps the name
        speaker[inside] = label
    newline = torch.tensor(["\n" in p for p in pieces])
    punctuation = torch.tensor([bool(p.strip()) and set(p.strip()) <= PUNCTUATION for p in pieces])
    return {"newline": newline, "punctuation": punctuation, "speaker": speaker}


def _last_before(flags: torch.Tensor) -> torch.Tensor:
    """For each position i of flags (T,) bool: the largest j < i with flags[j], or -1."""
    T = flags.numel()
    marked = torch.where(flags, torch.arange(T), torch.full((T,), -1))
    latest = marked.cummax(0).values  # the largest j <= i
    return torch.cat([torch.tensor([-1]), latest[:-1]])  # shift: j < i


def role_masks(ids: torch.Tensor, features: dict[str, torch.Tensor], causal: bool) -> dict[str, torch.Tensor]:
    """The keys of each role for one window: {role: (T, T) bool}, entry [i, j] = key j serves query i.

    ids: (T,) token ids; features: token_features sliced to the window. Causal windows get
    CAUSAL_ROLES, whose keys all lie before the query; bidirectional ones (BERT rows that start with
    [CLS] and end with [SEP]) get BIDIRECTIONAL_ROLES.
    """
    T = ids.numel()
    i, j = torch.arange(T)[:, None], torch.arange(T)[None, :]
    before = j < i
    other = before if causal else j != i  # the keys a role may name: never the query itself
    last_nl = _last_before(features["newline"])
    speaker = features["speaker"]
    current = torch.where(speaker >= 0, speaker, torch.full_like(speaker, -1)).cummax(0).values  # labels grow
    current = torch.cat([torch.tensor([-1]), current[:-1]])  # the latest label that began before i
    masks = {
        "previous token": j == i - 1,
        "earlier copy": (ids[None, :] == ids[:, None]) & before,
        "last newline": (j == last_nl[:, None]) & (last_nl[:, None] >= 0),
        "current speaker": (speaker[None, :] == current[:, None]) & (current[:, None] >= 0) & before,
        "punctuation": features["punctuation"][None, :] & other,
    }
    if causal:
        after_copy = torch.zeros(T, T, dtype=torch.bool)
        after_copy[:, 1:] = ids[None, :-1] == ids[:, None]  # key j follows a copy of query i's token
        masks["first token"] = (j == 0) & before
        masks["induction"] = after_copy & before
        return {role: masks[role] for role in CAUSAL_ROLES}
    masks["next token"] = j == i + 1
    masks["[CLS]"] = (j == 0) & other
    masks["[SEP]"] = (j == T - 1) & other
    return {role: masks[role] for role in BIDIRECTIONAL_ROLES}


def head_scores(weights: torch.Tensor, masks: dict[str, torch.Tensor], causal: bool) -> dict[str, tuple]:
    """Sums for one batch of windows: {role: (weight sums (L, H), uniform sum, number of queries)}.

    weights: (L, B, H, T, T) attention weights; masks: {role: (B, T, T) bool}. Only the queries with
    at least one key of the role count. The uniform sum is what a head spreading its weight evenly
    over the keys it may see would get.
    """
    T = weights.size(-1)
    visible = torch.arange(1, T + 1).float() if causal else torch.full((T,), float(T))  # keys per query
    out = {}
    for role, mask in masks.items():  # mask: (B, T, T)
        has_key = mask.any(-1)  # (B, T)
        on_role = (weights * mask[None, :, None]).sum(-1)  # (L, B, H, T)
        sums = (on_role * has_key[None, :, None]).sum((1, 3))  # (L, H)
        uniform = (mask.sum(-1) / visible)[has_key].sum()
        out[role] = (sums.double(), float(uniform), int(has_key.sum()))
    return out


def _windows(name: str, max_windows: int | None):
    """(ids (N, T), feature tensors (N, T) each, causal) of the test split as the model reads it."""
    model_tok = pretrained.tokenizer("bpe-shakespeare")
    stream = pretrained.token_stream(name, "test")
    pieces = [model_tok.decode([int(t)]) for t in stream]
    from ..corpora import shakespeare

    features = token_features(shakespeare("test"), pieces)
    if name == "shakespeare-gpt":
        T = pretrained.card(name)["config"]["context_length"]
        n = len(stream) // T
        ids = stream[: n * T].view(n, T)
        feats = {k: v[: n * T].view(n, T) for k, v in features.items()}
        causal = True
    else:
        T = pretrained.card(name)["config"]["context_length"] - 2  # [CLS] and [SEP] take two places
        n = len(stream) // T
        cls_id, sep_id = (model_tok.token_to_id(s) for s in ("[CLS]", "[SEP]"))
        ids = pretrained.mlm_windows(stream, T + 2, cls_id, sep_id)
        pad = {"newline": False, "punctuation": False, "speaker": -1}
        feats = {}
        for k, v in features.items():
            edge = torch.full((n, 1), pad[k], dtype=v.dtype)
            feats[k] = torch.cat([edge, v[: n * T].view(n, T), edge], dim=1)
        causal = False
    if max_windows is not None:
        ids, feats = ids[:max_windows], {k: v[:max_windows] for k, v in feats.items()}
    return ids, feats, causal


@torch.no_grad()
def score_model(name: str, max_windows: int | None = None, batch_size: int = 8) -> dict:
    """Role scores of every head of one shipped model over the test split (or its first max_windows)."""
    model, _ = pretrained.load(name)
    ids, feats, causal = _windows(name, max_windows)
    roles = CAUSAL_ROLES if causal else BIDIRECTIONAL_ROLES
    L, H = model.config.n_layers, model.config.n_heads
    sums = {r: torch.zeros(L, H, dtype=torch.float64) for r in roles}
    uniform, queries = dict.fromkeys(roles, 0.0), dict.fromkeys(roles, 0)
    for start in range(0, len(ids), batch_size):
        batch = ids[start: start + batch_size]
        out = model(batch, attention_mask=torch.ones_like(batch), return_attention=True)
        weights = torch.stack(out.attentions)  # (L, B, H, T, T)
        masks = [role_masks(row, {k: v[start + b] for k, v in feats.items()}, causal) for b, row in enumerate(batch)]
        batch_masks = {r: torch.stack([m[r] for m in masks]) for r in roles}
        for role, (s, u, q) in head_scores(weights, batch_masks, causal).items():
            sums[role] += s
            uniform[role] += u
            queries[role] += q
    return {"roles": list(roles), "causal": causal, "windows": len(ids), "window_tokens": ids.size(1),
            "scores": {r: (sums[r] / max(queries[r], 1)).round(decimals=4).tolist() for r in roles},
            "uniform": {r: round(uniform[r] / max(queries[r], 1), 4) for r in roles},
            "queries": queries}


def run(models=("shakespeare-gpt", "shakespeare-bert"), max_windows: int | None = None) -> dict:
    return {"models": {name: score_model(name, max_windows) for name in models},
            "settings": {"split": "test", "max_windows": max_windows}}


def main() -> None:
    run_and_save("head_roles", run)


if __name__ == "__main__":
    main()
