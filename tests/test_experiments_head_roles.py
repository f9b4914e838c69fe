"""The head-role scores of chapter 3: the role masks on hand-made windows, the score of known
attention patterns, and the experiment at a tiny size on the shipped models."""
import pytest
import torch

from llmbook.experiments import head_roles as hr

TEXT = "x\n\nHor.\nStay, stay!\n\nMar.\nGo.\n"
PIECES = ["x", "\n\n", "H", "or", ".", "\n", "St", "ay", ",", " stay", "!", "\n\n",
          "M", "ar", ".", "\n", "Go", ".", "\n"]


def test_token_features_find_line_breaks_punctuation_and_speaker_names():
    f = hr.token_features(TEXT, PIECES)
    assert f["newline"].tolist() == [p.count("\n") > 0 for p in PIECES]
    assert [PIECES[i] for i in torch.nonzero(f["punctuation"]).flatten()] == [".", ",", "!", ".", "."]
    # "Hor." and "Mar." stand alone after a blank line; "Go." does not
    assert f["speaker"].tolist() == [-1, -1, 0, 0, 0, -1, -1, -1, -1, -1, -1, -1, 1, 1, 1, -1, -1, -1, -1]
    with pytest.raises(ValueError, match="do not join"):
        hr.token_features(TEXT, PIECES[:-1])


def test_causal_role_masks_on_a_repeated_pair():
    ids = torch.tensor([5, 6, 7, 5, 6])
    f = {"newline": torch.tensor([False, False, True, False, False]),
         "punctuation": torch.tensor([False, True, False, False, True]),
         "speaker": torch.tensor([0, -1, -1, -1, -1])}
    m = hr.role_masks(ids, f, causal=True)
    assert list(m) == list(hr.CAUSAL_ROLES)
    keys = {role: [torch.nonzero(row).flatten().tolist() for row in mask] for role, mask in m.items()}
    assert keys["previous token"] == [[], [0], [1], [2], [3]]
    assert keys["earlier copy"] == [[], [], [], [0], [1]]
    assert keys["induction"] == [[], [], [], [1], [2]]  # the tokens that followed the earlier 5 and 6
    assert keys["last newline"] == [[], [], [], [2], [2]]
    assert keys["current speaker"] == [[], [0], [0], [0], [0]]
    assert keys["punctuation"] == [[], [], [1], [1], [1]]
    assert keys["first token"] == [[], [0], [0], [0], [0]]


def test_bidirectional_role_masks_see_both_sides():
    ids = torch.tensor([1, 9, 8, 9, 2])  # [CLS] a b a [SEP]
    f = {"newline": torch.zeros(5, dtype=torch.bool), "punctuation": torch.zeros(5, dtype=torch.bool),
         "speaker": torch.full((5,), -1)}
    m = hr.role_masks(ids, f, causal=False)
    assert list(m) == list(hr.BIDIRECTIONAL_ROLES)
    assert torch.nonzero(m["next token"][1]).flatten().tolist() == [2]
    assert torch.nonzero(m["[SEP]"][1]).flatten().tolist() == [4] and not m["[SEP]"][4].any()
    assert torch.nonzero(m["earlier copy"][3]).flatten().tolist() == [1]


def test_a_previous_token_head_scores_one_and_an_even_head_scores_the_baseline():
    T = 6
    previous = torch.zeros(T, T)
    previous[0, 0] = 1.0
    previous[torch.arange(1, T), torch.arange(T - 1)] = 1.0
    even = torch.tril(torch.ones(T, T)) / torch.arange(1, T + 1)[:, None]
    weights = torch.stack([previous, even])[None, None]  # (L=1, B=1, H=2, T, T)
    ids = torch.tensor([3, 4, 3, 4, 3, 4])
    f = {"newline": torch.zeros(T, dtype=torch.bool), "punctuation": torch.zeros(T, dtype=torch.bool),
         "speaker": torch.full((T,), -1)}
    masks = {r: m[None] for r, m in hr.role_masks(ids, f, causal=True).items()}
    out = hr.head_scores(weights, masks, causal=True)
    sums, uniform, queries = out["previous token"]
    assert queries == T - 1
    assert sums[0, 0] / queries == pytest.approx(1.0)
    assert sums[0, 1] / queries == pytest.approx(uniform / queries)  # the even head is the baseline
    assert uniform / queries == pytest.approx(sum(1 / (i + 1) for i in range(1, T)) / (T - 1))


def test_run_at_a_tiny_size_on_the_shipped_models():
    data = hr.run(max_windows=1)
    for name, roles in (("shakespeare-gpt", hr.CAUSAL_ROLES), ("shakespeare-bert", hr.BIDIRECTIONAL_ROLES)):
        m = data["models"][name]
        assert m["roles"] == list(roles) and m["windows"] == 1
        for role in roles:
            scores = torch.tensor(m["scores"][role])
            assert scores.shape == (4, 4)
            assert ((scores >= 0) & (scores <= 1)).all()
            assert 0 < m["uniform"][role] < 1
        assert m["queries"]["previous token"] == m["window_tokens"] - 1  # every query but the first
