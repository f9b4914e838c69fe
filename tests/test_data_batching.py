"""Batches (llmbook.data.batching): padding, teacher-forcing targets, language-model windows."""
import pytest
import torch

from llmbook.data import lm_batch, pad_batch, teacher_forcing_targets

# ---------------------------------------------------------------- pad_batch and lm_batch


def test_pad_batch_right_and_left():
    seqs = [[5, 6, 7], [8], []]
    ids, lengths = pad_batch(seqs, pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0], [0, 0, 0]]
    assert lengths.tolist() == [3, 1, 0] and ids.dtype == lengths.dtype == torch.long
    ids, _ = pad_batch(seqs, pad_id=9, side="left")
    assert ids.tolist() == [[5, 6, 7], [9, 9, 8], [9, 9, 9]]
    ids, _ = pad_batch([torch.tensor([1, 2])], pad_id=0, max_len=4, side="left")
    assert ids.tolist() == [[0, 0, 1, 2]]


def test_pad_batch_errors():
    with pytest.raises(ValueError, match="length 3.*max_len 2"):
        pad_batch([[1], [1, 2, 3]], pad_id=0, max_len=2)
    with pytest.raises(ValueError, match="'middle'"):
        pad_batch([[1]], pad_id=0, side="middle")
    with pytest.raises(ValueError, match="at least one"):
        pad_batch([], pad_id=0)


def test_teacher_forcing_targets_shift_right_for_inputs_and_left_for_labels():
    inputs, labels = teacher_forcing_targets([[5, 6, 7], [8], []], bos_id=1, eos_id=2, pad_id=0)
    assert inputs.tolist() == [[1, 5, 6, 7], [1, 8, 0, 0], [1, 0, 0, 0]]
    assert labels.tolist() == [[5, 6, 7, 2], [8, 2, 0, 0], [2, 0, 0, 0]]
    assert torch.equal(inputs[0, 1:], labels[0, :-1])  # labels are the inputs shifted left by one
    inputs, labels = teacher_forcing_targets([torch.tensor([4, 4])], bos_id=7, eos_id=8, pad_id=9)
    assert inputs.tolist() == [[7, 4, 4]] and labels.tolist() == [[4, 4, 8]] and inputs.dtype == torch.long
    with pytest.raises(ValueError, match="at least one"):
        teacher_forcing_targets([])


def test_lm_batch_targets_are_inputs_shifted_by_one():
    stream = torch.arange(100) * 3
    x, y = lm_batch(stream, batch_size=512, context_length=8, generator=torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (512, 8) and x.dtype == torch.long
    assert torch.equal(x[:, 1:], y[:, :-1])
    assert torch.equal(y, x + 3)  # each window really is consecutive
    starts = x[:, 0] // 3
    assert starts.min() == 0 and starts.max() == 100 - 8 - 1  # every valid start is reachable


def test_lm_batch_is_deterministic_and_validates():
    stream = torch.arange(50)
    a = lm_batch(stream, 4, 5, torch.Generator().manual_seed(1))
    b = lm_batch(stream, 4, 5, torch.Generator().manual_seed(1))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    with pytest.raises(ValueError, match="context_length 50.*50"):
        lm_batch(stream, 4, 50)
    with pytest.raises(ValueError, match="1-D"):
        lm_batch(stream.view(5, 10), 4, 3)
    x, y = lm_batch(list(range(10)), 2, 9)  # the only window: 0..8 -> 1..9
    assert x.tolist() == [list(range(9))] * 2 and y.tolist() == [list(range(1, 10))] * 2
