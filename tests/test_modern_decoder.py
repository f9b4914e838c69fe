"""The options of a modern decoder: RMSNorm, the gated feed-forward network (SwiGLU), rotary base and
position interpolation, grouped-query attention. (That they change nothing at their defaults is
tests/test_default_outputs.py; parity with Hugging Face's Llama is tests/test_interop.py.)"""
import math

import pytest
import torch
import torch.nn.functional as F

from llmbook.attention import MultiHeadAttention
from llmbook.blocks import GatedFeedForward, MoEFeedForward, RMSNorm, load_balancing_loss
from llmbook.kv_cache import LayerKVCache
from llmbook.models import GPT, GPTConfig
from llmbook.positional import RotaryEmbedding

MODERN = dict(norm="rmsnorm", gated_ffn=True, activation="silu", pos_encoding="rope", bias=False, tie_weights=False)


def modern_gpt(**kw):
    torch.manual_seed(0)
    cfg = dict(vocab_size=40, context_length=32, n_layers=2, n_heads=4, d_model=32, d_ff=48, n_kv_heads=2)
    return GPT(GPTConfig(**{**cfg, **MODERN, **kw})).eval()


# ------------------------------------------------------------------------------------- RMSNorm
def test_rms_norm_divides_by_the_root_mean_square_and_keeps_the_mean():
    norm = RMSNorm(4, eps=0.0)
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([1.0, 2.0, 1.0, 0.5]))
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0]])  # mean of squares 30 / 4 = 7.5
    expected = torch.tensor([[1.0, 4.0, 3.0, 2.0]]) / math.sqrt(7.5)
    torch.testing.assert_close(norm(x), expected)
    shifted = norm(x + 10.0)  # LayerNorm would give the same output; RMSNorm does not subtract the mean
    assert not torch.allclose(shifted, norm(x), atol=1e-2)
    assert [name for name, _ in norm.named_parameters()] == ["weight"]  # no bias


def test_rms_norm_eps_and_float16_input():
    norm = RMSNorm(3, eps=1e-6).half()
    x = torch.tensor([[300.0, -400.0, 0.0]], dtype=torch.float16)  # x^2 = 160000 overflows float16
    out = norm(x)
    assert out.dtype == torch.float16 and torch.isfinite(out).all()
    ref = x.double() / (x.double().pow(2).mean() + 1e-6).sqrt()
    torch.testing.assert_close(out.double(), ref, atol=1e-3, rtol=0)


# ------------------------------------------------------------------------- gated feed-forward
def test_gated_feed_forward_is_down_of_silu_gate_times_up():
    torch.manual_seed(0)
    ffn = GatedFeedForward(6, 10)
    x = torch.randn(2, 3, 6, dtype=torch.float64)
    ffn = ffn.double()
    g, u, d = ffn.gate.weight, ffn.up.weight, ffn.down.weight
    a = x @ g.T
    expected = ((a / (1 + torch.exp(-a))) * (x @ u.T)) @ d.T  # silu(a) = a sigmoid(a)
    torch.testing.assert_close(ffn(x), expected)
    assert ffn.gate.bias is None and ffn.down.bias is None  # Llama has no biases


def test_modern_gpt_has_the_llama_layout_of_parameters():
    model = modern_gpt(n_layers=1)
    names = {n: tuple(p.shape) for n, p in model.named_parameters()}
    d, d_head, d_ff = 32, 8, 48
    assert names == {
        "tok_emb.weight": (40, d),
        "blocks.0.attn.in_proj.weight": (d + 2 * 2 * d_head, d),  # W_Q, then 2 key heads, then 2 value heads
        "blocks.0.attn.out_proj.weight": (d, d),
        "blocks.0.norm1.weight": (d,),
        "blocks.0.ff.gate.weight": (d_ff, d), "blocks.0.ff.up.weight": (d_ff, d), "blocks.0.ff.down.weight": (d, d_ff),
        "blocks.0.norm2.weight": (d,),
        "ln_f.weight": (d,),
        "lm_head.weight": (40, d),
    }


# ------------------------------------------------------------------------ rotary: base, interpolation
def test_rotary_base_sets_the_angles():
    rope = RotaryEmbedding(d_head=4, max_len=8, base=100.0)
    # pair i turns by pos * base^(-2i/d): pair 0 by pos, pair 1 by pos / 10
    torch.testing.assert_close(rope.cos[3], torch.tensor([math.cos(3.0), math.cos(0.3)]))
    torch.testing.assert_close(rope.sin[5], torch.tensor([math.sin(5.0), math.sin(0.5)]))


