"""The mixture-of-experts experiment at tiny size: the variants are built as described (same active
parameters, same total parameters), and a run returns what chapter 8 reads."""
import pytest
import torch

from llmbook.blocks import FeedForward, MoEFeedForward
from llmbook.experiments import mixture_of_experts as moe
from llmbook.models import count_parameters


def test_variants_have_the_stated_active_and_total_parameters():
    dense = moe.build("dense", vocab_size=30, n_experts=4, seed=0)
    routed = moe.build("moe", vocab_size=30, n_experts=4, seed=0)
    wide = moe.build("dense, wide", vocab_size=30, n_experts=4, seed=0)
    for block in routed.blocks:
        assert isinstance(block.ff, MoEFeedForward) and len(block.ff.experts) == 4 and block.ff.top_k == 1
    assert (routed.config.n_experts, routed.config.moe_top_k, dense.config.n_experts) == (4, 1, 0)  # the option
    unbalanced = moe.build("moe, no balancing", vocab_size=30, n_experts=4, seed=0)
    for a, b in zip(routed.state_dict().values(), unbalanced.state_dict().values()):
        assert torch.equal(a, b)  # one model: the two routed variants differ only in their training loss
    d = 64
    router = d * 4  # no bias
    # one expert is exactly the dense model's feed-forward network: active parameters = dense + router
    one_expert = count_parameters(routed.blocks[0].ff.experts[0])
    assert one_expert == count_parameters(dense.blocks[0].ff) == 2 * d * 4 * d + 4 * d + d
    assert count_parameters(routed) == count_parameters(dense) + 2 * (3 * one_expert + router)
    assert routed.num_active_parameters() == dense.num_active_parameters() + 2 * router  # a token: one expert + router
    # the wide model's one network has 4 times the hidden units: the experts' weights, with one output bias
    assert isinstance(wide.blocks[0].ff, FeedForward) and wide.blocks[0].ff.fc1.out_features == 4 * 4 * d
    assert count_parameters(routed) - count_parameters(wide) == 2 * (router + 3 * d)
    # experts start at GPT-2's scale (std 0.02), not PyTorch's default
    assert 0.015 < routed.blocks[0].ff.experts[2].fc1.weight.std().item() < 0.025


def test_unknown_variant_is_refused():
    with pytest.raises(ValueError, match="unknown variant 'sparse'"):
        moe.build("sparse", vocab_size=30, n_experts=4, seed=0)


def test_a_tiny_run_records_losses_loads_and_the_balancing_loss():
    torch.manual_seed(0)
    data = moe.run(steps=4, seeds=(0,), n_experts=4, variants=("dense", "moe", "moe, no balancing"), eval_every=2)
    runs = {r["variant"]: r for r in data["runs"]}
    assert set(runs) == {"dense", "moe", "moe, no balancing"} and data["settings"]["n_experts"] == 4
    for r in runs.values():
        assert r["step"] == [2, 4] and len(r["valid_loss"]) == 2
        assert all(0 < v < 6 for v in r["valid_loss"])  # below ln(vocabulary) + a margin: a real loss
    assert runs["dense"]["expert_load"] == [] and runs["dense"]["aux_loss"] == [None, None]
    for name in ("moe", "moe, no balancing"):
        load = runs[name]["expert_load"]
        assert len(load) == 2 and all(len(row) == 4 and sum(row) == 64 * 64 for row in load)  # every token once
        assert all(0.5 <= a <= 4.0 for a in runs[name]["aux_loss"])  # 1 = uniform, n_experts = one expert


def test_straight_through_weight_is_one_forward_and_passes_the_router_gradient():
    torch.manual_seed(0)
    plain = MoEFeedForward(8, 16, n_experts=4, top_k=1)
    st = moe.StraightThroughMoE(8, 16, n_experts=4, top_k=1)
    st.load_state_dict(plain.state_dict())
    x = torch.randn(2, 5, 8)
    tokens = x.reshape(-1, 8)
    chosen = plain.router(tokens).argmax(-1)
    unweighted = torch.stack([plain.experts[int(e)](t) for t, e in zip(tokens, chosen)]).view_as(x)
    out = st(x)
    assert torch.allclose(out, unweighted, atol=1e-6)  # forward: the chosen expert's output, weight 1
    assert not torch.allclose(plain(x), unweighted, atol=1e-3)  # while the Switch layer scales it by p_e < 1
    out.pow(2).sum().backward()
    assert st.router.weight.grad is not None and st.router.weight.grad.abs().sum() > 0


def test_straight_through_variant_starts_from_the_moe_weights():
    a = moe.build("moe", 20, 4, seed=3, d_model=16, context_length=8)
    b = moe.build("moe, straight-through", 20, 4, seed=3, d_model=16, context_length=8)
    assert all(isinstance(blk.ff, moe.StraightThroughMoE) for blk in b.blocks)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
