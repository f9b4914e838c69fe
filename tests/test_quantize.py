"""int8 weight quantisation: the round trip error bound, Int8Linear against dequantised weights,
quantize_model (a copy, sizes, outputs), and clear errors."""
import pytest
import torch
from torch import nn

from llmbook.models import GPT, GPTConfig
from llmbook.quantize import Int8Linear, dequantize_weight, model_nbytes, quantize_model, quantize_weight


def test_per_row_quantisation_error_is_at_most_half_a_step():
    w = torch.randn(16, 32, generator=torch.Generator().manual_seed(0)) * torch.logspace(-3, 1, 16)[:, None]
    q, scale = quantize_weight(w)
    assert q.dtype == torch.int8 and scale.shape == (16,)
    assert q.abs().max() == 127  # every row uses the full range
    torch.testing.assert_close(scale, w.abs().amax(1) / 127)
    error = (dequantize_weight(q, scale) - w).abs()
    assert (error <= scale[:, None] / 2 + 1e-7).all()


def test_per_tensor_scale_is_worse_for_rows_of_different_size():
    w = torch.randn(8, 64, generator=torch.Generator().manual_seed(1)) * torch.logspace(-2, 1, 8)[:, None]
    def relative_error_of_smallest_row(q_and_scale):
        return ((dequantize_weight(*q_and_scale) - w)[0].norm() / w[0].norm()).item()

    per_row = relative_error_of_smallest_row(quantize_weight(w))
    per_tensor = relative_error_of_smallest_row(quantize_weight(w, per_channel=False))
    assert per_row < 0.01 and per_tensor > 0.5  # the small row rounds to (almost) all zeros


def test_fewer_bits_give_larger_errors_and_zero_rows_stay_zero():
    w = torch.randn(4, 50, generator=torch.Generator().manual_seed(2))
    w[2] = 0.0
    errors = [(dequantize_weight(*quantize_weight(w, bits=b)) - w).abs().mean() for b in (8, 6, 4, 2)]
    assert errors == sorted(errors)
    q, scale = quantize_weight(w, bits=4)
    assert q.abs().max() <= 7 and (q[2] == 0).all() and torch.isfinite(scale).all()


def test_int8_linear_equals_a_linear_with_the_dequantised_weight():
    torch.manual_seed(0)
    linear = nn.Linear(24, 10)
    qlin = Int8Linear.from_linear(linear)
    x = torch.randn(3, 5, 24)
    reference = nn.functional.linear(x, qlin.dequantized_weight(), linear.bias)
    torch.testing.assert_close(qlin(x), reference, atol=1e-5, rtol=1e-5)
    assert qlin.weight_int8.dtype == torch.int8 and qlin.scale.shape == (10,)
    assert "bits=8" in repr(qlin)


def test_quantize_model_replaces_linears_in_a_copy_and_shrinks_it():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=30, context_length=32, n_layers=2, n_heads=4, d_model=64)).eval()
    q = quantize_model(model)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert all(isinstance(m, nn.Linear) for m in linears)  # the original is untouched
    assert isinstance(q.blocks[0].attn.in_proj, Int8Linear) and isinstance(q.blocks[1].ff.fc2, Int8Linear)
    assert isinstance(q.lm_head, nn.Linear) and q.lm_head.weight is q.tok_emb.weight  # skipped, still tied
    block_weights = sum(m.weight.numel() for m in linears if m is not model.lm_head)
    assert model_nbytes(model) - model_nbytes(q) == block_weights * 3 - sum(
        m.out_features * 4 for m in q.modules() if isinstance(m, Int8Linear))  # 4 -> 1 byte, plus the scales
    x = torch.randint(0, 30, (2, 20))
    with torch.no_grad():
        torch.testing.assert_close(q(x).logits, model(x).logits, atol=0.05, rtol=0.05)
    assert not q.training


def test_model_nbytes_counts_tied_weights_once():
    torch.manual_seed(0)
    tied = GPT(GPTConfig(vocab_size=30, context_length=8, n_layers=1, n_heads=2, d_model=16))
    assert model_nbytes(tied) == tied.num_parameters() * 4


@pytest.mark.parametrize("bits", [1, 9, 8.0, True])
def test_bits_outside_2_to_8_are_refused(bits):
    with pytest.raises(ValueError, match="bits must be an int in"):
        quantize_weight(torch.ones(2, 2), bits=bits)


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="matrix"):
        quantize_weight(torch.ones(3))
    with pytest.raises(ValueError, match="int8"):
        Int8Linear(torch.ones(2, 3), torch.ones(2))