def test_position_interpolation_reads_position_p_as_p_over_the_factor():
    plain = RotaryEmbedding(d_head=8, max_len=16, base=500.0)
    stretched = RotaryEmbedding(d_head=8, max_len=64, base=500.0, scale=4.0)
    torch.testing.assert_close(stretched.cos[::4], plain.cos, atol=0, rtol=0)  # position 4p turns as p did
    torch.testing.assert_close(stretched.sin[::4], plain.sin, atol=0, rtol=0)
    torch.testing.assert_close(stretched.cos[2], torch.cos(torch.tensor(0.5) * 500.0 ** -(torch.arange(0, 8, 2) / 8)))


def test_gpt_config_passes_the_rotary_options_to_every_layer():
    model = modern_gpt(rope_theta=500.0, rope_interpolation=2.0, context_length=32)
    want = RotaryEmbedding(8, 32, base=500.0, scale=2.0)
    for block in model.blocks:
        torch.testing.assert_close(block.attn.rotary.cos, want.cos, atol=0, rtol=0)
    assert not torch.equal(want.cos, RotaryEmbedding(8, 32).cos)


# ------------------------------------------------------------------------ grouped-query attention
def _as_multi_head(gqa: MultiHeadAttention) -> MultiHeadAttention:
    """An ordinary MultiHeadAttention whose key/value heads are copies of gqa's shared ones:
    query head h gets key/value head h // (n_heads / n_kv_heads)."""
    H, G, D = gqa.n_heads, gqa.n_kv_heads, gqa.d_head
    mha = MultiHeadAttention(gqa.d_model, H, bias=gqa.in_proj.bias is not None, rotary=gqa.rotary)
    w_q, w_k, w_v = gqa.in_proj.weight.split([H * D, G * D, G * D])
    b_q, b_k, b_v = gqa.in_proj.bias.split([H * D, G * D, G * D])
    head_of = [h * G // H for h in range(H)]

    def expand(t):  # (G * D, ...) -> (H * D, ...)
        return torch.cat([t[g * D:(g + 1) * D] for g in head_of])

    with torch.no_grad():
        mha.in_proj.weight.copy_(torch.cat([w_q, expand(w_k), expand(w_v)]))
        mha.in_proj.bias.copy_(torch.cat([b_q, expand(b_k), expand(b_v)]))
        mha.out_proj.load_state_dict(gqa.out_proj.state_dict())
    return mha


@pytest.mark.parametrize("n_kv_heads", [1, 2, 3])
@pytest.mark.parametrize("rope", [False, True], ids=["no-rope", "rope"])
def test_grouped_query_attention_is_multi_head_attention_with_shared_key_value_heads(n_kv_heads, rope):
    torch.manual_seed(n_kv_heads)
    rotary = RotaryEmbedding(4, 16) if rope else None
    gqa = MultiHeadAttention(24, 6, rotary=rotary, n_kv_heads=n_kv_heads)
    with torch.no_grad():
        gqa.in_proj.bias.normal_()
    mha = _as_multi_head(gqa)
    x = torch.randn(2, 9, 24)
    pad = torch.ones(2, 1, 1, 9, dtype=torch.bool)
    pad[1, ..., :3] = False
    for kw in (dict(causal=True), dict(mask=pad), dict(causal=True, mask=pad)):
        want, want_w = mha(x, return_attention=True, **kw)
        fast, _ = gqa(x, **kw)
        explicit, weights = gqa(x, return_attention=True, **kw)
        torch.testing.assert_close(fast, want, atol=1e-6, rtol=0)
        torch.testing.assert_close(explicit, want, atol=1e-6, rtol=0)
        torch.testing.assert_close(weights, want_w, atol=1e-6, rtol=0)


def test_grouped_query_fast_path_calls_sdpa_with_the_unrepeated_key_value_heads(monkeypatch):
    calls = []
    sdpa = F.scaled_dot_product_attention

    def spy(q, k, v, **kw):
        calls.append((q.size(1), k.size(1), v.size(1), kw.get("enable_gqa", False)))
        return sdpa(q, k, v, **kw)

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    gqa = MultiHeadAttention(16, 4, n_kv_heads=2)
    gqa(torch.randn(1, 5, 16), causal=True)
    MultiHeadAttention(16, 4)(torch.randn(1, 5, 16), causal=True)
    assert calls == [(4, 2, 2, True), (4, 4, 4, False)]


def test_kv_cache_holds_only_the_key_value_heads():
    model = modern_gpt(n_kv_heads=1)
    cache = model.new_kv_cache()
    model(torch.randint(0, 40, (3, 11)), kv_cache=cache)
    assert cache[0].keys.shape == cache[1].values.shape == (3, 1, 11, 8)  # one head of width 8, not four
    assert cache.nbytes == 2 * 2 * 3 * 1 * 11 * 8 * 4  # K and V, layers, batch, kv heads, tokens, d_head, fp32
    mha_cache = modern_gpt(n_kv_heads=None).new_kv_cache()
    modern_gpt(n_kv_heads=None)(torch.randint(0, 40, (3, 11)), kv_cache=mha_cache)
    assert mha_cache.nbytes == 4 * cache.nbytes


def test_cached_attention_with_shared_heads_equals_full_causal_attention():
    torch.manual_seed(0)
    gqa = MultiHeadAttention(16, 4, rotary=RotaryEmbedding(4, 12), n_kv_heads=2).eval()
    x = torch.randn(2, 10, 16)
    full, _ = gqa(x, causal=True)
    cache = LayerKVCache(12)
    parts = [gqa(x[:, :4], causal=True, kv_cache=cache)[0]]
    parts += [gqa(x[:, t:t + 1], causal=True, kv_cache=cache)[0] for t in range(4, 10)]
    torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=1e-6, rtol=0)
    assert cache.keys.shape == (2, 2, 10, 4)


