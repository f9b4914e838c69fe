"""Checkers for the emergence exercises (chapter 9): exact match, the log-likelihood of an answer, and
the induction score of an attention head.

Used in chapter 9, Emergent abilities.
"""
from __future__ import annotations

import torch

from ..attention import causal_mask
from ..attention_patterns import induction_scores
from ..metrics import answer_log_likelihood, exact_match, scored, target_log_probs
from ._core import Case, Verdict, case_generator, run_cases, scalar_problem, tensor_problem

# ----------------------------------------------------------------------------------- exact match
_EXACT_MATCH_MISTAKES = [
    ("positions whose target is -100 belong to the question, not the answer: count them as right (or "
     "leave them out) before asking whether the whole row is right.",
     lambda p, t: (p == t).all(-1).double().mean()),
    ("that is the per-token accuracy (right tokens / scored tokens). Exact match asks whether ALL the "
     "scored tokens of a row are right: .all(-1) over each row, then the mean over the rows.",
     lambda p, t: ((p == t) & scored(t)).sum().double() / scored(t).sum()),
    ("that is the per-token accuracy over every position, the question's included. Exact match scores "
     "a whole row: right only if all its scored tokens are right.",
     lambda p, t: (p == t).double().mean()),
    ("a row counts only if ALL its scored tokens are right (.all), not if any one of them is (.any).",
     lambda p, t: ((p == t) & scored(t)).any(-1).double().mean()),
    ("return the fraction of rows that are exactly right (a mean), not their number (a sum).",
     lambda p, t: ((p == t) | ~scored(t)).all(-1).double().sum()),
]


def _exact_match_cases() -> list[Case]:
    g = case_generator(0)
    targets = torch.randint(0, 10, (6, 5), generator=g)
    targets[:, :2] = -100  # the question part of every row
    predictions = targets.clamp(min=0).clone()
    predictions[:, :2] = torch.randint(0, 10, (6, 2), generator=g)  # anything where nothing is scored
    one_wrong = predictions.clone()
    one_wrong[1, 3] = (one_wrong[1, 3] + 1) % 10  # row 1 has one wrong answer token
    several = predictions.clone()
    several[0, 2] = (several[0, 2] + 1) % 10
    several[2, 4] = (several[2, 4] + 1) % 10
    several[2, 2] = (several[2, 2] + 1) % 10
    ragged = torch.tensor([[-100, 3, 4, -100], [-100, -100, 7, 1], [-100, -100, -100, 5]])
    random_targets = torch.randint(0, 4, (50, 6), generator=g)
    random_targets[:, :3] = -100
    random_predictions = torch.randint(0, 4, (50, 6), generator=g)
    random_predictions[:, 3:] = torch.where(torch.rand(50, 3, generator=g) < 0.8, random_targets[:, 3:],
                                            random_predictions[:, 3:])
    return [
        Case("6 rows, every answer token right", (predictions, targets)),
        Case("6 rows, one wrong token in row 1", (one_wrong, targets)),
        Case("6 rows, wrong tokens in rows 0 and 2", (several, targets)),
        Case("3 rows with different numbers of scored positions",
             (torch.tensor([[9, 3, 4, 9], [9, 9, 7, 2], [0, 0, 0, 5]]), ragged), hidden=True),
        Case("50 random rows, about 80% of the tokens right", (random_predictions, random_targets), hidden=True),
    ]


def check_exact_match(fn, cases: str = "all") -> Verdict:
    """Check fn(predictions (N, T), targets (N, T)) -> the fraction of rows whose every position with a
    target other than -100 is predicted right (a float or a one-element tensor).

    cases: "all", or the "visible" or "hidden" ones (ragged rows, 50 random rows) of a graded assignment."""
    return run_cases("check_exact_match", fn, _exact_match_cases(), exact_match, scalar_problem,
                     _EXACT_MATCH_MISTAKES,
                     fallback_hint="((predictions == targets) | (targets == -100)).all(-1) marks the rows "
                                   "that are exactly right; take its mean as a float.", which=cases)


# --------------------------------------------------------------------------- answer log-likelihood
def _token_log_probs(logits, targets, normalise=True, dim=-1):
    """log softmax(logits) at the targets (N, T), in float64; the switches reproduce the usual mistakes."""
    return target_log_probs(logits.double().log_softmax(dim) if normalise else logits.double(), targets)


def _answer_log_likelihood(logits, targets):
    """Reference: (N,) sum over the scored positions of log softmax(logits)[target], in float64."""
    return answer_log_likelihood(logits.double(), targets)


_LOG_LIKELIHOOD_MISTAKES = [
    ("the log-probability of the whole answer is the SUM of the log-probabilities of its tokens (the "
     "chain rule multiplies their probabilities); you took their mean.",
     lambda lg, t: _answer_log_likelihood(lg, t) / scored(t).sum(-1)),
    ("the log-probability of the whole answer is the SUM over its scored positions; you took a mean "
     "over all the positions.", lambda lg, t: _answer_log_likelihood(lg, t) / t.size(-1)),
    ("turn the logits into log-probabilities first: log_softmax over the vocabulary (the last dim).",
     lambda lg, t: (_token_log_probs(lg, t, normalise=False) * scored(t)).sum(-1)),
    ("the log_softmax runs over the vocabulary (dim=-1), not over the positions.",
     lambda lg, t: (_token_log_probs(lg, t, dim=1) * scored(t)).sum(-1)),
    ("add log-probabilities, not probabilities: use log_softmax, not softmax.",
     lambda lg, t: (_token_log_probs(lg, t).exp() * scored(t)).sum(-1)),
    ("positions whose target is -100 are not part of the answer: leave them out of the sum.",
     lambda lg, t: _token_log_probs(lg, t).sum(-1)),
    ("the log-likelihood is log p (a negative number); you returned the loss, -log p.",
     lambda lg, t: -_answer_log_likelihood(lg, t)),
    ("return one number per problem, shape (N,), not the mean over the problems.",
     lambda lg, t: _answer_log_likelihood(lg, t).mean()),
]


