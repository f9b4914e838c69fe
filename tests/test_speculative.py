"""Speculative decoding: the greedy output is the target's greedy output, the statistics add up, the
KV cache can be cropped back; speculative sampling's output follows the target's distribution, exactly
(by enumeration of every draft and every accept/reject outcome) and in samples through real models."""
import itertools

import pytest
import torch

from llmbook.generate import generate
from llmbook.kv_cache import KVCache
from llmbook.models import GPT, GPTConfig
from llmbook.speculative import (
    acceptance_probability,
    residual_distribution,
    speculative_generate,
    speculative_sample,
    verify_proposals,
)


def gpt(seed, **kw):
    torch.manual_seed(seed)
    cfg = dict(vocab_size=20, context_length=64, n_layers=2, n_heads=2, d_model=32)
    return GPT(GPTConfig(**{**cfg, **kw})).eval()


@pytest.mark.parametrize("pos", ["learned", "rope"])
@pytest.mark.parametrize("k", [1, 3, 6])
def test_output_is_the_target_greedy_output(pos, k):
    target, draft = gpt(0, pos_encoding=pos), gpt(1, n_layers=1, d_model=16, pos_encoding=pos)
    for prompt_len in (1, 4):
        prompt = torch.randint(0, 20, (1, prompt_len), generator=torch.Generator().manual_seed(prompt_len))
        ids, stats = speculative_generate(target, draft, prompt, 40, draft_tokens=k)
        assert torch.equal(ids, generate(target, prompt, 40, temperature=0))
        assert stats.new_tokens == 40
        assert stats.new_tokens == sum(stats.accepted) + stats.target_calls  # each round: accepted + 1
        assert stats.draft_calls == stats.proposed and len(stats.accepted) == stats.target_calls
        assert all(0 <= n <= k for n in stats.accepted)


def test_a_perfect_draft_has_every_token_accepted():
    target = gpt(0)
    ids, stats = speculative_generate(target, target, torch.tensor([[3]]), 30, draft_tokens=4)
    assert torch.equal(ids, generate(target, torch.tensor([[3]]), 30, temperature=0))
    assert stats.acceptance_rate == 1.0
    assert stats.target_calls == 6 and stats.tokens_per_target_call == 5.0  # 5 tokens per round


def test_generation_stops_at_eos_like_generate():
    target, draft = gpt(0), gpt(1, n_layers=1)
    prompt = torch.tensor([[5, 6]])
    plain = generate(target, prompt, 40, temperature=0)
    eos = int(plain[0, 7])  # a token the target produces along the way
    ids, _ = speculative_generate(target, draft, prompt, 40, draft_tokens=3, eos_id=eos)
    assert torch.equal(ids, generate(target, prompt, 40, temperature=0, eos_id=eos))
    assert int(ids[0, -1]) == eos


def test_zero_new_tokens_and_models_are_left_as_found():
    target, draft = gpt(0), gpt(1)
    target.train()
    ids, stats = speculative_generate(target, draft, torch.tensor([[1, 2]]), 0)
    assert ids.tolist() == [[1, 2]] and stats.target_calls == 0 and stats.acceptance_rate == 0.0
    assert target.training and not draft.training


def test_bad_input_is_refused_clearly():
    target, draft = gpt(0), gpt(1)
    with pytest.raises(ValueError, match="draft_tokens must be >= 1"):
        speculative_generate(target, draft, torch.tensor([[1]]), 5, draft_tokens=0)
    with pytest.raises(ValueError, match="one non-empty prompt"):
        speculative_generate(target, draft, torch.zeros(2, 3, dtype=torch.long), 5)
    with pytest.raises(ValueError, match="share a vocabulary"):
        speculative_generate(target, gpt(1, vocab_size=21), torch.tensor([[1]]), 5)
    with pytest.raises(ValueError, match="exceeds the context length 32"):
        speculative_generate(target, gpt(1, context_length=32), torch.tensor([[1, 2]]), 31)


