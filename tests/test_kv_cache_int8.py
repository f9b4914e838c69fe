"""The int8 KV cache: each cached vector is within half a quantisation step of the original, it costs
d_head + 4 bytes instead of 4 * d_head, and a model reading it predicts almost what it predicts from
the float cache."""
import pytest
import torch

from llmbook.kv_cache import Int8LayerKVCache, KVCache, quantize_vectors
from llmbook.models import GPT, GPTConfig


def small_gpt(**kw):
    torch.manual_seed(0)
    cfg = dict(vocab_size=50, context_length=40, n_layers=2, n_heads=4, d_model=32)
    return GPT(GPTConfig(**{**cfg, **kw})).eval()


def test_quantize_vectors_rounds_each_vector_to_its_own_grid():
    x = torch.tensor([[0.5, -1.27, 0.0], [0.0, 0.0, 0.0], [254.0, 1.0, -127.0]])
    q, scale = quantize_vectors(x)
    assert scale.squeeze(-1).tolist() == pytest.approx([0.01, 1.0, 2.0])
    assert q.tolist() == [[50, -127, 0], [0, 0, 0], [127, 0, -64]]  # 1/2 -> 0 and -127/2 -> -64: round half to even
    assert ((q.float() * scale - x).abs() <= scale / 2 + 1e-6).all()


def test_layer_cache_returns_what_was_appended_within_half_a_step():
    g = torch.Generator().manual_seed(0)
    k, v = torch.randn(2, 3, 5, 8, generator=g), torch.randn(2, 3, 5, 8, generator=g) * 10
    layer = Int8LayerKVCache(max_len=9)
    layer.append(k[:, :, :4], v[:, :, :4])
    keys, values = layer.append(k[:, :, 4:], v[:, :, 4:])
    for got, want in ((keys, k), (values, v)):
        step = want.abs().amax(-1, keepdim=True) / 127
        assert got.dtype == want.dtype and got.shape == want.shape
        assert ((got - want).abs() <= step / 2 + 1e-6).all()
    assert layer.nbytes == 2 * (2 * 3 * 5 * 8 + 4 * 2 * 3 * 5)  # int8 values + one float32 scale per vector
    layer.crop(2)
    assert layer.keys.shape == (2, 3, 2, 8)
    with pytest.raises(ValueError, match="at most 9 positions"):
        layer.append(torch.zeros(2, 3, 8, 8), torch.zeros(2, 3, 8, 8))


def test_int8_cache_is_about_four_times_smaller_than_fp32_and_predicts_almost_the_same():
    model = small_gpt(n_kv_heads=2)
    prompt = torch.randint(0, 50, (2, 12), generator=torch.Generator().manual_seed(1))
    float_cache, int8_cache = model.new_kv_cache(), KVCache(2, 40, int8=True)
    with torch.no_grad():
        want = model(prompt, kv_cache=float_cache).logits
        got = model(prompt, kv_cache=int8_cache).logits
        step = torch.tensor([[3]])
        want_next = model(step.expand(2, 1), kv_cache=float_cache).logits
        got_next = model(step.expand(2, 1), kv_cache=int8_cache).logits
    # d_head = 8: 8 + 4 bytes per vector against 32
    assert int8_cache.nbytes * 32 == float_cache.nbytes * 12
    for g, w in ((got, want), (got_next, want_next)):  # attention reads the dequantised keys, prompt included
        assert 0 < (g - w).abs().max() < 0.02 * w.abs().max()


def test_generate_fills_an_int8_cache():
    model = small_gpt()
    prompt = torch.randint(0, 50, (1, 5), generator=torch.Generator().manual_seed(3))
    cache = KVCache(model.config.n_layers, model.config.context_length, int8=True)
    out = model.generate(prompt, 10, temperature=0, kv_cache=cache)
    assert out.shape == (1, 15) and len(cache) == 14
    assert cache[0].keys.dtype == torch.float32
