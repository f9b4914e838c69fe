"""Speculative decoding: a small draft model guesses a few tokens, the large target model checks
them all in one forward pass. Greedy (``speculative_generate``) and sampling (``speculative_sample``).

Greedy version (Leviathan et al., 2023; Chen et al., 2023): the draft proposes k tokens greedily;
the target runs once on them and gives its own greedy choice after every prefix; the longest
prefix of proposals that agrees with the target is kept, followed by the target's own token at the
first disagreement (or after the last proposal, when all agree). Every kept token is therefore the
target's greedy choice, so the output is the target's greedy output, token for token, while the
target runs once per round instead of once per token.

Sampling version (the same papers): the draft samples its guesses, and guess x is kept with
probability min(1, p(x) / q(x)), p the target's and q the draft's probability; at the first
rejection a token is drawn from norm(max(0, p - q)). Kept or redrawn, every token then follows the
target's distribution exactly.

Taught in chapter 7, Inference engineering.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .generate import decoding_mode, next_token_probs
from .models import check_token_ids


@dataclass
class SpeculativeStats:
    """What one speculative run did. accepted[r] = draft tokens the target kept in round r, of
    proposals[r] it was offered (k, fewer in the last round)."""

    draft_tokens: int  # k: tokens the draft proposes per round (fewer near the end)
    proposed: int = 0  # draft tokens proposed in all rounds
    target_calls: int = 0  # forward passes of the target model (one per round)
    draft_calls: int = 0  # forward passes of the draft model
    new_tokens: int = 0  # tokens added to the prompt
    accepted: list[int] = field(default_factory=list)
    proposals: list[int] = field(default_factory=list)

    @property
    def acceptance_rate(self) -> float:
        """Fraction of proposed draft tokens that the target kept (accepted / proposed). The tokens after
        a round's first rejection count as rejected though the target never judged them."""
        return sum(self.accepted) / self.proposed if self.proposed else 0.0

    @property
    def conditional_acceptance(self) -> float:
        """alpha: the share of *judged* draft tokens that were kept, accepted / (accepted + rejections),
        a rejection being a round that stopped before its last proposal. It estimates the probability
        that a token is accepted given that all before it in the round were, the alpha of
        E[tokens per round] = (1 - alpha^(k+1)) / (1 - alpha)."""
        judged = sum(n + (n < k) for n, k in zip(self.accepted, self.proposals))
        return sum(self.accepted) / judged if judged else 0.0

    @property
    def tokens_per_target_call(self) -> float:
        """New tokens per forward pass of the target (1.0 for ordinary decoding)."""
        return self.new_tokens / self.target_calls if self.target_calls else 0.0


def _check_pair(target, draft, idx, max_new_tokens, draft_tokens):
    if draft_tokens < 1:
        raise ValueError(f"draft_tokens must be >= 1, got {draft_tokens}")
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if target.config.vocab_size != draft.config.vocab_size:
        raise ValueError(f"target and draft must share a vocabulary, got sizes {target.config.vocab_size} "
                         f"and {draft.config.vocab_size}")
    check_token_ids(idx, target.config.vocab_size, "prompt")
    if idx.size(0) != 1 or idx.size(1) == 0:
        raise ValueError(f"speculative decoding here takes one non-empty prompt of shape (1, T), got "
                         f"{tuple(idx.shape)}")
    block = min(target.config.context_length, draft.config.context_length)
    if idx.size(1) + max_new_tokens > block:
        raise ValueError(f"prompt ({idx.size(1)}) + max_new_tokens ({max_new_tokens}) exceeds the context "
                         f"length {block} of the smaller model")


def speculative_generate(target, draft, idx, max_new_tokens, draft_tokens=4, eos_id=None):
    """Greedy speculative decoding of one prompt idx (1, T); returns (ids (1, T + n), SpeculativeStats).

    The ids equal ``generate(target, idx, max_new_tokens, temperature=0, eos_id=eos_id)`` (up to
    float rounding of near-tied logits, since the target scores several tokens per pass). Both
    models keep a KV cache; the target's is cropped back after each round to drop rejected tokens.
    Raises ValueError for a batch of more than one prompt, draft_tokens < 1, models with different
    vocabularies, or a prompt plus max_new_tokens longer than either context.
    """
    def propose(logits):  # the draft's greedy token (its logits stand in for a distribution: judge ignores them)
        return logits.argmax(-1, keepdim=True), logits[0]

    def judge(target_logits, guesses, _):
        choice = target_logits.argmax(-1)  # (k + 1,): the target's greedy token after each prefix
        agree = (guesses == choice[:len(guesses)]).long()
        n = int(agree.cumprod(0).sum())  # length of the agreeing prefix
        return n, choice[n:n + 1]  # the target's own token at the first disagreement (or after all)

    return _speculate(target, draft, idx, max_new_tokens, draft_tokens, eos_id, propose, judge)


