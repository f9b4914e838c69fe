"""Speculative decoding: the output is the target's greedy output, the statistics add up, and the
KV cache can be cropped back."""
import pytest
import torch

from llmbook.generate import generate
from llmbook.kv_cache import KVCache
from llmbook.models import GPT, GPTConfig
from llmbook.speculative import speculative_generate


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
