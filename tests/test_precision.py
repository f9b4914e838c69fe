"""Number formats: their limits, rounding to them, and simulated low precision inside autograd and in
every matrix product of a model."""
import math

import pytest
import torch

from llmbook.models import GPT, GPTConfig
from llmbook.precision import (
    FORMATS,
    LossScaled,
    ScaledLinear,
    format_limits_log2,
    get_format,
    log2_magnitudes,
    quantize,
    range_report,
    record_matmuls,
    round_to,
    set_matmul_formats,
)


@pytest.mark.parametrize("name, bits, max_value, normal, subnormal", [
    ("fp32", 32, (2 - 2 ** -23) * 2 ** 127, 2 ** -126, 2 ** -149),
    ("bf16", 16, (2 - 2 ** -7) * 2 ** 127, 2 ** -126, 2 ** -133),
    ("fp16", 16, 65504.0, 2 ** -14, 2 ** -24),
    ("fp8_e5m2", 8, 57344.0, 2 ** -14, 2 ** -16),
    ("fp8_e4m3", 8, 448.0, 2 ** -6, 2 ** -9),
])
def test_format_limits_follow_from_the_bits(name, bits, max_value, normal, subnormal):
    f = FORMATS[name]
    assert f.bits == bits
    assert math.isclose(f.max, max_value, rel_tol=1e-7)
    assert f.smallest_normal == normal and f.smallest_subnormal == subnormal
    assert f.epsilon == 2.0 ** -f.mantissa_bits
    assert format_limits_log2(name) == (math.log2(subnormal), math.log2(normal), math.log2(f.max))


def test_round_to_rounds_to_nearest_even_and_handles_the_edges():
    x = torch.tensor([1.0625, 1.1875, 2.0 ** -10, 3 * 2.0 ** -10, 1000.0, -1e6, float("nan")])
    got = round_to(x, "fp8_e4m3")
    torch.testing.assert_close(got[:6], torch.tensor([1.0, 1.25, 0.0, 2.0 ** -8, 448.0, -448.0]))
    assert torch.isnan(got[6])  # nan stays nan; e4m3 saturates instead of overflowing
    assert torch.isinf(round_to(torch.tensor([1e5]), "fp8_e5m2")).all()
    assert torch.isinf(round_to(torch.tensor([70000.0]), "fp16")).all()
    assert round_to(torch.tensor([1e-9]), "fp16").item() == 0.0
    assert round_to(torch.tensor([1e-9]), "bf16").item() > 0  # bf16 has fp32's range
    assert round_to(torch.tensor([1 + 2 ** -9]), "bf16").item() == 1.0  # ... but 7 mantissa bits
    x = torch.randn(100)
    assert torch.equal(round_to(x, "fp32"), x) and round_to(x, "fp16").dtype == torch.float32


def test_round_to_rejects_bad_input():
    with pytest.raises(ValueError, match="unknown number format 'fp4'"):
        round_to(torch.ones(2), "fp4")
    with pytest.raises(TypeError, match="floating-point tensor"):
        round_to(torch.ones(2, dtype=torch.long), "fp16")
    with pytest.raises(ValueError, match="choose one of"):
        get_format("int8")


def test_quantize_rounds_value_and_gradient_separately():
    x = torch.tensor([1.1, 1e-6], requires_grad=True)
    y = quantize(x, forward="fp8_e4m3", backward="fp16")
    torch.testing.assert_close(y.detach(), torch.tensor([1.125, 0.0]))
    y.backward(torch.tensor([1e-8, 3.0001]))
    # the gradient is rounded to fp16 (1e-8 underflows to a subnormal, 3.0001 to 3.0) and passes straight through
    torch.testing.assert_close(x.grad, round_to(torch.tensor([1e-8, 3.0001]), "fp16"))
    z = torch.tensor([1.1], requires_grad=True)
    quantize(z).sum().backward()  # no formats: the identity
    assert z.grad.item() == 1.0
    with pytest.raises(ValueError, match="unknown number format"):
        quantize(z, backward="fp7")


def test_range_report_counts_where_values_fall():
    x = torch.tensor([1e-12, 1e-6, 1.0, 1e6, 0.0])
    report = range_report(x, "fp16")
    assert report == {"underflow": 0.25, "subnormal": 0.25, "normal": 0.25, "overflow": 0.25}
    assert sum(range_report(torch.randn(1000), "fp8_e4m3").values()) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="nonzero"):
        range_report(torch.zeros(3), "fp16")
    torch.testing.assert_close(log2_magnitudes(torch.tensor([0.0, 0.25, -8.0])),
                               torch.tensor([-2.0, 3.0], dtype=torch.float64))


def test_loss_scaled_multiplies_every_gradient_but_not_the_loss():

    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=20, context_length=8, n_layers=1, n_heads=2, d_model=16))
    x, y = torch.randint(0, 20, (2, 8)), torch.randint(0, 20, (2, 8))
    plain = model(x, targets=y)
    plain.loss.backward()
    expected = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    wrapped = LossScaled(model, 1024.0)
    out = wrapped(x, targets=y)
    assert out.loss.item() == plain.loss.item()
    out.loss.backward()
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, 1024.0 * expected[name])
    with pytest.raises(ValueError, match="positive finite"):
        LossScaled(model, 0.0)


def test_set_matmul_formats_simulates_fp8_and_keeps_ties():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=40, context_length=32, n_layers=3, n_heads=4, d_model=64)).eval()
    x = torch.randint(0, 40, (2, 12))
    before = model(x).logits
    set_matmul_formats(model, None, None)
    assert model.lm_head.weight is model.tok_emb.weight
    assert sum(isinstance(m, ScaledLinear) for m in model.modules()) == 3 * 4 + 1
    torch.testing.assert_close(model(x).logits, before, atol=0, rtol=0)
    set_matmul_formats(model, "fp8_e4m3", "fp8_e5m2")
    after = model(x).logits
    assert not torch.equal(after, before) and (after - before).abs().max() < 0.05
    with pytest.raises(ValueError, match="unknown number format"):
        set_matmul_formats(model, "fp9")


def test_record_matmuls_needs_scaled_linear_layers():
    with pytest.raises(ValueError, match="set_matmul_formats"):
        with record_matmuls(GPT(GPTConfig(vocab_size=40, context_length=32, n_layers=1, n_heads=4, d_model=64))):
            pass