def _log_likelihood_cases() -> list[Case]:
    g = case_generator(1)
    cases = []
    for label, (N, T, V, question) in (("N=4, T=6, V=13, question of 3 positions", (4, 6, 13, 3)),
                                       ("N=1, T=3, V=5, one scored position", (1, 3, 5, 2)),
                                       ("N=8, T=12, V=13, question of 7 positions", (8, 12, 13, 7))):
        targets = torch.randint(0, V, (N, T), generator=g)
        targets[:, :question] = -100
        cases.append(Case(label, (torch.randn(N, T, V, generator=g) * 2, targets), hidden=N == 1))
    targets = torch.tensor([[-100, 1, 2], [-100, -100, 0]])
    cases.append(Case("2 rows with different numbers of scored positions",
                      (torch.randn(2, 3, 4, generator=g), targets), hidden=True))
    return cases


def check_answer_log_likelihood(fn, cases: str = "all") -> Verdict:
    """Check fn(logits (N, T, V), targets (N, T)) -> (N,): for each row, the sum over the positions whose
    target is not -100 of log softmax(logits)[target], i.e. log P(answer | question).

    cases: "all", or the "visible" or "hidden" ones (one scored position, ragged rows) of a graded
    assignment."""
    return run_cases("check_answer_log_likelihood", fn, _log_likelihood_cases(), _answer_log_likelihood,
                     lambda got, exp: tensor_problem(got, exp, "the output"), _LOG_LIKELIHOOD_MISTAKES,
                     fallback_hint="gather log_softmax(logits, -1) at the targets (clamped to >= 0), zero "
                                   "the positions with target -100, and sum over the positions.", which=cases)


# ------------------------------------------------------------------------------- induction score
def _random_attention(*shape, generator):
    """Causal attention weights of shape (*shape, T, T) from random scores; rows sum to 1."""
    T = shape[-1]
    scores = torch.randn(*shape[:-1], T, T, generator=generator) * 2
    return scores.masked_fill(~causal_mask(T), float("-inf")).softmax(-1)


def _mean_at(weights, period, first_query, offset):
    """llmbook.attention_patterns.weight_at_offset without its checks: the mistakes it reproduces
    include queries whose key index is negative (and wraps around)."""
    T = weights.size(-1)
    queries = torch.arange(first_query, T)
    return weights[..., queries, queries - offset].mean(-1)


_INDUCTION_MISTAKES = [
    ("key i - period is the earlier copy of the current token itself (a 'duplicate-token' pattern). "
     "The induction head attends one step further, to i - period + 1: the token that came after the "
     "copy, which is the token to predict next.", lambda w, p: _mean_at(w, p, p, p)),
    ("key i - period - 1 is the token before the earlier copy; the induction head attends to the one "
     "after it, i - period + 1.", lambda w, p: _mean_at(w, p, p + 1, p + 1)),
    ("average over the queries of the repeated part only, i = period .. T-1: a query in the first "
     "period has no earlier copy (and a negative index wraps around to the end of the sequence).",
     lambda w, p: _mean_at(w, p, 0, p - 1)),
    ("the repeated part starts at query i = period (the first token whose earlier copy exists); you "
     "started one position early.", lambda w, p: _mean_at(w, p, p - 1, p - 1)),
    ("average over the queries only (the last two dims select query and key): return one score per "
     "head, with the leading dims kept.", lambda w, p: induction_scores(w, p).mean()),
]


def _induction_cases() -> list[Case]:
    g = case_generator(2)
    T, period = 12, 5
    perfect = torch.zeros(T, T)
    perfect[0, 0] = 1.0
    for i in range(1, T):
        perfect[i, i - period + 1 if i >= period else 0] = 1.0  # first period: rest on token 0
    return [  # random weights first: there every usual mistake gives its own wrong number
        Case("one head (10, 10), random causal weights, period 4", (_random_attention(10, generator=g), 4)),
        Case("2 heads (2, 16, 16), period 8", (_random_attention(2, 16, generator=g), 8)),
        Case("batch of 3, 2 heads (3, 2, 9, 9), period 3", (_random_attention(3, 2, 9, generator=g), 3)),
        Case("one head (6, 6), period 1: every token repeats the previous one",
             (_random_attention(6, generator=g), 1), hidden=True),
        Case("one head (12, 12), period 5, a perfect induction head", (perfect, period), hidden=True),
    ]


def check_induction_score(fn, cases: str = "all") -> Verdict:
    """Check fn(weights (..., T, T), period) -> (...): for each head, the mean over the queries
    i = period .. T-1 of the weight on key i - period + 1, the token after the earlier copy of token i.

    cases: "all", or the "visible" or "hidden" ones (period 1, a perfect head) of a graded assignment."""
    return run_cases("check_induction_score", fn, _induction_cases(), induction_scores,
                     lambda got, exp: tensor_problem(got, exp, "the output"), _INDUCTION_MISTAKES,
                     fallback_hint="with q = torch.arange(period, T), weights[..., q, q - period + 1] holds "
                                   "the weights on the induction targets; average them over the last dim.",
                     which=cases)
