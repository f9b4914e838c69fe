"""A mixture of experts as a GPTConfig option (n_experts, moe_top_k): validation, the blocks it builds,
the load-balancing loss in ModelOutput.aux_loss, generation, parameter counts and training.

That the option leaves every default model bit for bit as it was is tests/test_default_outputs.py's job
(its reference was recorded before the option existed)."""
import pytest
import torch
import torch.nn.functional as F

from llmbook.blocks import FeedForward, GatedFeedForward, MoEFeedForward
from llmbook.models import BERT, GPT, BERTConfig, GPTConfig
from llmbook.train import TrainConfig, load_checkpoint, save_checkpoint, train

SMALL = dict(vocab_size=20, context_length=16, n_layers=2, n_heads=2, d_model=16, d_ff=32)


def _moe_gpt(seed=0, **options):
    torch.manual_seed(seed)
    return GPT(GPTConfig(**{**SMALL, "n_experts": 4, "moe_top_k": 2, **options}))


def _ids(seed=1, shape=(2, 10)):
    return torch.randint(0, SMALL["vocab_size"], shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("options, message", [
    (dict(n_experts=4, moe_top_k=5), r"moe_top_k=5 must lie in \[1, n_experts=4\]"),
    (dict(n_experts=4, moe_top_k=0), r"moe_top_k=0 must lie in \[1, n_experts=4\]"),
    (dict(n_experts=4, d_ff=0), "n_experts=4 needs a feed-forward network, but d_ff=0"),
    (dict(moe_top_k=1), "moe_top_k=1 applies to a mixture of experts only, but n_experts=0"),
    (dict(n_experts=-2), "n_experts=-2 must not be negative"),
])
def test_impossible_settings_are_refused_with_the_values(options, message):
    with pytest.raises(ValueError, match=message):
        GPTConfig(**{**SMALL, **options})


@pytest.mark.parametrize("gated, expert_class", [(False, FeedForward), (True, GatedFeedForward)])
def test_every_block_gets_a_mixture_of_the_configured_experts(gated, expert_class):
    model = _moe_gpt(n_experts=3, moe_top_k=1, gated_ffn=gated, activation="silu", bias=False)
    for block in model.blocks:
        assert isinstance(block.ff, MoEFeedForward) and block.ff.top_k == 1 and len(block.ff.experts) == 3
        assert all(type(e) is expert_class for e in block.ff.experts)
        assert block.ff.router.weight.shape == (3, 16)
        assert block.ff.experts[0].down.in_features == 32 if gated else block.ff.experts[0].fc1.out_features == 32
    dense = GPT(GPTConfig(**SMALL))
    assert all(type(b.ff) is FeedForward for b in dense.blocks)
    # experts and router are initialised like every other linear layer (std 0.02), not by PyTorch's default
    weights = torch.cat([e.up.weight.flatten() if gated else e.fc1.weight.flatten()
                         for b in model.blocks for e in b.ff.experts])
    assert 0.017 < weights.std().item() < 0.023


def _balancing_by_hand(router_logits, top_k):
    """E * sum_e f_e P_e with explicit loops: f_e = share of the top_k picks on e, P_e = mean probability."""
    probs = router_logits.softmax(-1).double()
    n_tokens, n_experts = probs.shape
    picks = [e for row in probs for e in sorted(range(n_experts), key=lambda j: -row[j])[:top_k]]
    return n_experts * sum(picks.count(e) / len(picks) * probs[:, e].mean() for e in range(n_experts))


@pytest.mark.parametrize("top_k", [1, 2])
def test_aux_loss_is_the_mean_balancing_loss_of_the_layers_and_loss_is_the_cross_entropy(top_k):
    model = _moe_gpt(moe_top_k=top_k)
    logits_seen = []
    for block in model.blocks:
        block.ff.router.register_forward_hook(lambda m, args, out: logits_seen.append(out.detach()))
    ids = _ids()
    out = model(ids[:, :-1], targets=ids[:, 1:])
    want = sum(_balancing_by_hand(lg, top_k) for lg in logits_seen) / 2
    assert len(logits_seen) == 2 and out.aux_loss.item() == pytest.approx(want.item(), rel=1e-5)
    # .loss is the language model's cross-entropy alone, not loss + weight * aux_loss
    ce = F.cross_entropy(out.logits.reshape(-1, 20), ids[:, 1:].reshape(-1))
    assert out.loss.item() == pytest.approx(ce.item(), rel=1e-6)


def test_models_without_experts_return_no_aux_loss():
    ids = _ids()
    torch.manual_seed(0)
    assert GPT(GPTConfig(**SMALL))(ids).aux_loss is None
    bert = BERT(BERTConfig(vocab_size=20, context_length=16, n_heads=2, d_model=16, d_ff=32, num_labels=2))
    out = bert(ids, class_labels=torch.tensor([0, 1]))
    assert out.aux_loss is None and out.class_logits.shape == (2, 2)  # BERTOutput's own fields in place


def test_the_router_gets_its_gradient_from_the_aux_loss():
    model = _moe_gpt()
    model(_ids()).aux_loss.backward()
    last = model.blocks[-1]
    assert last.ff.router.weight.grad.abs().sum() > 0
    # the balancing loss depends on the routers only: the last layer's experts do not feed any router
    assert all(p.grad is None for p in last.ff.experts.parameters())


@pytest.mark.parametrize("options", [dict(moe_top_k=1), dict(moe_top_k=2),
                                     dict(moe_top_k=2, gated_ffn=True, activation="silu", pos_encoding="rope")])
def test_cached_and_uncached_generation_agree(options):
    model = _moe_gpt(seed=3, **options).eval()
    with torch.no_grad():  # a decided router, so every token clearly prefers some experts
        for block in model.blocks:
            block.ff.router.weight.mul_(50)
    prompt = _ids(seed=4, shape=(2, 3))
    cached = model.generate(prompt, 10, temperature=0, use_cache=True)
    uncached = model.generate(prompt, 10, temperature=0, use_cache=False)
    assert cached.shape == (2, 13) and torch.equal(cached, uncached)
    with torch.no_grad():  # step by step through the cache gives the logits of one full pass
        cache = model.new_kv_cache()
        steps = [model(cached[:, :3], kv_cache=cache).logits] + [
            model(cached[:, t:t + 1], kv_cache=cache).logits for t in range(3, 12)]
        torch.testing.assert_close(torch.cat(steps, 1), model(cached[:, :12]).logits, atol=1e-5, rtol=1e-4)


def test_total_and_active_parameters_by_hand():
    model = _moe_gpt()  # d = 16, d_ff = 32, 4 experts, top-2, 2 layers, vocabulary 20, context 16, tied
    d, d_ff, experts, vocab, context = 16, 32, 4, 20, 16
    expert = (d * d_ff + d_ff) + (d_ff * d + d)  # fc1 and fc2 with biases
    router = d * experts  # no bias
    attention = 4 * (d * d + d)  # query, key, value, output
    norms = 2 * 2 * d
    layer = attention + norms + router + experts * expert
    embeddings = vocab * d + context * d  # token and learned positions; the output layer is tied
    total = 2 * layer + embeddings + 2 * d  # + the final LayerNorm
    active = total - 2 * (experts - 2) * expert  # a token passes through 2 of the 4 experts
    assert (model.num_parameters(), model.num_active_parameters()) == (total, active) == (11616, 7328)
    assert model.num_active_parameters(non_embedding=True) == active - embeddings
    dense = GPT(GPTConfig(**SMALL))
    assert dense.num_active_parameters() == dense.num_parameters() == total - 2 * (router + 3 * expert)


def _batches(step):
    ids = _ids(seed=step, shape=(4, 9))
    return ids[:, :-1], ids[:, 1:]


def test_train_adds_the_weighted_aux_loss_and_records_it():
    cfg = dict(steps=1, lr=1e-2, warmup_steps=0, grad_clip=None, progress=False, log_every=0, device="cpu")
    runs = {}
    for weight in (0.0, 1.0):
        model = _moe_gpt()
        history = train(model, _batches, TrainConfig(**cfg, aux_loss_weight=weight))
        runs[weight] = (model, history)
    (plain, h0), (balanced, h1) = runs[0.0], runs[1.0]
    assert len(h1.aux_loss) == 1 and 0.5 < h1.aux_loss[0] < 4 and h0.loss == h1.loss  # .loss: the LM loss alone
    # only what lies upstream of a router feels the aux loss: the routers move differently ...
    for a, b in zip(plain.blocks, balanced.blocks):
        assert not torch.equal(a.ff.router.weight, b.ff.router.weight)
    # ... the last layer's experts and the final norm, downstream of every router, do not
    for a, b in zip(plain.blocks[-1].ff.parameters(), balanced.blocks[-1].ff.parameters()):
        assert a.shape == b.shape and (a is plain.blocks[-1].ff.router.weight or torch.equal(a, b))
    assert torch.equal(plain.ln_f.weight, balanced.ln_f.weight)
    dense_history = train(GPT(GPTConfig(**SMALL)), _batches, TrainConfig(**cfg))
    assert dense_history.aux_loss == []


def test_negative_aux_loss_weight_is_refused():
    with pytest.raises(ValueError, match="aux_loss_weight=-0.1 must be >= 0"):
        TrainConfig(steps=1, aux_loss_weight=-0.1)


def test_checkpoint_of_a_mixture_of_experts_round_trips(tmp_path):
    model = _moe_gpt(moe_top_k=1).eval()
    save_checkpoint(tmp_path / "moe.pt", model)
    loaded = load_checkpoint(tmp_path / "moe.pt").eval()
    assert loaded.config.n_experts == 4 and loaded.config.moe_top_k == 1
    ids = _ids()
    with torch.no_grad():
        assert torch.equal(loaded(ids).logits, model(ids).logits)
