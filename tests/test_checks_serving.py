"""Chapter 7's checkers for FlashAttention's online softmax, speculative acceptance and block tables:
each accepts a correct answer written independently and names the usual mistakes."""
import pytest
import torch
from checker_verdicts import assert_fails, assert_passes

from llmbook.checks.serving import check_block_lookup, check_online_softmax_step, check_speculative_accept


# ----------------------------------------------------------------------------- online softmax
def learner_online_step(m, denom, acc, scores, values):
    block_max = scores.amax(dim=1)
    m_new = torch.where(block_max > m, block_max, m)
    weights = (scores - m_new.unsqueeze(1)).exp()
    shrink = (m - m_new).exp()
    return m_new, shrink * denom + weights.sum(dim=1), shrink.unsqueeze(1) * acc + weights @ values


def test_online_step_accepts_a_correct_version(capsys):
    assert_passes(capsys, check_online_softmax_step, learner_online_step)
    assert_passes(capsys, check_online_softmax_step, learner_online_step, cases="hidden")


def test_online_steps_over_blocks_give_softmax_attention():
    """The rule the checker teaches, applied block by block, is softmax(scores) @ values (independent check)."""
    g = torch.Generator().manual_seed(0)
    scores, values = torch.randn(3, 12, generator=g) * 4, torch.randn(12, 5, generator=g)
    m, denom, acc = torch.full((3,), float("-inf")), torch.zeros(3), torch.zeros(3, 5)
    for start in range(0, 12, 5):
        m, denom, acc = learner_online_step(m, denom, acc, scores[:, start:start + 5], values[start:start + 5])
    torch.testing.assert_close(acc / denom[:, None], scores.softmax(-1) @ values)


def _no_acc_rescale(m, denom, acc, s, v):
    m_new, denom_new, _ = learner_online_step(m, denom, acc, s, v)
    return m_new, denom_new, acc + (s - m_new[:, None]).exp() @ v


def _normalised(m, denom, acc, s, v):
    m_new, denom_new, acc_new = learner_online_step(m, denom, acc, s, v)
    return m_new, denom_new, acc_new / denom_new[:, None]


def _block_max_only(m, denom, acc, s, v):
    return learner_online_step(torch.full_like(m, float("-inf")), denom * (m - s.amax(1)).exp(), acc * (
        m - s.amax(1)).exp()[:, None], s, v)


@pytest.mark.parametrize("wrong, fragments", [
    (_no_acc_rescale, ["case 2", "acc must shrink"]),
    (_normalised, ["divide by denom once"]),
    (lambda m, denom, acc, s, v: (torch.maximum(m, s.amax(1)), denom + s.exp().sum(1), acc + s.exp() @ v),
     ["case 1"]),
    (lambda *a: "no", ["expected a tuple (m_new, denom_new, acc_new)"]),
])
def test_online_step_names_the_mistake(capsys, wrong, fragments):
    assert_fails(capsys, check_online_softmax_step, wrong, *fragments)


def test_online_step_catches_a_block_max_that_forgets_the_running_one(capsys):
    line = assert_fails(capsys, check_online_softmax_step, _block_max_only)
    assert "case 1" not in line  # the first block has no running max to forget


# --------------------------------------------------------------------- speculative acceptance
def learner_accept(p, q, token):
    ratio = float(p[token]) / float(q[token])
    leftover = torch.relu(p - q)
    return min(1.0, ratio), leftover / leftover.sum()


def test_speculative_accept_accepts_a_correct_version(capsys):
    assert_passes(capsys, check_speculative_accept, learner_accept)


def test_the_rule_reproduces_the_target_distribution_exactly():
    """Draft proposes x ~ q, kept with min(1, p/q), else resampled from the residual: P(x) = p(x)."""
    p, q = torch.tensor([0.5, 0.3, 0.2]), torch.tensor([0.2, 0.6, 0.2])
    out = torch.zeros(3)
    for x in range(3):
        accept, residual = learner_accept(p, q, x)
        out[x] += q[x] * accept
        out += q[x] * (1 - accept) * residual
    torch.testing.assert_close(out, p)


@pytest.mark.parametrize("wrong, fragments", [
    (lambda p, q, x: (min(1.0, float(q[x] / p[x])), torch.relu(p - q) / torch.relu(p - q).sum()), ["q/p"]),
    (lambda p, q, x: (float(p[x] / q[x]), torch.relu(p - q) / torch.relu(p - q).sum()), ["case 2", "min(1, p/q)"]),
    (lambda p, q, x: (min(1.0, float(p[x] / q[x])), p), ["twice"]),
    (lambda p, q, x: (min(1.0, float(p[x] / q[x])), torch.relu(p - q)), ["sums to 1"]),
    (lambda p, q, x: (min(1.0, float(p[x] / q[x])), torch.relu(q - p) / torch.relu(q - p).sum()),
     ["max(p - q, 0)"]),
])
def test_speculative_accept_names_the_mistake(capsys, wrong, fragments):
    assert_fails(capsys, check_speculative_accept, wrong, *fragments)


# --------------------------------------------------------------------------- block-table lookup
def test_block_lookup_accepts_a_correct_version(capsys):
    assert_passes(capsys, check_block_lookup, lambda table, size, t: (table[t // size], t - size * (t // size)))
    assert_passes(capsys, check_block_lookup, lambda table, size, t: (table[t // size], t % size), cases="hidden")


@pytest.mark.parametrize("wrong, fragments", [
    (lambda table, size, t: (t // size, t % size), ["case 1", "look it up in the block table"]),
    (lambda table, size, t: (table[t % size], t // size), ["case 3", "not the other way round"]),
    (lambda table, size, t: (table[t // size], t), ["case 1", "position % block_size"]),
    (lambda table, size, t: table[t // size], ["expected a pair (block, offset)"]),
])
def test_block_lookup_names_the_mistake(capsys, wrong, fragments):
    assert_fails(capsys, check_block_lookup, wrong, *fragments)
