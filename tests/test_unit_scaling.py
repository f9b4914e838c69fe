"""Unit scaling: scaled ops, unit-scaled layers and GPT, equivalence with the ordinary GPT, FP8
gradients in a unit-scaled and a standard GPT, and clear errors."""
import math

import pytest
import torch
import torch.nn.functional as F

from llmbook.models import GPT, GPTConfig
from llmbook.precision import ScaledLinear, record_matmuls, set_matmul_formats
from llmbook.train import TrainConfig, train
from llmbook.unit_scaling import (
    UnitScaledDecoderBlock,
    UnitScaledLinear,
    residual_add,
    residual_split,
    running_mean_taus,
    scaled,
    to_standard_gpt,
    unit_scaled_gpt,
)


def rms(t):
    return t.pow(2).mean().sqrt().item()


def test_scaled_has_separate_forward_and_backward_scales():
    x = torch.ones(3, requires_grad=True)
    y = scaled(x, 2.0, 5.0)
    assert torch.equal(y, torch.full((3,), 2.0))
    y.sum().backward()
    assert torch.equal(x.grad, torch.full((3,), 5.0))
    for bad in (0.0, -1.0, float("inf"), "2"):
        with pytest.raises(ValueError, match="positive finite"):
            scaled(x, bad, 1.0)


def test_unit_scaled_linear_gives_unit_outputs_and_gradients():
    torch.manual_seed(0)
    layer = UnitScaledLinear(256, 64)  # constraint=None: separate forward and backward scales
    assert abs(rms(layer.weight) - 1) < 0.02 and torch.equal(layer.bias, torch.zeros(64))
    x = torch.randn(4096, 256, requires_grad=True)
    y = layer(x)
    assert abs(rms(y) - 1) < 0.05
    y.backward(torch.randn_like(y))
    assert abs(rms(x.grad) - 1) < 0.05  # with the forward scale it would be sqrt(64 / 256) = 0.5
    assert abs(rms(layer.weight.grad) - 1) < 0.05
    assert abs(rms(layer.bias.grad) - 1) < 0.3  # 64 entries only


def test_unit_scaled_linear_is_the_ordinary_layer_up_to_constants():
    torch.manual_seed(0)
    layer = UnitScaledLinear(32, 8)
    x = torch.randn(5, 7, 32, requires_grad=True)
    g = torch.randn(5, 7, 8)
    layer(x).backward(g)
    w = (layer.weight.detach() / math.sqrt(32)).requires_grad_()
    x2 = x.detach().clone().requires_grad_()
    ref = F.linear(x2, w, layer.bias.detach())
    torch.testing.assert_close(layer(x), ref)  # the same function ...
    ref.backward(g)
    # ... and gradients that differ from the true ones by one constant per tensor
    torch.testing.assert_close(x.grad, x2.grad * math.sqrt(32 / 8))
    torch.testing.assert_close(layer.weight.grad, w.grad / math.sqrt(5 * 7))  # 1 / sqrt(batch rows)


def test_constraints_tie_the_backward_scale_to_the_forward_one():
    for constraint, expected in (("to_output_scale", 1 / math.sqrt(64)), ("gmean", (64 * 16) ** -0.25)):
        layer = UnitScaledLinear(64, 16, constraint=constraint)
        assert layer.output_scale == pytest.approx(expected)
        assert layer.scales(10)[:2] == pytest.approx((expected, expected))
    with pytest.raises(ValueError, match="unknown constraint 'mean'"):
        UnitScaledLinear(4, 4, constraint="mean")
    with pytest.raises(ValueError, match="last dimension 4"):
        UnitScaledLinear(4, 4)(torch.randn(2, 5))


def test_residual_split_and_add_keep_the_true_gradient_and_unit_scale():
    torch.manual_seed(0)
    x = torch.randn(10_000, requires_grad=True)
    tau = 0.2
    branch, skip = residual_split(x, tau)
    out = residual_add(torch.sin(branch) * 1.3, skip, tau)
    torch.testing.assert_close(out, math.sqrt(tau) * 1.3 * torch.sin(x) + math.sqrt(1 - tau) * x)
    out.sum().backward()
    torch.testing.assert_close(x.grad, math.sqrt(tau) * 1.3 * torch.cos(x.detach()) + math.sqrt(1 - tau))
    y = residual_add(torch.randn(10_000), torch.randn(10_000), tau)
    assert abs(rms(y) - 1) < 0.03
    assert running_mean_taus(3) == [1 / 2, 1 / 3, 1 / 4]
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        residual_add(x, x, 1.0)
    with pytest.raises(ValueError, match="n_branches=0"):
        running_mean_taus(0)


def small_config(**kw):
    return GPTConfig(**{**dict(vocab_size=40, context_length=32, n_layers=3, n_heads=4, d_model=64), **kw})


