"""Does the shipped Shakespeare GPT learn in context? Induction measurements on real text (chapter 9).

    python -m llmbook.experiments.real_text_induction     # about half a minute on one CPU thread

Three measurements of ``shakespeare-gpt`` (``llmbook.pretrained``), after Olsson et al. (2022):

- **Loss by position** on the test split (*Hamlet*, *The Tempest*), cut into consecutive windows of
  the model's context: the loss at position t is that of predicting token t + 1 from tokens 0 .. t
  of its window. The **in-context learning score** of a window is its mean loss at the LATE
  positions minus its mean loss at the EARLY positions (negative: the model predicts better when
  it has read more of the window); the run keeps its mean and standard error over the windows.
- **Repeated random tokens**: sequences of ``period`` tokens drawn uniformly from the tokenizer's
  ordinary ids, followed by the same tokens again. Nothing predicts the first copy; a model that
  copies from its context predicts the second.
- **Per-head scores** on those sequences: the induction score (weight from a token of the second copy
  on the token after its earlier occurrence) and the previous-token score of every head
  (``llmbook.attention_patterns``), one (n_layers, n_heads) table each.

Used in chapter 9, Emergent abilities.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .. import pretrained
from ..attention_patterns import induction_scores, previous_token_scores
from . import run_and_save

EARLY, LATE = (40, 60), (230, 255)  # positions [start, stop) whose losses the score compares
FULL = dict(model_name="shakespeare-gpt", n_sequences=64, period=100, seed=0)


def window_losses(model, ids: torch.Tensor, max_windows: int | None = None, batch_size: int = 16) -> torch.Tensor:
    """Loss (nats) of every prediction in consecutive windows of the model's context over a token stream:
    (n_windows, context_length - 1), row w, column t: predicting token t + 1 of window w from its tokens
    0 .. t. The tail shorter than a window is dropped. Raises ValueError if not one window fits."""
    T = model.config.context_length
    n = len(ids) // T if max_windows is None else min(max_windows, len(ids) // T)
    if n < 1:
        raise ValueError(f"a stream of {len(ids)} tokens holds no window of the model's {T} tokens")
    rows = ids[: n * T].view(n, T)
    out = []
    with torch.no_grad():
        for start in range(0, n, batch_size):
            batch = rows[start: start + batch_size]
            logits = model(batch[:, :-1]).logits  # (B, T - 1, V)
            out.append(F.cross_entropy(logits.transpose(1, 2), batch[:, 1:], reduction="none"))
    return torch.cat(out)


def in_context_scores(losses: torch.Tensor, early=EARLY, late=LATE) -> torch.Tensor:
    """(n_windows,): mean loss at the late positions minus mean loss at the early ones, per window.

    losses: (n_windows, T) from ``window_losses``. Raises ValueError unless 0 <= early < late <= T
    as ranges [start, stop) that do not overlap."""
    T = losses.size(-1)
    if not (0 <= early[0] < early[1] <= late[0] < late[1] <= T):
        raise ValueError(f"need 0 <= early {early} before late {late} <= T = {T}, as [start, stop) ranges")
    return losses[:, late[0]:late[1]].mean(-1) - losses[:, early[0]:early[1]].mean(-1)


def repeated_random_tokens(n: int, period: int, allowed_ids, generator=None) -> torch.Tensor:
    """(n, 2 period): each row is `period` ids drawn uniformly (with replacement) from allowed_ids,
    then the same ids again. Raises ValueError for period < 1 or no allowed id."""
    allowed = torch.as_tensor(list(allowed_ids), dtype=torch.long)
    if period < 1 or len(allowed) == 0:
        raise ValueError(f"need period >= 1 (got {period}) and at least one allowed id (got {len(allowed)})")
    first = allowed[torch.randint(len(allowed), (n, period), generator=generator)]
    return torch.cat([first, first], dim=1)


def repeat_test(model, sequences: torch.Tensor) -> dict:
    """Loss by position on repeated sequences (B, 2P), and the per-head scores of their attention.

    Returns {"loss_by_position": (2P - 1,) list, "loss_first_copy": mean over the predictions of
    tokens 1 .. P-1, "loss_second_copy": mean over tokens P+1 .. 2P-1 (token P, the first of the copy,
    cannot be foreseen), "induction_scores" and "previous_token_scores": (n_layers, n_heads) lists,
    from the attention weights averaged over the batch}."""
    period = sequences.size(1) // 2
    with torch.no_grad():
        out = model(sequences[:, :-1], return_attention=True)
    loss = F.cross_entropy(out.logits.transpose(1, 2), sequences[:, 1:], reduction="none").mean(0)  # (2P - 1,)
    weights = [a.mean(0) for a in out.attentions]  # per layer (H, 2P - 1, 2P - 1)
    return {"loss_by_position": loss.tolist(),
            "loss_first_copy": loss[: period - 1].mean().item(),
            "loss_second_copy": loss[period:].mean().item(),
            "induction_scores": [induction_scores(w, period).tolist() for w in weights],
            "previous_token_scores": [previous_token_scores(w).tolist() for w in weights]}


def ordinary_ids(name: str) -> list[int]:
    """The ids of the model's tokenizer that are not special tokens ([PAD], [CLS], ... in bpe-shakespeare)."""
    tok = pretrained.tokenizer(pretrained.MODEL_TOKENIZER[name])
    specials = set(pretrained.bert_special_ids(tok)) if name != "tang-gpt" else set()
    return [i for i in range(tok.vocab_size) if i not in specials]


def run(model_name: str = "shakespeare-gpt", n_sequences: int = 64, period: int = 100, seed: int = 0,
        max_windows: int | None = None) -> dict:
    """All three measurements of one shipped GPT; plain data {"settings", "test_text", "repeated_tokens"}.

    test_text: loss_by_position (mean over windows) and its standard error, the in-context learning
    score (mean, standard deviation, standard error, number of windows). Raises ValueError if
    2 period exceeds the model's context."""
    model, _ = pretrained.load(model_name)
    if 2 * period > model.config.context_length:
        raise ValueError(f"2 period = {2 * period} tokens exceed the context of {model.config.context_length}")
    losses = window_losses(model, pretrained.token_stream(model_name, "test"), max_windows)
    n = len(losses)
    scores = in_context_scores(losses)
    ids = ordinary_ids(model_name)
    sequences = repeated_random_tokens(n_sequences, period, ids, torch.Generator().manual_seed(seed))
    test_text = {"windows": n, "loss_by_position": losses.mean(0).tolist(),
                 "loss_by_position_se": (losses.std(0) / math.sqrt(n)).tolist() if n > 1 else None,
                 "icl_score": scores.mean().item(),
                 "icl_score_sd": scores.std().item() if n > 1 else None,
                 "icl_score_se": scores.std().item() / math.sqrt(n) if n > 1 else None}
    settings = {"model": model_name, "split": "test", "context_length": model.config.context_length,
                "early": list(EARLY), "late": list(LATE), "n_sequences": n_sequences, "period": period,
                "seed": seed, "random_ids": len(ids)}
    return {"settings": settings, "test_text": test_text, "repeated_tokens": repeat_test(model, sequences)}


def main() -> None:
    run_and_save("real_text_induction", run, **FULL)


if __name__ == "__main__":
    main()
