"""Decoding strategies: filters, sampling, greedy special cases, and beam search."""
import pytest
import torch

from llmbook.generate import (
    beam_search,
    min_p_filter,
    next_token_probs,
    sample_next_token,
    top_k_filter,
    top_p_filter,
)
from llmbook.models import GPT, GPTConfig


def test_top_k_keeps_exactly_the_k_largest():
    logits = torch.tensor([[1.0, 5.0, 3.0, 4.0, 2.0]])
    kept = top_k_filter(logits, 2)
    assert torch.isfinite(kept).tolist() == [[False, True, False, True, False]]
    assert kept[0, 1] == 5.0 and kept[0, 3] == 4.0


def test_top_p_keeps_the_smallest_set_reaching_p():
    probs = torch.tensor([[0.1, 0.5, 0.2, 0.2]])
    logits = probs.log()
    assert torch.isfinite(top_p_filter(logits, 0.5)).tolist() == [[False, True, False, False]]
    kept = torch.isfinite(top_p_filter(logits, 0.65))[0].tolist()
    assert kept[1] and sum(kept) == 2  # 0.5 + one of the 0.2s reaches 0.65
    assert torch.isfinite(top_p_filter(logits, 1.0)).all()
    with pytest.raises(ValueError, match="1.5"):
        top_p_filter(logits, 1.5)


def test_top_k_one_and_temperature_zero_are_greedy():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(64, 100, generator=g)
    greedy = logits.argmax(-1, keepdim=True)
    assert torch.equal(sample_next_token(logits, temperature=0), greedy)
    assert torch.equal(sample_next_token(logits, temperature=1.3, top_k=1, generator=g), greedy)


def test_sampling_frequencies_follow_softmax_of_logits_over_temperature():
    g = torch.Generator().manual_seed(0)
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0])
    T = 0.7
    draws = sample_next_token(logits.expand(40000, 4), temperature=T, generator=g)[:, 0]
    freq = torch.bincount(draws, minlength=4).float() / 40000
    torch.testing.assert_close(freq, (logits / T).softmax(-1), atol=0.01, rtol=0)


def test_seeded_sampling_is_reproducible_through_the_model():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=30, context_length=40, n_layers=1, n_heads=2, d_model=16))
    prompt = torch.zeros(2, 3, dtype=torch.long)
    a = model.generate(prompt, 20, top_p=0.9, generator=torch.Generator().manual_seed(5))
    b = model.generate(prompt, 20, top_p=0.9, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    assert model.training  # generate restores the mode it found


def test_beam_search_beats_greedy_when_greedy_is_short_sighted():
    """Token 1 looks best first (0.6 vs 0.4) but every continuation after it is poor."""
    eos = 3  # vocabulary of 4 tokens
    def step(seqs):
        rows = []
        for s in seqs.tolist():
            if len(s) == 1:
                p = [0.0, 0.6, 0.4, 0.0]
            elif s[1] == 1 and len(s) == 2:
                p = [0.25, 0.25, 0.25, 0.25]
            elif s[1] == 2 and len(s) == 2:
                p = [0.0, 0.0, 0.0, 1.0]
            else:
                p = [0.0, 0.0, 0.0, 1.0]
            rows.append(torch.tensor(p).clamp_min(1e-9).log())
        return torch.stack(rows)

    best = beam_search(step, torch.tensor([0]), beam_size=2, max_new_tokens=4, eos_id=eos, length_penalty=0.0)
    greedy = beam_search(step, torch.tensor([0]), beam_size=1, max_new_tokens=4, eos_id=eos, length_penalty=0.0)
    assert best.tolist() == [0, 2, 3]  # probability 0.4 * 1.0 = 0.4
    assert greedy.tolist()[:2] == [0, 1]  # greedy commits to 0.6, then at most 0.6 * 0.25


def test_seq2seq_decoding_restores_training_mode_and_records_no_graph():
    from llmbook.models import Seq2Seq, Seq2SeqConfig

    torch.manual_seed(0)
    model = Seq2Seq(Seq2SeqConfig(src_vocab_size=20, tgt_vocab_size=20, context_length=12, d_model=16, n_heads=2))
    src = torch.randint(3, 20, (2, 5))
    out = model.greedy_decode(src, 6)
    beams = model.beam_search(src, beam_size=2, max_new_tokens=6)
    assert model.training
    assert not out.requires_grad and not beams[0].requires_grad


def test_min_p_keeps_tokens_within_a_factor_of_the_top_probability():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    logits = probs.log()
    assert torch.isfinite(min_p_filter(logits, 0.2)).tolist() == [[True, True, True, False]]  # cut at 0.1
    assert torch.isfinite(min_p_filter(logits, 0.7)).tolist() == [[True, False, False, False]]  # cut at 0.35
    assert torch.isfinite(min_p_filter(logits, 0.0)).all()
    flat = torch.zeros(1, 5)  # a model that is unsure keeps every candidate
    assert torch.isfinite(min_p_filter(flat, 0.9)).all()
    with pytest.raises(ValueError, match="min_p must lie in \\[0, 1\\], got 1.5"):
        min_p_filter(logits, 1.5)


def test_min_p_sampling_draws_from_the_kept_tokens_renormalised():
    g = torch.Generator().manual_seed(0)
    logits = torch.tensor([0.5, 0.3, 0.15, 0.05]).log()
    draws = sample_next_token(logits.expand(40000, 4), min_p=0.2, generator=g)[:, 0]
    freq = torch.bincount(draws, minlength=4).float() / 40000
    torch.testing.assert_close(freq, torch.tensor([0.5, 0.3, 0.15, 0.0]) / 0.95, atol=0.01, rtol=0)
    probs = next_token_probs(logits[None], temperature=1.0, min_p=0.2)
    torch.testing.assert_close(probs[0], torch.tensor([0.5, 0.3, 0.15, 0.0]) / 0.95)


def test_min_p_one_through_the_model_is_greedy():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=30, context_length=40, n_layers=1, n_heads=2, d_model=16))
    prompt = torch.zeros(2, 3, dtype=torch.long)
    greedy = model.generate(prompt, 15, temperature=0)
    assert torch.equal(model.generate(prompt, 15, min_p=1.0, generator=torch.Generator().manual_seed(1)), greedy)
    sampled = model.generate(prompt, 15, min_p=0.05, generator=torch.Generator().manual_seed(1))
    assert not torch.equal(sampled, greedy)  # a loose cut-off still samples


def test_generated_ids_can_be_trained_on_and_restore_training_mode():
    # generate runs under torch.inference_mode; its output must still be an ordinary tensor
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=11, context_length=16, n_layers=1, n_heads=2, d_model=8))
    model.train()
    ids = model.generate(torch.tensor([[1, 2]]), 6, temperature=1.0)
    assert model.training and not ids.is_inference()
    loss = model(ids[:, :-1], targets=ids[:, 1:]).loss
    loss.backward()  # raises "Inference tensors cannot be saved for backward" if ids were one
    assert model.tok_emb.weight.grad is not None


def test_a_cache_passed_to_generate_can_be_extended_afterwards():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=11, context_length=16, n_layers=1, n_heads=2, d_model=8)).eval()
    cache = model.new_kv_cache()
    ids = model.generate(torch.tensor([[1, 2]]), 4, temperature=0, kv_cache=cache)
    with torch.no_grad():  # outside inference mode: writing into the cache must still work
        step = model(ids[:, -1:], kv_cache=cache).logits
        full = model(ids).logits
    assert len(cache) == ids.size(1)  # generate cached all but the last token; this step added it
    assert torch.allclose(step[:, -1], full[:, -1], atol=1e-5)