def test_unit_scaled_gpt_starts_with_unit_scale_everywhere():
    torch.manual_seed(0)
    model = unit_scaled_gpt(small_config())
    x, y = torch.randint(0, 40, (16, 32)), torch.randint(0, 40, (16, 32))
    with record_matmuls(model) as records:
        model(x, targets=y).loss.backward()
    assert len(records) == 3 * 4 + 1
    for name, r in records.items():
        assert 0.9 < rms(r["weight"]) < 1.1, name
        # attention's output is an average of values, so out_proj's input sits a little below 1
        low = 0.25 if name.endswith("out_proj") else 0.7
        assert low < rms(r["input"]) < 1.4, (name, rms(r["input"]))
        assert 0.25 < rms(r["grad_output"]) < 2.0, (name, rms(r["grad_output"]))


@pytest.mark.parametrize("pos", ["learned", "rope"])
@pytest.mark.parametrize("tie", [True, False])
@pytest.mark.parametrize("d_ff", [None, 0])  # 0: attention-only blocks
def test_to_standard_gpt_computes_the_same_logits(pos, tie, d_ff):
    torch.manual_seed(0)
    cfg = small_config(pos_encoding=pos, tie_weights=tie, layer_norm_eps=1e-9, d_ff=d_ff)
    unit = unit_scaled_gpt(cfg).eval()
    standard = to_standard_gpt(unit).eval()
    assert type(standard) is GPT and not any(isinstance(m, ScaledLinear) for m in standard.modules())
    x = torch.randint(0, 40, (3, 20))
    torch.testing.assert_close(standard(x).logits, unit(x).logits, atol=1e-4, rtol=1e-4)


def test_unit_scaled_gradients_are_the_true_ones_times_a_constant_per_tensor():
    torch.manual_seed(0)
    cfg = small_config(layer_norm_eps=1e-9, n_layers=2)
    unit = unit_scaled_gpt(cfg)
    standard = to_standard_gpt(unit)
    x, y = torch.randint(0, 40, (4, 16)), torch.randint(0, 40, (4, 16))
    unit(x, targets=y).loss.backward()
    standard(x, targets=y).loss.backward()
    std_params = dict(standard.named_parameters())
    for name, p in unit.named_parameters():
        if name.endswith(".weight") and p.dim() == 2:
            cos = F.cosine_similarity(p.grad.flatten(), std_params[name].grad.flatten(), dim=0).item()
            assert cos > 0.9999, (name, cos)


def test_unit_scaled_gpt_rejects_what_it_does_not_cover():
    with pytest.raises(ValueError, match="pre-LN"):
        unit_scaled_gpt(small_config(norm_first=False))
    with pytest.raises(ValueError, match="sinusoidal"):
        unit_scaled_gpt(small_config(pos_encoding="sinusoidal"))
    with pytest.raises(TypeError, match="unit_scaled_gpt"):
        to_standard_gpt(GPT(small_config()))
    for option in (dict(norm="rmsnorm"), dict(gated_ffn=True), dict(n_kv_heads=1)):
        with pytest.raises(ValueError, match=f"{next(iter(option))}={next(iter(option.values()))!r}"):
            unit_scaled_gpt(small_config(**option))
    with pytest.raises(ValueError, match="activation.*'silu'"):
        unit_scaled_gpt(small_config(activation="silu"))
    with pytest.raises(ValueError, match="one tau per branch"):
        UnitScaledDecoderBlock(16, 2, 64, taus=(0.5,))


def test_fp8_gradients_underflow_in_a_standard_model_but_not_a_unit_scaled_one():
    """With e4m3 gradients (smallest value 2^-9) a standard GPT's output gradients round to 0."""
    x, y = torch.randint(0, 40, (8, 32)), torch.randint(0, 40, (8, 32))
    zeros = {}
    for kind in ("standard", "unit"):
        torch.manual_seed(0)
        model = GPT(small_config()) if kind == "standard" else unit_scaled_gpt(small_config())
        set_matmul_formats(model, "fp8_e4m3", "fp8_e4m3")
        model(x, targets=y).loss.backward()
        grad = model.blocks[0].ff.fc1.weight.grad
        zeros[kind] = (grad == 0).float().mean().item()
    assert zeros["standard"] == 1.0 and zeros["unit"] < 0.01


def test_unit_scaled_gpt_trains():
    torch.manual_seed(0)
    model = unit_scaled_gpt(small_config(n_layers=1, d_model=32))
    data = torch.arange(32).repeat(30) % 40  # a repeating sequence: easy to learn
    history = train(model, lambda step: (data[None, :16], data[None, 1:17]),
                    TrainConfig(steps=40, lr=0.05, progress=False, log_every=0, grad_clip=None))
    assert history.loss[-1] < 0.5 * history.loss[0]
