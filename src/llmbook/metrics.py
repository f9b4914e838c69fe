"""How right a model's answers are, from one teacher-forced forward pass (chapter 9): exact match,
the log-likelihood of the answer, token accuracy, and the loss at each position.

Targets mark the positions that are not scored (the question of a problem, padding) with -100, the
value that ``F.cross_entropy`` ignores too.

Used in chapter 9, Emergent abilities.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE = -100  # a target that is not scored


def scored(targets: torch.Tensor) -> torch.Tensor:
    """True where a target is scored (not -100)."""
    return targets != IGNORE


def target_log_probs(log_probs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log_probs (N, T, V) at each target (N, T); an unscored position reads token 0 (mask it out)."""
    return log_probs.gather(-1, targets.clamp(min=0)[..., None])[..., 0]


def exact_match(predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Fraction of rows whose every scored position is predicted right, a 0-d float64 tensor.

    predictions, targets: (N, T) token ids. With greedy predictions this equals the accuracy of greedy
    decoding: it writes the correct answer exactly when the most likely token is right everywhere.
    """
    return ((predictions == targets) | ~scored(targets)).all(-1).double().mean()


def answer_log_likelihood(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log P(answer | question) of each row, (N,): the sum over the scored positions of
    log softmax(logits)[target], computed in the dtype of logits (pass .double() for a reference)."""
    return (target_log_probs(logits.log_softmax(-1), targets) * scored(targets)).sum(-1)


def answer_metrics(logits: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    """Exact match, per-token accuracy and mean log-likelihood of the answer, from one forward pass,
    and the accuracy at each scored position (a list, in order: for addition, digit by digit).

    logits: (N, T, V); targets: (N, T) with -100 where no prediction is scored. Raises ValueError
    for mismatched shapes or a row without any scored position.
    """
    if logits.shape[:2] != targets.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} disagree on (N, T)")
    mask = scored(targets)  # (N, T)
    if not mask.any(-1).all():
        raise ValueError("every row needs at least one scored position (a target that is not -100)")
    predictions = logits.argmax(-1)
    correct = (predictions == targets) & mask
    columns = mask.any(0)  # the positions scored in at least one row
    return {
        "exact_match": exact_match(predictions, targets).item(),
        "token_accuracy": (correct.sum() / mask.sum()).item(),
        "answer_log_likelihood": answer_log_likelihood(logits.float(), targets).double().mean().item(),
        "position_accuracy": (correct.sum(0)[columns] / mask.sum(0)[columns]).tolist(),
    }


def loss_by_position(model, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy (nats) of model's next-token prediction at each position, averaged over the batch: (T,)."""
    with torch.no_grad():
        logits = model(x).logits  # (B, T, V)
    return F.cross_entropy(logits.transpose(1, 2), y, reduction="none").mean(0)
