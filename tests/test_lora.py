"""LoRA adapters: the start is the base model, merging changes nothing, only the adapters train."""
import pytest
import torch
import torch.nn as nn

from llmbook.lora import LoRALinear, apply_lora, merge_lora, trainable_parameters
from llmbook.models import GPT, GPTConfig


def small_gpt():
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=20, context_length=16, d_model=32, n_heads=4, n_layers=2))


def lora_linear_names(model):
    return [name for name, m in model.named_modules() if isinstance(m, LoRALinear)]


def test_with_b_zero_the_adapted_model_computes_exactly_the_base_output():
    model = small_gpt()
    ids = torch.randint(0, 20, (3, 10), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        before = model(ids).logits.clone()
        apply_lora(model, rank=4, alpha=8, targets=[r"attn", r"ff"])
        after = model(ids).logits
    assert lora_linear_names(model)  # something was adapted
    assert torch.equal(before, after)


def test_merged_and_unmerged_outputs_agree():
    model = small_gpt()
    apply_lora(model, rank=2, alpha=4, targets="attn")
    torch.manual_seed(3)
    for m in model.modules():
        if isinstance(m, LoRALinear):
            nn.init.normal_(m.B, std=0.5)  # a trained-looking, non-zero update
    ids = torch.randint(0, 20, (2, 12), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        base = small_gpt()(ids).logits
        unmerged = model(ids).logits.clone()
        merge_lora(model)
        merged = model(ids).logits
    assert not lora_linear_names(model)
    assert (unmerged - base).abs().max() > 1e-2  # the update does change the model
    assert (merged - unmerged).abs().max() < 1e-6


def test_the_update_is_b_a_scaled_by_alpha_over_rank():
    torch.manual_seed(0)
    base = nn.Linear(6, 5)
    layer = LoRALinear(base, rank=2, alpha=3.0)
    nn.init.normal_(layer.B)
    x = torch.randn(4, 6, dtype=torch.float64)
    layer = layer.double()
    by_hand = x @ (base.weight.double() + 1.5 * layer.B @ layer.A).T + base.bias.double()
    assert torch.allclose(layer(x), by_hand, atol=1e-12)


def test_only_adapters_require_gradients_and_count_is_r_times_din_plus_dout():
    model = small_gpt()
    names = apply_lora(model, rank=3, alpha=3, targets=[r"blocks\.0\."])
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(n.endswith((".A", ".B")) for n in trainable)
    expected = sum(3 * (model.get_submodule(n).base.in_features + model.get_submodule(n).base.out_features)
                   for n in names)
    assert trainable_parameters(model) == expected
    ids = torch.randint(0, 20, (2, 8))
    model(ids, targets=ids).loss.backward()
    for n, p in model.named_parameters():
        assert (p.grad is not None) == p.requires_grad, n


def test_the_tied_output_layer_is_left_alone():
    model = small_gpt()
    names = apply_lora(model, rank=2, alpha=2, targets=[r".*"])
    assert "lm_head" not in names and isinstance(model.lm_head, nn.Linear)


@pytest.mark.parametrize("rank", [0, -1, 33, 2.0])
def test_bad_rank_is_refused_with_the_limit(rank):
    with pytest.raises(ValueError, match=r"rank=.*1\.\.32"):
        LoRALinear(nn.Linear(32, 64), rank=rank, alpha=1)


def test_bad_alpha_base_and_targets_are_refused():
    with pytest.raises(ValueError, match="alpha=0"):
        LoRALinear(nn.Linear(4, 4), rank=1, alpha=0)
    with pytest.raises(TypeError, match="Conv1d"):
        LoRALinear(nn.Conv1d(4, 4, 1), rank=1, alpha=1)
    with pytest.raises(ValueError, match="match no untied nn.Linear"):
        apply_lora(small_gpt(), rank=1, alpha=1, targets="no_such_layer")
    with pytest.raises(ValueError, match="targets is empty"):
        apply_lora(small_gpt(), rank=1, alpha=1, targets=[])


def test_rank_16_on_the_shipped_gpt_matches_the_count_of_exercise_10_4():
    from llmbook import pretrained

    gpt, _ = pretrained.load("shakespeare-gpt")
    d, layers = gpt.config.d_model, gpt.config.n_layers
    apply_lora(gpt, rank=16, alpha=32, targets=[r"attn\.(in|out)_proj"])
    # per layer: in_proj d -> 3d and out_proj d -> d, each r (d_in + d_out)
    assert (d, layers) == (256, 4)
    assert trainable_parameters(gpt) == layers * 16 * ((d + 3 * d) + (d + d)) == 98_304
    # part (a) and (b) of the exercise: a 6.7-billion-parameter model, 32 layers of four 4096 x 4096 projections
    per_model = 32 * 4 * 16 * (4096 + 4096)
    assert per_model == 16_777_216 and round(per_model / 6.7e9, 4) == 0.0025
    assert round(6.7e9 * 12 / 1e9) == 80 and round(per_model * 12 / 1e9, 1) == 0.2
