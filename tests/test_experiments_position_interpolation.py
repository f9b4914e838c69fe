"""The RoPE position-interpolation experiment of chapter 7, at a tiny size."""
import pytest
import torch

from llmbook.experiments import position_interpolation as pi
from llmbook.models import GPT, GPTConfig


def tiny():
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=11, context_length=32, n_layers=1, n_heads=2, d_model=16,
                         pos_encoding="rope")).eval()


def test_with_interpolation_keeps_the_weights_and_changes_only_the_positions():
    model = tiny()
    x = torch.randint(0, 11, (2, 20), generator=torch.Generator().manual_seed(0))
    same = pi.with_interpolation(model, 1)
    stretched = pi.with_interpolation(model, 4)
    assert stretched.config.rope_interpolation == 4.0 and model.config.rope_interpolation == 1.0
    for name, weight in model.state_dict().items():
        assert torch.equal(stretched.state_dict()[name], weight)
    with torch.no_grad():
        base, one, four = model(x).logits, same(x).logits, stretched(x).logits
    assert torch.equal(base, one)
    assert torch.allclose(base[:, 0], four[:, 0])  # position 0 has angle 0 under any factor
    assert (base[:, 1:] - four[:, 1:]).abs().amax() > 1e-4  # every later position moves
    stretched.lm_head.weight.data.zero_()
    assert model.lm_head.weight.abs().sum() > 0  # a copy: training it leaves the original alone


def test_loss_per_position_averages_to_the_model_loss():
    model = tiny()
    g = torch.Generator().manual_seed(2)
    x, y = torch.randint(0, 11, (3, 16), generator=g), torch.randint(0, 11, (3, 16), generator=g)
    per_position = pi.loss_per_position(model, x, y)
    assert per_position.shape == (16,)
    with torch.no_grad():
        assert per_position.mean().item() == pytest.approx(model(x, y).loss.item(), rel=1e-6)


def test_buckets_average_consecutive_positions_and_refuse_a_ragged_split():
    assert pi.buckets(torch.tensor([1.0, 3.0, 2.0, 6.0]), 2) == [2.0, 4.0]
    with pytest.raises(ValueError, match="5 positions do not split into buckets of 2"):
        pi.buckets(torch.ones(5), 2)


def test_run_reports_every_variant_for_every_seed():
    data = pi.run(train_len=8, n_layers=1, d_model=8, n_heads=2, steps=3, batch_size=4, ft_steps=2, seeds=(0, 1),
                  eval_windows=4, bucket=4)
    assert data["bucket_starts"] == list(range(0, 32, 4))
    assert set(data["runs"]) == set(pi.VARIANTS)
    for name, seeds in data["runs"].items():
        assert set(seeds) == {"0", "1"}
        assert all(len(v) == (4 if name == "interpolate x2" else 8) for v in seeds.values())
        spans = data["ranges"][name]
        assert set(spans) == ({"0-L", "L-2L"} if name == "interpolate x2" else {"0-L", "L-2L", "2L-4L"})
        # the first range is the mean of the first two buckets (8 positions), averaged over the seeds
        first = sum(sum(v[:2]) / 2 for v in seeds.values()) / 2
        assert spans["0-L"]["mean"] == pytest.approx(first, abs=1e-4)
    tuned = data["runs"]["interpolate x4 + fine-tune"]["0"]
    assert tuned != data["runs"]["interpolate x4"]["0"]  # the fine-tune changed the model
