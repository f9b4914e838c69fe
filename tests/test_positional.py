"""Position encodings: the sinusoidal formula, learned tables' limits, and RoPE's relative property."""
import math

import pytest
import torch

from llmbook.positional import LearnedPositions, RotaryEmbedding, sinusoidal_encoding


def test_sinusoidal_encoding_matches_the_formula_entry_by_entry():
    max_len, d = 12, 8
    pe = sinusoidal_encoding(max_len, d)
    assert pe.shape == (max_len, d)
    for pos in range(max_len):
        for i in range(d // 2):
            angle = pos / 10000 ** (2 * i / d)
            assert pe[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
            assert pe[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)


def test_sinusoidal_encoding_rejects_odd_width():
    with pytest.raises(ValueError, match="7"):
        sinusoidal_encoding(10, 7)


def test_learned_table_refuses_positions_beyond_its_length():
    table = LearnedPositions(16, 8)
    assert table(torch.arange(16)).shape == (16, 8)
    with pytest.raises(ValueError, match="16"):
        table(torch.arange(17))


def test_rope_score_depends_only_on_the_offset():
    torch.manual_seed(0)
    rope = RotaryEmbedding(d_head=16, max_len=64)
    q, k = torch.randn(1, 1, 1, 16), torch.randn(1, 1, 1, 16)

    def score(m, n):
        return (rope(q, torch.tensor([m])) * rope(k, torch.tensor([n]))).sum().item()

    for m, n, shift in [(5, 2, 10), (0, 7, 30), (20, 20, 3)]:
        assert score(m, n) == pytest.approx(score(m + shift, n + shift), abs=1e-4)
    assert score(5, 2) != pytest.approx(score(5, 3), abs=1e-3)  # a different offset changes it


def test_rope_is_a_rotation_so_it_keeps_vector_length():
    torch.manual_seed(0)
    rope = RotaryEmbedding(d_head=8, max_len=32)
    x = torch.randn(2, 3, 10, 8)
    torch.testing.assert_close(rope(x, torch.arange(10)).norm(dim=-1), x.norm(dim=-1))
