"""Group-wise 4-bit weights (packed two per byte) and the int8 kernels of torch.ao."""
import pytest
import torch
from torch import nn

from llmbook.models import GPT, GPTConfig
from llmbook.quantize import (
    GroupwiseLinear,
    dequantize_groupwise,
    int8_dynamic,
    model_nbytes,
    pack_int4,
    quantize_groupwise,
    quantize_model_groupwise,
    quantize_weight,
    unpack_int4,
)


def test_pack_int4_puts_two_values_in_a_byte_and_unpacks_exactly():
    q = torch.tensor([[-8, 7, 0, -1], [3, -3, 1, 2]], dtype=torch.int8)
    packed = pack_int4(q)
    # -8 is 0b1000, 7 is 0b0111: low nibble first -> 0x78; 0, -1 (0b1111) -> 0xF0
    assert packed.dtype == torch.uint8 and packed[0].tolist() == [0x78, 0xF0]
    assert torch.equal(unpack_int4(packed), q)
    every = torch.arange(-8, 8, dtype=torch.int8).repeat(3)
    assert torch.equal(unpack_int4(pack_int4(every)), every)
    with pytest.raises(ValueError, match="even last dimension"):
        pack_int4(torch.tensor([1, 2, 3], dtype=torch.int8))


def test_each_group_has_its_own_scale_and_error_at_most_half_its_step():
    w = torch.tensor([[1.0, -0.5, 100.0, 1.0], [0.07, 0.0, -0.07, 0.035]])
    q, scale = quantize_groupwise(w, bits=4, group_size=2)
    assert scale.flatten().tolist() == pytest.approx([1 / 7, 100 / 7, 0.01, 0.07 / 7])
    assert ((dequantize_groupwise(q, scale) - w).abs() <= scale.repeat_interleave(2, 1) / 2 + 1e-7).all()
    # with one group per row it is per-channel quantisation
    q_row, scale_row = quantize_groupwise(w, bits=4, group_size=4)
    q_ref, scale_ref = quantize_weight(w, bits=4)
    assert torch.equal(q_row, q_ref) and torch.equal(scale_row[:, 0], scale_ref)


def test_smaller_groups_give_smaller_errors_on_weights_with_outliers():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(64, 256, generator=g) * 0.02
    w[:, ::37] *= 20  # a few large weights per row, as trained LLMs have
    errors = []
    for group_size in (256, 64, 16):
        q, scale = quantize_groupwise(w, 4, group_size)
        errors.append(float((dequantize_groupwise(q, scale) - w).pow(2).mean()))
    assert errors[0] > errors[1] > errors[2]


def test_groupwise_linear_stores_half_a_byte_per_weight_and_computes_with_its_weight():
    torch.manual_seed(0)
    linear = nn.Linear(64, 8)
    layer = GroupwiseLinear(linear, bits=4, group_size=16)
    assert layer.weight_q.shape == (8, 32) and layer.scale.shape == (8, 4)
    x = torch.randn(3, 64)
    want = x @ layer.dequantized_weight().T + linear.bias
    torch.testing.assert_close(layer(x), want)
    assert (layer.dequantized_weight() - linear.weight).abs().max() <= layer.scale.max() / 2 + 1e-7


def test_quantize_model_groupwise_shrinks_a_gpt_and_keeps_its_output_layer():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=40, context_length=16, n_layers=2, n_heads=2, d_model=32, tie_weights=False))
    small = quantize_model_groupwise(model, bits=4, group_size=16)
    assert isinstance(small.lm_head, nn.Linear)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear) and m is not model.lm_head]
    weights = sum(m.weight.numel() for m in linears)
    # each quantised weight: half a byte plus a float32 scale per 16 weights, instead of 4 bytes
    assert model_nbytes(model) - model_nbytes(small) == 4 * weights - (weights // 2 + 4 * weights // 16)
    x = torch.randint(0, 40, (2, 16), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert (small(x).logits - model(x).logits).abs().max() < 0.1


def test_bad_group_sizes_are_refused():
    with pytest.raises(ValueError, match="dividing in_features = 10"):
        quantize_groupwise(torch.zeros(2, 10), 4, 4)
    with pytest.raises(ValueError, match=r"bits must be an int in \[2, 8\]"):
        quantize_groupwise(torch.zeros(2, 8), 1, 4)


def test_int8_dynamic_uses_integer_kernels_and_stays_close():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=40, context_length=16, n_layers=2, n_heads=2, d_model=32)).eval()
    q = int8_dynamic(model)
    float_names = {n for n, m in model.named_modules() if isinstance(m, nn.Linear)} - {"lm_head"}
    kinds = {n: type(m).__module__ for n, m in q.named_modules() if n in float_names}
    assert len(kinds) == 8 and set(kinds.values()) == {"torch.ao.nn.quantized.dynamic.modules.linear"}
    assert type(q.lm_head) is nn.Linear  # skipped: it is the tied embedding
    assert type(model.blocks[0].ff.fc1) is nn.Linear  # the original is untouched
    x = torch.randint(0, 40, (2, 16), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want, got = model(x).logits, q(x).logits
    assert 0 < (got - want).abs().max() < 0.05 * want.abs().max()