# ------------------------------------------------------------------------ the whole model
@pytest.mark.parametrize("n_kv_heads", [1, 2, None])
def test_modern_gpt_is_causal_and_generates_the_same_with_and_without_cache(n_kv_heads):
    model = modern_gpt(n_kv_heads=n_kv_heads, rope_theta=1000.0, rope_interpolation=2.0)
    x = torch.randint(0, 40, (2, 16))
    y = x.clone()
    y[:, 9:] = torch.randint(0, 40, (2, 7))
    a, b = model(x).logits, model(y).logits
    torch.testing.assert_close(a[:, :9], b[:, :9])
    assert not torch.allclose(a[:, 9:], b[:, 9:])
    cache = model.new_kv_cache()
    steps = [model(x[:, :5], kv_cache=cache).logits] + [model(x[:, t:t + 1], kv_cache=cache).logits
                                                        for t in range(5, 16)]
    torch.testing.assert_close(torch.cat(steps, dim=1), a, atol=1e-5, rtol=0)
    prompt = x[:, :4]
    cached = model.generate(prompt, 20, temperature=0)
    assert torch.equal(cached, model.generate(prompt, 20, temperature=0, use_cache=False))
    assert len(set(cached[:, 4:].flatten().tolist())) > 3


def test_modern_gpt_left_padded_batch_generates_what_each_prompt_generates_alone():
    model = modern_gpt()
    prompts = [torch.randint(1, 40, (n,), generator=torch.Generator().manual_seed(n)) for n in (6, 3)]
    ids = torch.zeros(2, 6, dtype=torch.long)
    mask = torch.zeros(2, 6, dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, 6 - len(p):], mask[i, 6 - len(p):] = p, 1
    batched = model.generate(ids, 8, temperature=0, attention_mask=mask)
    for i, p in enumerate(prompts):
        assert torch.equal(batched[i, 6:], model.generate(p[None], 8, temperature=0)[0, len(p):])


@pytest.mark.parametrize("option, message", [
    (dict(norm="batchnorm"), "norm='batchnorm'"),
    (dict(n_kv_heads=3), "n_kv_heads=3 must divide n_heads=4"),
    (dict(n_kv_heads=8), "n_kv_heads=8 must divide n_heads=4"),
    (dict(n_kv_heads=0), "n_kv_heads=0"),
    (dict(gated_ffn=True, d_ff=0), "gated_ffn=True needs .* d_ff=0"),
    (dict(rope_theta=1.0, pos_encoding="rope"), "rope_theta=1.0 must be > 1"),
    (dict(rope_interpolation=0.5, pos_encoding="rope"), "rope_interpolation=0.5 must be >= 1"),
    (dict(rope_theta=500.0), "pos_encoding='rope' only, not 'learned'"),
    (dict(rope_interpolation=2.0, pos_encoding="sinusoidal"), "pos_encoding='rope' only, not 'sinusoidal'"),
])
def test_bad_options_are_refused_by_name(option, message):
    with pytest.raises(ValueError, match=message):
        GPTConfig(n_heads=4, d_model=32, **option)


def test_attention_refuses_key_value_heads_that_do_not_divide_the_heads():
    with pytest.raises(ValueError, match="n_kv_heads=4 must divide n_heads=6"):
        MultiHeadAttention(24, 6, n_kv_heads=4)
    with pytest.raises(ValueError, match="rotary scale=0.5 must be >= 1"):
        RotaryEmbedding(8, 16, scale=0.5)