def test_cache_crop_forgets_positions_and_refuses_to_grow():
    cache = KVCache(n_layers=2, max_len=10)
    k = torch.randn(1, 2, 6, 4)
    for layer in cache.layers:
        layer.append(k, k)
    cache.crop(4)
    assert len(cache) == 4 and cache[1].keys.shape == (1, 2, 4, 4)
    torch.testing.assert_close(cache[0].keys, k[:, :, :4])
    cache[0].append(k[:, :, :1] + 1, k[:, :, :1])  # overwrites position 4
    assert cache[0].length == 5 and torch.equal(cache[0].keys[:, :, 4], k[:, :, 0] + 1)
    with pytest.raises(ValueError, match=r"\[0, 4\], got 7"):
        cache[1].crop(7)


# ------------------------------------------------------------------------------- speculative sampling
def test_verify_proposals_by_hand():
    p = torch.tensor([[0.2, 0.5, 0.3], [0.6, 0.2, 0.2], [0.1, 0.1, 0.8]])
    q = torch.tensor([[0.5, 0.25, 0.25], [0.2, 0.2, 0.6]])
    # guess 0 first: kept with probability min(1, 0.2 / 0.5) = 0.4
    n, dist = verify_proposals(p[:2], q[:1], torch.tensor([0]), torch.tensor([0.39]))
    assert n == 1 and torch.equal(dist, p[1])  # all kept: the next token comes from the target
    n, dist = verify_proposals(p[:2], q[:1], torch.tensor([0]), torch.tensor([0.41]))
    # rejected: max(0, p - q) = (0, 0.25, 0.05), normalised
    assert n == 0
    torch.testing.assert_close(dist, torch.tensor([0.0, 5 / 6, 1 / 6]))
    # guess 1 (p/q = 2) is always kept; then guess 2 (0.2 / 0.6) is rejected at u = 0.5
    n, dist = verify_proposals(p, q, torch.tensor([1, 2]), torch.tensor([0.999, 0.5]))
    assert n == 1
    torch.testing.assert_close(dist, torch.tensor([1.0, 0.0, 0.0]))  # max(0, p1 - q1) = (0.4, 0, 0)
    # the round stops at the first rejection even if a later guess would pass
    assert verify_proposals(p, q, torch.tensor([0, 0]), torch.tensor([0.9, 0.0]))[0] == 0
    with pytest.raises(ValueError, match="k = 2 guesses"):
        verify_proposals(p[:2], q, torch.tensor([0, 1]), torch.tensor([0.1, 0.1]))


V = 3  # the toy vocabulary


def _toy_distributions(seed, same_as=None):
    """A distribution over V tokens for every context (a tuple of tokens), fixed by a seed: a toy
    language model. One token of each context has probability exactly 0; with same_as, the contexts
    whose tokens sum to 2 mod 3 get same_as's distribution (a draft that sometimes equals the target)."""
    tables = {}

    def dist(context):
        if same_as is not None and sum(context) % 3 == 2:
            return same_as(context)
        if context not in tables:
            index = sum(x * V ** i for i, x in enumerate(context)) + V ** len(context)  # one per context
            g = torch.Generator().manual_seed(1000 * seed + index)
            w = torch.rand(V, generator=g, dtype=torch.float64) ** 3
            w[torch.randint(0, V, (1,), generator=g)] = 0.0
            tables[context] = w / w.sum()
        return tables[context]

    return dist


