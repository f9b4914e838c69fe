"""Speculative decoding: a small draft model guesses a few tokens, the large target model checks
them all in one forward pass.

Greedy version (Leviathan et al., 2023; Chen et al., 2023): the draft proposes k tokens greedily;
the target runs once on them and gives its own greedy choice after every prefix; the longest
prefix of proposals that agrees with the target is kept, followed by the target's own token at the
first disagreement (or after the last proposal, when all agree). Every kept token is therefore the
target's greedy choice, so the output is the target's greedy output, token for token, while the
target runs once per round instead of once per token.

Taught in chapter 7, Inference engineering.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .generate import inference_mode
from .models import check_token_ids


@dataclass
class SpeculativeStats:
    """What one speculative run did. accepted[r] = draft tokens the target kept in round r."""

    draft_tokens: int  # k: tokens the draft proposes per round (fewer near the end)
    proposed: int = 0  # draft tokens proposed in all rounds
    target_calls: int = 0  # forward passes of the target model (one per round)
    draft_calls: int = 0  # forward passes of the draft model
    new_tokens: int = 0  # tokens added to the prompt
    accepted: list[int] = field(default_factory=list)

    @property
    def acceptance_rate(self) -> float:
        """Fraction of proposed draft tokens that the target kept."""
        return sum(self.accepted) / self.proposed if self.proposed else 0.0

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
    _check_pair(target, draft, idx, max_new_tokens, draft_tokens)
    stats = SpeculativeStats(draft_tokens)
    seq = idx
    with inference_mode(target), inference_mode(draft):
        t_cache, d_cache = target.new_kv_cache(), draft.new_kv_cache()
        while stats.new_tokens < max_new_tokens:
            # propose at most what is still wanted: the round also adds one token of the target's own
            k = min(draft_tokens, max_new_tokens - stats.new_tokens - 1)
            proposal = seq
            for _ in range(k):  # the draft feeds whatever its cache has not seen yet
                logits = draft(proposal[:, len(d_cache):], kv_cache=d_cache).logits[:, -1]
                proposal = torch.cat([proposal, logits.argmax(-1, keepdim=True)], dim=1)
                stats.draft_calls += 1
            guesses = proposal[0, seq.size(1):]  # (k,)
            # one target pass over the unseen tokens; its last k + 1 positions judge the guesses
            logits = target(proposal[:, len(t_cache):], kv_cache=t_cache).logits[0, -(k + 1):]
            choice = logits.argmax(-1)  # (k + 1,): the target's greedy token after each prefix
            stats.target_calls += 1
            agree = (guesses == choice[:k]).long()
            n = int(agree.cumprod(0).sum())  # length of the agreeing prefix
            new = torch.cat([guesses[:n], choice[n:n + 1]])  # accepted guesses, then the target's token
            stats.proposed += k
            stats.accepted.append(n)
            if eos_id is not None and bool((new == eos_id).any()):
                new = new[: int((new == eos_id).nonzero()[0]) + 1]
            seq = torch.cat([seq, new[None]], dim=1)
            stats.new_tokens += new.numel()
            # both caches may keep only tokens of seq; the newest token has not been fed to either
            t_cache.crop(min(len(t_cache), seq.size(1) - 1))
            d_cache.crop(min(len(d_cache), seq.size(1) - 1))
            if eos_id is not None and int(new[-1]) == eos_id:
                break
    return seq, stats
