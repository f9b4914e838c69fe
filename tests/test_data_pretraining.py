"""BERT's pre-training inputs (llmbook.data.pretraining): the 80/10/10 masking rule and NSP pairs."""
import pytest
import torch

from llmbook.data import mask_tokens, nsp_pairs

# ---------------------------------------------------------------- mask_tokens

VOCAB = 30_000
PAD, CLS, SEP, MASK = 0, 1, 2, 3
SPECIAL_IDS = (PAD, CLS, SEP, MASK)


@pytest.fixture(scope="module")
def masked():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(4, VOCAB, (400, 1000), generator=g)
    ids[:, 0], ids[:, 500], ids[:, -50:] = CLS, SEP, PAD
    original = ids.clone()
    inputs, labels = mask_tokens(ids, VOCAB, MASK, SPECIAL_IDS, p=0.15, generator=torch.Generator().manual_seed(1))
    return original, ids, inputs, labels


def test_mask_tokens_does_not_modify_its_input(masked):
    original, ids, inputs, _ = masked
    assert torch.equal(original, ids)
    assert not torch.equal(inputs, ids)


def test_mask_tokens_selects_15_percent_and_never_specials(masked):
    _, ids, _, labels = masked
    selected = labels != -100
    special = (ids == PAD) | (ids == CLS) | (ids == SEP)
    assert not selected[special].any()
    assert abs(selected.sum().item() / (~special).sum().item() - 0.15) < 0.005


def test_mask_tokens_labels_are_the_originals_exactly_where_selected(masked):
    _, ids, inputs, labels = masked
    selected = labels != -100
    assert torch.equal(labels[selected], ids[selected])
    assert torch.equal(inputs[~selected], ids[~selected])  # nothing changes outside the selection
    assert set(labels.unique().tolist()) - set(range(4, VOCAB)) == {-100}


def test_mask_tokens_80_10_10_split(masked):
    _, ids, inputs, labels = masked
    selected = labels != -100
    n = selected.sum().item()
    masked_frac = (inputs[selected] == MASK).sum().item() / n
    unchanged_frac = (inputs[selected] == ids[selected]).sum().item() / n
    # A random draw equal to the original counts as unchanged; with ~30k ordinary ids that
    # moves the fractions by about 0.1 / 30k, far below the tolerance.
    random_frac = ((inputs[selected] != MASK) & (inputs[selected] != ids[selected])).sum().item() / n
    assert abs(masked_frac - 0.80) < 0.01
    assert abs(random_frac - 0.10) < 0.01
    assert abs(unchanged_frac - 0.10) < 0.01
    replaced = selected & (inputs != MASK) & (inputs != ids)
    assert inputs[replaced].min() >= 4  # random tokens are never specials


def test_mask_tokens_is_deterministic_per_generator_and_works_without_one():
    ids = torch.randint(4, 100, (8, 64), generator=torch.Generator().manual_seed(0))
    a = mask_tokens(ids, 100, MASK, SPECIAL_IDS, generator=torch.Generator().manual_seed(5))
    b = mask_tokens(ids, 100, MASK, SPECIAL_IDS, generator=torch.Generator().manual_seed(5))
    c = mask_tokens(ids, 100, MASK, SPECIAL_IDS, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])
    torch.manual_seed(0)
    inputs, labels = mask_tokens(ids, 100, MASK, SPECIAL_IDS)
    assert inputs.shape == labels.shape == ids.shape


def test_mask_tokens_with_p_1_selects_every_ordinary_position():
    ids = torch.tensor([[CLS, 7, 8, 9, SEP, PAD]])
    _, labels = mask_tokens(ids, 10, MASK, SPECIAL_IDS, p=1.0, generator=torch.Generator().manual_seed(0))
    assert labels.tolist() == [[-100, 7, 8, 9, -100, -100]]


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"p": 0.0}, ValueError, "p must be in"),
        ({"p": 1.5}, ValueError, "1.5"),
        ({"mask_id": 10}, ValueError, "mask_id 10.*10"),
        ({"ids": torch.tensor([[4, 12]])}, ValueError, "12.*10"),
        ({"ids": torch.tensor([[4.0, 5.0]])}, TypeError, "float"),
        ({"ids": torch.tensor([4, 5])}, ValueError, r"\(B, T\).*\(2,\)"),
    ],
)
def test_mask_tokens_validates_arguments(kwargs, error, message):
    args = {"ids": torch.tensor([[4, 5]]), "vocab_size": 10, "mask_id": MASK, "special_ids": SPECIAL_IDS}
    args.update(kwargs)
    with pytest.raises(error, match=message):
        mask_tokens(**args)


# ---------------------------------------------------------------- nsp_pairs


def test_nsp_pairs_labels_and_balance():
    docs = [[f"d{d} s{s}" for s in range(5)] for d in range(6)]
    triples = nsp_pairs(docs, 4000, seed=0)
    assert 0.47 < sum(y for _, _, y in triples) / len(triples) < 0.53
    for a, b, label in triples:
        da, sa = (int(x[1:]) for x in a.split())
        db, sb = (int(x[1:]) for x in b.split())
        if label == 0:  # IsNext
            assert (db, sb) == (da, sa + 1)
        else:  # NotNext: a sentence from another document
            assert label == 1 and db != da


def test_nsp_pairs_on_one_flat_document():
    sentences = [f"s{k}" for k in range(10)]
    for a, b, label in nsp_pairs(sentences, 500, seed=0):
        ia, ib = int(a[1:]), int(b[1:])
        assert (ib == ia + 1) == (label == 0)
        assert ib != ia


def test_nsp_pairs_needs_consecutive_sentences():
    with pytest.raises(ValueError, match="two or more"):
        nsp_pairs([["only one"], ["another"]], 10)
    with pytest.raises(ValueError, match="3 sentences.*2"):
        nsp_pairs(["a", "b"], 10)