def speculative_sample(target, draft, idx, max_new_tokens, draft_tokens=4, temperature=1.0, top_k=None,
                       top_p=None, min_p=None, generator=None, eos_id=None):
    """Speculative sampling of one prompt idx (1, T); returns (ids (1, T + n), SpeculativeStats).

    The draft samples k tokens from its distribution q; the target scores them in one pass, giving
    its distribution p after each prefix; ``verify_proposals`` keeps draft token x with probability
    min(1, p(x) / q(x)) and, at the first rejection, draws a token from the residual
    norm(max(0, p - q)) instead (after k acceptances, one more from p). Each token of the result is
    then distributed exactly as if sampled from the target (Leviathan et al., 2023; Chen et al.,
    2023): the draft changes the speed, never the distribution. Both distributions come from
    ``next_token_probs`` with the same temperature and filters. Raises ValueError for temperature
    <= 0 (greedy is ``speculative_generate``) and the cases speculative_generate refuses.
    """
    if temperature <= 0:
        raise ValueError(f"speculative sampling needs temperature > 0, got {temperature}; "
                         f"for greedy decoding use speculative_generate")

    def probs(logits):
        return next_token_probs(logits, temperature, top_k, top_p, min_p)

    def propose(logits):
        q = probs(logits)  # (1, V)
        return torch.multinomial(q, 1, generator=generator), q[0]

    def judge(target_logits, guesses, draft_probs):
        uniforms = torch.rand(len(guesses), generator=generator, device=guesses.device)
        n, dist = verify_proposals(probs(target_logits), draft_probs, guesses, uniforms)
        return n, torch.multinomial(dist, 1, generator=generator)

    return _speculate(target, draft, idx, max_new_tokens, draft_tokens, eos_id, propose, judge)


def acceptance_probability(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """min(1, p / q), elementwise: the chance that a token the draft drew (probability q) is kept,
    where the target gives it p. A token with q = 0 is never drawn; it gets 1."""
    return torch.where(q > 0, p / q.clamp(min=torch.finfo(q.dtype).tiny), torch.ones_like(p)).clamp(max=1.0)


def residual_distribution(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """norm(max(0, p - q)) over the last dimension: what to sample after a rejection.

    It puts mass where the target wants more than the draft offers; with the accepted tokens that
    makes exactly p. A rejection is impossible when p = q (all zero here), so p itself is returned.
    """
    excess = (p - q).clamp(min=0.0)
    total = excess.sum(dim=-1, keepdim=True)
    return torch.where(total > 0, excess / total.clamp(min=torch.finfo(p.dtype).tiny), p)


def verify_proposals(p, q, guesses, uniforms):
    """One round's verdict on k draft tokens; returns (n accepted, distribution of the next token).

    p: (k + 1, V) the target's probabilities after each prefix; q: (k, V) the draft's, from which
    guesses (k,) were drawn; uniforms (k,): independent U[0, 1) draws. Guess i is accepted when
    uniforms[i] < min(1, p_i(x_i) / q_i(x_i)), which happens with exactly that probability; the
    round stops at the first rejection. The next token is drawn from residual_distribution(p_n, q_n)
    after a rejection at n, or from p_k when all k are accepted.
    """
    k = len(guesses)
    if p.shape[0] != k + 1 or q.shape[0] != k or len(uniforms) != k:
        raise ValueError(f"need p (k + 1, V), q (k, V) and k uniforms for k = {k} guesses, got p "
                         f"{tuple(p.shape)}, q {tuple(q.shape)}, {len(uniforms)} uniforms")
    accept = acceptance_probability(p[:k], q).gather(-1, guesses[:, None])[:, 0]  # (k,)
    n = int((uniforms < accept).long().cumprod(0).sum())  # accepted until the first rejection
    return n, (p[k] if n == k else residual_distribution(p[n], q[n]))


def _speculate(target, draft, idx, max_new_tokens, draft_tokens, eos_id, propose, judge):
    """The rounds both versions share: the draft proposes k tokens one at a time (propose(logits
    (1, V)) -> (token (1, 1), its distribution (V,))); the target scores them all in one pass;
    judge(target logits (k + 1, V), guesses (k,), draft distributions (k, V)) -> (n accepted, next
    token (1,)) decides which are kept. Caches are cropped to the kept tokens."""
    _check_pair(target, draft, idx, max_new_tokens, draft_tokens)
    stats = SpeculativeStats(draft_tokens)
    seq = idx
    with decoding_mode(target, draft):
        t_cache, d_cache = target.new_kv_cache(), draft.new_kv_cache()
        while stats.new_tokens < max_new_tokens:
            # propose at most what is still wanted: the round also adds one token of the target's own
            k = min(draft_tokens, max_new_tokens - stats.new_tokens - 1)
            proposal, draft_probs = seq, []
            for _ in range(k):  # the draft feeds whatever its cache has not seen yet
                logits = draft(proposal[:, len(d_cache):], kv_cache=d_cache).logits[:, -1]
                token, q = propose(logits)
                proposal = torch.cat([proposal, token], dim=1)
                draft_probs.append(q)
                stats.draft_calls += 1
            guesses = proposal[0, seq.size(1):]  # (k,)
            # one target pass over the unseen tokens; its last k + 1 positions judge the guesses
            logits = target(proposal[:, len(t_cache):], kv_cache=t_cache).logits[0, -(k + 1):]
            stats.target_calls += 1
            q = torch.stack(draft_probs) if draft_probs else logits.new_zeros(0, logits.size(-1))
            n, nxt = judge(logits, guesses, q)
            new = torch.cat([guesses[:n], nxt])  # accepted guesses, then the target's token
            stats.proposed += k
            stats.accepted.append(n)
            stats.proposals.append(k)
            if eos_id is not None and bool((new == eos_id).any()):
                new = new[: int((new == eos_id).nonzero()[0]) + 1]
            seq = torch.cat([seq, new[None]], dim=1)
            stats.new_tokens += new.numel()
            # both caches may keep only tokens of seq; the newest token has not been fed to either
            t_cache.crop(min(len(t_cache), seq.size(1) - 1))
            d_cache.crop(min(len(d_cache), seq.size(1) - 1))
            if eos_id is not None and int(new[-1]) == eos_id:
                break
    return seq.clone(), stats  # clone: an ordinary tensor again, which training can use