# ------------------------------------------------------------------------ mixture of experts
def _dense_mixture(moe, x):
    """Every expert on every token (float64), then the top_k experts' outputs weighed by the
    renormalised router probabilities (or p itself for top_k = 1): the formula, without routing."""
    tokens = x.reshape(-1, x.size(-1)).double()
    moe = moe.double()
    probs = (tokens @ moe.router.weight.T).softmax(-1)  # (N, E)
    all_out = torch.stack([expert(tokens) for expert in moe.experts], dim=1)  # (N, E, d)
    order = probs.argsort(dim=-1, descending=True)[:, :moe.top_k]
    keep = torch.zeros_like(probs).scatter(1, order, 1.0)
    w = probs * keep
    if moe.top_k > 1:
        w = w / w.sum(-1, keepdim=True)
    return (w[..., None] * all_out).sum(1).view(x.shape)


@pytest.mark.parametrize("top_k, gated", [(1, False), (2, False), (2, True), (4, False)])
def test_moe_output_is_the_weighted_sum_of_the_chosen_experts(top_k, gated):
    torch.manual_seed(top_k)
    moe = MoEFeedForward(8, 12, n_experts=4, top_k=top_k, gated=gated, activation="silu" if gated else "gelu")
    with torch.no_grad():
        moe.router.weight.mul_(20)  # a decided router: the top_k choice is clear-cut
    x = torch.randn(3, 5, 8)
    want = _dense_mixture(moe, x)
    got = moe.float()(x)
    torch.testing.assert_close(got.double(), want, atol=1e-5, rtol=0)
    if top_k == 4:  # every expert chosen: the softmax-weighted average of all experts
        probs = moe.router(x.reshape(-1, 8)).softmax(-1)
        dense = sum(probs[:, e, None] * moe.experts[e](x.reshape(-1, 8)) for e in range(4))
        torch.testing.assert_close(got.reshape(-1, 8), dense, atol=1e-5, rtol=0)


def test_moe_runs_each_expert_on_its_own_tokens_only():
    torch.manual_seed(0)
    moe = MoEFeedForward(8, 12, n_experts=4, top_k=1)
    seen = []
    for e, expert in enumerate(moe.experts):
        expert.register_forward_hook(lambda m, args, out, e=e: seen.append((e, args[0].size(0))))
    x = torch.randn(2, 10, 8)
    moe(x)
    chosen = moe.router(x.reshape(-1, 8)).argmax(-1)
    assert dict(seen) == {e: int((chosen == e).sum()) for e in range(4) if (chosen == e).any()}
    assert sum(n for _, n in seen) == 20  # top_k = 1: each token once


def test_load_balancing_loss_by_hand():
    uniform = torch.full((8, 4), 0.25)
    assert load_balancing_loss(uniform, torch.arange(8)[:, None] % 4).item() == pytest.approx(1.0)
    one_expert = torch.tensor([[1.0, 0.0, 0.0, 0.0]]).expand(8, 4)
    assert load_balancing_loss(one_expert, torch.zeros(8, 1, dtype=torch.long)).item() == pytest.approx(4.0)
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.6, 0.3, 0.1]])
    chosen = torch.tensor([[0, 1], [0, 2]])  # f = (2/4, 1/4, 1/4), P = (0.65, 0.25, 0.1)
    assert load_balancing_loss(probs, chosen).item() == pytest.approx(3 * (0.5 * 0.65 + 0.25 * 0.25 + 0.25 * 0.1))


def test_load_balancing_loss_spreads_tokens_over_the_experts():
    torch.manual_seed(0)
    moe = MoEFeedForward(8, 4, n_experts=4, top_k=1)
    with torch.no_grad():
        moe.router.weight[0] += 1.0  # a router that favours expert 0
    x = torch.randn(256, 1, 8) + 1.0

    def share_of_expert_0():
        return (moe.router(x.reshape(-1, 8)).argmax(-1) == 0).float().mean().item()

    before = share_of_expert_0()
    opt = torch.optim.SGD(moe.router.parameters(), lr=0.5)
    for _ in range(100):
        moe(x)
        opt.zero_grad()
        moe.aux_loss.backward()
        opt.step()
    assert before > 0.9 and share_of_expert_0() < 0.5
    assert moe.aux_loss.item() < 1.2


def test_top_one_routing_still_trains_the_router_through_the_main_loss():
    torch.manual_seed(0)
    moe = MoEFeedForward(8, 12, n_experts=3, top_k=1)
    moe(torch.randn(2, 4, 8)).pow(2).sum().backward()
    assert moe.router.weight.grad.abs().sum() > 0  # the output is p_e FFN_e(x): p carries a gradient


def test_moe_refuses_top_k_outside_the_experts():
    with pytest.raises(ValueError, match=r"top_k=3 must lie in \[1, n_experts=2\]"):
        MoEFeedForward(8, 12, n_experts=2, top_k=3)
    with pytest.raises(ValueError, match="top_k=0"):
        MoEFeedForward(8, 12, n_experts=2, top_k=0)