def _one_round_exact(p_fn, q_fn, k):
    """The exact distribution of the first k + 1 tokens after one speculative round (continued, if
    the round yields fewer, by the target itself), found by enumerating every draft and every
    accept/reject outcome of the uniforms. Each outcome is fed to verify_proposals."""
    out = {}
    for guesses in itertools.product(range(V), repeat=k):
        p_rows = torch.stack([p_fn(guesses[:i]) for i in range(k + 1)])
        q_rows = torch.stack([q_fn(guesses[:i]) for i in range(k)]) if k else torch.zeros(0, V, dtype=torch.float64)
        p_draft = torch.prod(torch.stack([q_rows[i, x] for i, x in enumerate(guesses)])) if k else 1.0
        if p_draft == 0:
            continue
        accept = [float(acceptance_probability(p_rows[i], q_rows[i])[x]) for i, x in enumerate(guesses)]
        for kept in itertools.product([True, False], repeat=k):
            weight = p_draft * torch.prod(torch.tensor([a if keep else 1 - a for a, keep in zip(accept, kept)],
                                                       dtype=torch.float64))
            if weight == 0:
                continue
            uniforms = torch.tensor([a / 2 if keep else (1 + a) / 2 for a, keep in zip(accept, kept)])
            n, dist = verify_proposals(p_rows, q_rows, torch.tensor(guesses, dtype=torch.long), uniforms)
            for y in range(V):
                _continue(out, guesses[:n] + (y,), weight * dist[y], p_fn, k + 1)
    return out


def _continue(out, seq, prob, p_fn, length):
    """Add prob to out[seq], extended to `length` tokens with the target's own distribution."""
    if prob == 0:
        return
    if len(seq) == length:
        out[seq] = out.get(seq, 0.0) + float(prob)
        return
    for y in range(V):
        _continue(out, seq + (y,), prob * p_fn(seq)[y], p_fn, length)


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("draft_seed", [2, 3])
def test_one_speculative_round_outputs_exactly_the_target_distribution(k, draft_seed):
    p_fn = _toy_distributions(seed=1)
    q_fn = _toy_distributions(seed=draft_seed, same_as=p_fn)
    got = _one_round_exact(p_fn, q_fn, k)
    want = {}
    for seq in itertools.product(range(V), repeat=k + 1):
        prob = torch.prod(torch.stack([p_fn(seq[:i])[x] for i, x in enumerate(seq)]))
        if prob > 0:
            want[seq] = float(prob)
    assert set(got) == set(want)
    for seq in want:
        assert got[seq] == pytest.approx(want[seq], abs=1e-12), seq
    draft_first = q_fn(())
    assert (draft_first - p_fn(())).abs().sum() > 0.2  # the draft is far from the target, yet the output is p


def test_acceptance_and_residual_make_p_from_q_for_single_tokens():
    """The one-token case written out: q(x) min(1, p/q) + P(reject) residual(x) = p(x), also where q or p is 0."""
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        p, q = torch.rand(5, generator=g, dtype=torch.float64), torch.rand(5, generator=g, dtype=torch.float64)
        p[torch.randint(0, 5, (1,), generator=g)] = 0.0
        q[torch.randint(0, 5, (2,), generator=g)] = 0.0
        p, q = p / p.sum(), q / q.sum()
        kept = q * acceptance_probability(p, q)
        out = kept + (1 - kept.sum()) * residual_distribution(p, q)
        torch.testing.assert_close(out, p, atol=1e-12, rtol=0)
    assert torch.equal(residual_distribution(p, p), p)  # no rejection possible: no 0/0


def _peaked_gpt(seed, **kw):
    """A tiny GPT with large random weights, so that its next-token distributions are far from uniform."""
    torch.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=4, context_length=16, n_layers=1, n_heads=2, d_model=8, **kw)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.5) if p.dim() > 1 else None
    return model


