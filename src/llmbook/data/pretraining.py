"""BERT's pre-training inputs: masked tokens for masked language modelling and sentence pairs for
next-sentence prediction.

Used in chapters 2, Core concepts; 5, Pretraining; and 6, Applications.
"""
from __future__ import annotations

import random
from collections.abc import Sequence

import torch

from ..models import check_token_ids
from ._validate import check_int


def mask_tokens(
    ids: torch.Tensor,
    vocab_size: int,
    mask_id: int,
    special_ids: Sequence[int] = (),
    p: float = 0.15,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking rule: returns (inputs, labels), both shaped like `ids` (B, T).

    Each position whose id is not in `special_ids` is selected with probability p. A selected
    position becomes mask_id (80%), a random id (10%; uniform over ids that are neither special nor
    mask_id), or stays unchanged (10%). labels holds the original id where selected and -100
    (ignored by cross_entropy) elsewhere: pass it to BERT as ``targets=``. `ids` is not modified.
    Draws use `generator` (or torch's global RNG if None). Raises ValueError for p outside (0, 1],
    mask_id or an id outside [0, vocab_size), ids not 2-D, or no id left to draw; TypeError unless
    ids is a long/int tensor.
    """
    check_token_ids(ids, vocab_size, "ids")
    if not 0 < p <= 1:
        raise ValueError(f"p must be in (0, 1], got {p}")
    if not 0 <= mask_id < vocab_size:
        raise ValueError(f"mask_id {mask_id} is out of range for vocab_size {vocab_size}")
    specials = {int(s) for s in special_ids}
    excluded = specials | {mask_id}
    keep = torch.ones(vocab_size, dtype=torch.bool)
    keep[[i for i in excluded if 0 <= i < vocab_size]] = False
    allowed = keep.nonzero().squeeze(1)
    if len(allowed) == 0:
        raise ValueError(f"no ordinary token left to draw: all {vocab_size} ids are special or mask_id")

    # Draw on the generator's device (a CPU generator cannot fill a CUDA tensor), then move.
    device = generator.device if generator is not None else ids.device
    select_u = torch.rand(ids.shape, generator=generator, device=device).to(ids.device)
    action_u = torch.rand(ids.shape, generator=generator, device=device).to(ids.device)
    random_ix = torch.randint(len(allowed), ids.shape, generator=generator, device=device)
    random_tokens = allowed.to(device)[random_ix].to(ids.device, ids.dtype)

    special = torch.zeros_like(ids, dtype=torch.bool)
    for s in specials:
        special |= ids == s
    selected = (select_u < p) & ~special
    to_mask = selected & (action_u < 0.8)
    to_random = selected & (action_u >= 0.8) & (action_u < 0.9)

    labels = torch.where(selected, ids, torch.full_like(ids, -100))
    inputs = torch.where(to_mask, torch.full_like(ids, mask_id), ids)
    inputs = torch.where(to_random, random_tokens, inputs)
    return inputs, labels


def nsp_pairs(documents: Sequence, n: int, seed: int = 0) -> list[tuple[str, str, int]]:
    """`n` next-sentence-prediction triples (sentence_a, sentence_b, label), as in BERT.

    Label 0 = IsNext: b is the sentence right after a in the same document (probability 1/2).
    Label 1 = NotNext: b is a random sentence from another document.
    `documents` is a list of documents, each a list of sentences; a flat list of strings is
    taken as one document, and NotNext then picks any sentence other than a and its successor.
    Raises ValueError if no document has two sentences, or a flat list has fewer than three.
    """
    check_int("n", n, 1)
    if len(documents) and all(isinstance(s, str) for s in documents):
        docs = [list(documents)]
    else:
        docs = [list(d) for d in documents]
    starts = [(d, i) for d, doc in enumerate(docs) for i in range(len(doc) - 1)]
    if not starts:
        raise ValueError("nsp_pairs needs at least one document with two or more sentences")
    if len(docs) == 1 and len(docs[0]) < 3:
        raise ValueError(f"a single document needs >= 3 sentences for NotNext pairs, got {len(docs[0])}")
    nonempty = [d for d, doc in enumerate(docs) if doc]
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        d, i = rng.choice(starts)
        a = docs[d][i]
        if rng.random() < 0.5:
            out.append((a, docs[d][i + 1], 0))
            continue
        if len(docs) == 1:
            j = rng.choice([j for j in range(len(docs[0])) if j not in (i, i + 1)])
            out.append((a, docs[0][j], 1))
        else:
            other = rng.choice([k for k in nonempty if k != d])
            out.append((a, rng.choice(docs[other]), 1))
    return out
