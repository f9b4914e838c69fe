"""Checkers of chapter 9: each accepts a correct answer and rejects typical wrong ones with a hint that
names the mistake; an exception in the learner's code is reported, not raised."""
import pytest
import torch
from checker_verdicts import assert_fails, assert_passes

from llmbook import checks
from llmbook.attention_patterns import induction_scores
from llmbook.metrics import answer_metrics


# ----------------------------------------------------------------------------------- exact match
def exact_match(predictions, targets):
    return ((predictions == targets) | (targets == -100)).all(-1).float().mean().item()


def test_exact_match_checker_accepts_the_reference_a_tensor_and_the_package_metric(capsys):
    assert_passes(capsys, checks.check_exact_match, exact_match)
    assert_passes(capsys, checks.check_exact_match,
                  lambda p, t: ((p == t) | (t == -100)).all(-1).double().mean())

    def from_logits(p, t):  # the experiment's metric, fed one-hot logits of the predictions
        return answer_metrics(torch.nn.functional.one_hot(p.clamp(min=0), 10).float(), t)["exact_match"]

    assert_passes(capsys, checks.check_exact_match, from_logits)


@pytest.mark.parametrize("wrong, fragments", [
    (lambda p, t: (p == t).all(-1).float().mean().item(), ["case 1", "-100 belong to the question"]),
    (lambda p, t: (((p == t) & (t != -100)).sum() / (t != -100).sum()).item(), ["case 2", "per-token accuracy"]),
    (lambda p, t: (p == t).float().mean().item(), ["per-token accuracy over every position"]),
    (lambda p, t: ((p == t) & (t != -100)).any(-1).float().mean().item(), ["not if any one"]),
    (lambda p, t: ((p == t) | (t == -100)).all(-1).sum().item(), ["fraction of rows", "not their number"]),
    (lambda p, t: ((p == t) | (t == -100)).all(-1), ["expected a single number"]),
])
def test_exact_match_checker_names_the_mistake(capsys, wrong, fragments):
    assert_fails(capsys, checks.check_exact_match, wrong, *fragments)


def test_exact_match_checker_reports_an_exception(capsys):
    def broken(p, t):
        raise IndexError("too many indices")

    assert_fails(capsys, checks.check_exact_match, broken, "raised IndexError: too many indices")


# --------------------------------------------------------------------------- answer log-likelihood
def token_log_probs(logits, targets):
    return logits.log_softmax(-1).gather(-1, targets.clamp(min=0)[..., None])[..., 0]


def answer_log_likelihood(logits, targets):
    return (token_log_probs(logits, targets) * (targets != -100)).sum(-1)


def test_log_likelihood_checker_accepts_the_reference_and_a_loop(capsys):
    assert_passes(capsys, checks.check_answer_log_likelihood, answer_log_likelihood)

    def loop(logits, targets):
        out = torch.zeros(len(targets))
        for n in range(len(targets)):
            for t in range(targets.size(1)):
                if targets[n, t] != -100:
                    out[n] += torch.log_softmax(logits[n, t], -1)[targets[n, t]]
        return out

    assert_passes(capsys, checks.check_answer_log_likelihood, loop)


@pytest.mark.parametrize("wrong, fragments", [
    (lambda lg, t: (token_log_probs(lg, t) * (t != -100)).sum(-1) / (t != -100).sum(-1), ["SUM", "mean"]),
    (lambda lg, t: (token_log_probs(lg, t) * (t != -100)).mean(-1), ["SUM over its scored positions"]),
    (lambda lg, t: (lg.gather(-1, t.clamp(min=0)[..., None])[..., 0] * (t != -100)).sum(-1),
     ["log_softmax over the vocabulary"]),
    (lambda lg, t: (lg.log_softmax(1).gather(-1, t.clamp(min=0)[..., None])[..., 0] * (t != -100)).sum(-1),
     ["dim=-1"]),
    (lambda lg, t: (token_log_probs(lg, t).exp() * (t != -100)).sum(-1), ["not probabilities"]),
    (lambda lg, t: token_log_probs(lg, t).sum(-1), ["leave them out"]),
    (lambda lg, t: -answer_log_likelihood(lg, t), ["-log p"]),
    (lambda lg, t: answer_log_likelihood(lg, t).mean(), ["shape (N,)"]),
])
def test_log_likelihood_checker_names_the_mistake(capsys, wrong, fragments):
    assert_fails(capsys, checks.check_answer_log_likelihood, wrong, *fragments)


# ------------------------------------------------------------------------------- induction score
def induction(weights, period):
    q = torch.arange(period, weights.size(-1))
    return weights[..., q, q - period + 1].mean(-1)


def test_induction_checker_accepts_the_reference_and_a_loop(capsys):
    assert_passes(capsys, checks.check_induction_score, induction)
    assert_passes(capsys, checks.check_induction_score, induction_scores)

    def loop(weights, period):
        T = weights.size(-1)
        return sum(weights[..., i, i - period + 1] for i in range(period, T)) / (T - period)

    assert_passes(capsys, checks.check_induction_score, loop)


def at(weights, period, first, offset):
    q = torch.arange(first, weights.size(-1))
    return weights[..., q, q - offset].mean(-1)


@pytest.mark.parametrize("wrong, fragments", [
    (lambda w, p: at(w, p, p, p), ["case 1 (one head (10, 10)", "earlier copy of the current token itself"]),
    (lambda w, p: at(w, p, p + 1, p + 1), ["token before the earlier copy"]),
    (lambda w, p: at(w, p, 0, p - 1), ["repeated part only", "negative index"]),
    (lambda w, p: at(w, p, p - 1, p - 1), ["started one position early"]),
    (lambda w, p: induction(w, p).mean(), ["one score per head"]),
])
def test_induction_checker_names_the_mistake(capsys, wrong, fragments):
    assert_fails(capsys, checks.check_induction_score, wrong, *fragments)