def test_speculative_sampling_through_models_follows_the_target():
    """Draft and target disagree on the first token (total variation 0.45), the draft keeps 1/3 of its
    guesses; resampling from p instead of the residual after a rejection would move the output by 0.2,
    ignoring top_k by 0.2: far beyond the sampling noise of the 2000 runs (about 0.015)."""
    target, draft = _peaked_gpt(2), _peaked_gpt(3, pos_encoding="rope")
    prompt = torch.tensor([[1, 3, 0]])
    temperature, top_k = 1.5, 2

    def probs(logits):  # softmax(logits / temperature) over the top_k tokens
        kept = logits.double() / temperature
        kept[kept < kept.topk(top_k).values[..., -1:]] = float("-inf")
        return kept.softmax(-1)

    with torch.no_grad():  # exact distribution of two target tokens: p(y1) p(y2 | y1)
        p1 = probs(target(prompt).logits[0, -1])
        both = torch.cat([prompt.expand(4, -1), torch.arange(4)[:, None]], dim=1)
        p2 = probs(target(both).logits[:, -1])
        q1 = probs(draft(prompt).logits[0, -1])
    want = (p1[:, None] * p2).flatten()  # index 4 y1 + y2
    assert 0.5 * (q1 - p1).abs().sum() > 0.4  # a draft sampled alone would be far off
    g = torch.Generator().manual_seed(0)
    N = 2000
    counts = torch.zeros(16, dtype=torch.float64)
    accepted = 0
    for _ in range(N):
        ids, stats = speculative_sample(target, draft, prompt, 2, draft_tokens=3, temperature=temperature,
                                        top_k=top_k, generator=g)
        counts[4 * ids[0, 3] + ids[0, 4]] += 1
        accepted += sum(stats.accepted)
    freq = counts / N
    assert 0.5 * (freq - want).abs().sum() < 0.05  # total variation
    assert 0 < accepted < N  # some guesses kept, some rejected: both paths ran


def test_speculative_sampling_with_the_target_as_draft_accepts_everything():
    target = _peaked_gpt(0)
    ids, stats = speculative_sample(target, target, torch.tensor([[2]]), 12, draft_tokens=3,
                                    generator=torch.Generator().manual_seed(0))
    assert ids.shape == (1, 13) and stats.acceptance_rate == 1.0 and stats.target_calls == 3  # 4 tokens a round
    again, _ = speculative_sample(target, target, torch.tensor([[2]]), 12, draft_tokens=3,
                                  generator=torch.Generator().manual_seed(0))
    assert torch.equal(ids, again)  # seeded: reproducible


def test_speculative_sampling_refuses_temperature_zero():
    target, draft = gpt(0), gpt(1)
    with pytest.raises(ValueError, match="temperature > 0, got 0.*speculative_generate"):
        speculative_sample(target, draft, torch.tensor([[1]]), 5, temperature=0)


def test_conditional_acceptance_counts_only_judged_tokens():
    from llmbook.speculative import SpeculativeStats
    # rounds of k = 4: all kept; 1 kept then a rejection; none kept (a rejection); last round k = 2, both kept
    stats = SpeculativeStats(4, proposed=14, accepted=[4, 1, 0, 2], proposals=[4, 4, 4, 2])
    assert stats.acceptance_rate == 7 / 14  # tokens after a rejection count against it
    assert stats.conditional_acceptance == 7 / 9  # judged: 4 + (1 + 1) + (0 + 1) + 2


def test_conditional_acceptance_recovers_alpha_of_independent_rounds():
    from llmbook.speculative import SpeculativeStats
    g = torch.Generator().manual_seed(0)
    alpha, k, rounds = 0.8, 4, 20_000
    kept = (torch.rand(rounds, k, generator=g) < alpha).long().cumprod(dim=1).sum(dim=1).tolist()
    stats = SpeculativeStats(k, proposed=k * rounds, accepted=kept, proposals=[k] * rounds)
    assert abs(stats.conditional_acceptance - alpha) < 0.01
    assert abs(stats.acceptance_rate - sum(alpha ** i for i in range(1, k + 1)) / k) < 0.01  # 0.59, not 0.8


def test_stats_of_a_run_record_each_rounds_proposals():
    target, draft = gpt(0), gpt(1, n_layers=1)
    _, stats = speculative_generate(target, draft, torch.tensor([[3]]), 23, draft_tokens=4)
    assert sum(stats.proposals) == stats.proposed and len(stats.proposals) == stats.target_calls
    assert all(n <= k for n, k in zip(stats.accepted, stats.proposals))
    assert 0 <= stats.acceptance_rate <= stats.conditional_acceptance <= 1
