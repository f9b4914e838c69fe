"""Batches of token ids: padding, teacher-forcing inputs and labels for a decoder, and random windows
of a token stream for language-model training (chapters 2 to 8).

Used in chapters 2, Core concepts; 3, Attention, step by step; 4, Encoder and decoder; 5,
Pretraining; 6, Applications; 7, Inference engineering; and 8, Scaling and unit scaling.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from ._validate import check_int
from .tasks import BOS_ID, EOS_ID, PAD_ID


def pad_batch(
    sequences: Sequence[Sequence[int]],
    pad_id: int,
    max_len: int | None = None,
    side: str = "right",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad id sequences into one tensor: returns (ids LongTensor (B, T), lengths LongTensor (B,)).

    T is `max_len` if given, else the longest sequence. side="left" puts the padding first,
    which decoder-only models want for batched generation. Raises ValueError for an empty
    batch, a sequence longer than max_len, or an unknown side.
    """
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    if len(sequences) == 0:
        raise ValueError("pad_batch needs at least one sequence")
    seqs = [torch.as_tensor(s, dtype=torch.long).reshape(-1) for s in sequences]
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)
    longest = int(lengths.max())
    if max_len is None:
        max_len = longest
    elif longest > max_len:
        b = int(lengths.argmax())
        raise ValueError(f"sequence {b} has length {longest}, longer than max_len {max_len}")
    out = torch.full((len(seqs), max_len), pad_id, dtype=torch.long)
    for b, s in enumerate(seqs):
        if len(s) == 0:
            continue  # out[b, -0:] would be the whole row
        if side == "right":
            out[b, : len(s)] = s
        else:
            out[b, -len(s):] = s
    return out, lengths


def teacher_forcing_targets(
    targets: Sequence[Sequence[int]],
    bos_id: int = BOS_ID,
    eos_id: int = EOS_ID,
    pad_id: int = PAD_ID,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoder inputs and labels for teacher forcing: (inputs, labels), LongTensor (B, T + 1) each.

    For a target t_1 .. t_n (without bos/eos): inputs = bos t_1 .. t_n, labels = t_1 .. t_n eos,
    so position i sees the true tokens before t_i and is asked for t_i (labels = inputs shifted
    left by one). Rows are right-padded with pad_id to the longest target plus one; T = its length.
    For a Seq2Seq model: ``model(src, decoder_input_ids=inputs, targets=labels)``.
    Raises ValueError for an empty batch.
    """
    if len(targets) == 0:
        raise ValueError("teacher_forcing_targets needs at least one target sequence")
    rows = [[int(t) for t in torch.as_tensor(seq, dtype=torch.long).reshape(-1).tolist()] for seq in targets]
    inputs, _ = pad_batch([[bos_id] + r for r in rows], pad_id)
    labels, _ = pad_batch([r + [eos_id] for r in rows], pad_id)
    return inputs, labels


def lm_batch(
    ids: torch.Tensor | Sequence[int],
    batch_size: int,
    context_length: int,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random windows of a 1-D token stream for LM training: (x, y), LongTensor (batch_size, context_length).

    y is x shifted left by one: y[b, t] = ids[start_b + t + 1]. Windows start uniformly in
    [0, len(ids) - context_length - 1]. Raises ValueError unless ids is 1-D and context_length < len(ids).
    """
    ids = torch.as_tensor(ids)
    if ids.dim() != 1:
        raise ValueError(f"ids must be 1-D, got shape {tuple(ids.shape)}")
    check_int("batch_size", batch_size, 1)
    check_int("context_length", context_length, 1)
    if context_length >= len(ids):
        raise ValueError(f"context_length {context_length} must be < len(ids) {len(ids)} (one extra token for y)")
    device = generator.device if generator is not None else torch.device("cpu")
    starts = torch.randint(len(ids) - context_length, (batch_size,), generator=generator, device=device)
    index = starts.to(ids.device)[:, None] + torch.arange(context_length, device=ids.device)
    return ids[index].long(), ids[index + 1].long()
