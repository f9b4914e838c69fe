"""The verse-or-prose experiment of chapter 6 at a tiny size: its labels, split, pooling and results."""
import pytest
import torch

from llmbook import corpora, pretrained
from llmbook.experiments import verse_or_prose as vp

PLAY = """ACT I.

SCENE 1.
On a ship at sea.

BOATSWAIN.
Lay her a-hold, a-hold! set her two courses: off
to sea again; lay her off, and take in the topsail
and the mainsail too, my hearties.

GONZALO.
He'll be hang'd yet,
Though every drop of water swear against it,
[Aside]
And gape at wid'st to glut him.

ANTONIO.
Let's all sink wi' the King.

MIRANDA.
If by your art, my dearest father, you have
Put the wild waters in this roar, allay them;
and so the sea, mounting to the welkin's cheek,
Dashes the fire out.
"""


def test_speech_labels_follow_the_line_starts():
    assert vp.speech_label(["A b c", "D e f", "G h i"]) == 0
    assert vp.speech_label(["A b c", "d e f", "g h i"]) == 1
    assert vp.speech_label(["A b c", "d e f", "G h i"]) == 1  # half in lower case: prose
    assert vp.speech_label(["A b c", "D e f", "G h i", "j k l"]) is None  # a third in lower case: left out
    assert vp.speech_label(["A b c", "d e f"]) is None  # too short to tell


def test_labelled_lines_hide_the_capital_and_skip_directions_short_lines_and_unclear_speeches():
    assert vp.labelled_lines(PLAY) == [
        ("lay her a-hold, a-hold! set her two courses: off", 1),
        ("to sea again; lay her off, and take in the topsail", 1),
        ("and the mainsail too, my hearties.", 1),
        ("he'll be hang'd yet,", 0),
        ("though every drop of water swear against it,", 0),
        ("and gape at wid'st to glut him.", 0),
    ]


def test_the_four_plays_were_never_read_by_the_pretrained_bert():
    trained_on = pretrained.card("shakespeare-bert")["data"]["trained_on"]
    titles = {title for title, _ in corpora.shakespeare_works(trained_on)}
    assert not titles & set(vp.PLAYS)


def test_split_puts_the_end_of_each_play_on_the_test_side():
    train, test = vp.split_pools(("The Tempest",))
    tempest = vp.labelled_lines(dict(corpora.shakespeare_works("test"))["The Tempest"])
    assert train + test == tempest and len(train) == int(vp.TRAIN_SHARE * len(tempest))


def test_balanced_sample_has_equal_classes_and_refuses_a_small_class():
    pool = [(str(i), i % 2) for i in range(10)] + [("x", 2)]
    sample = vp.balanced_sample(pool, 1, 3, seed=0)
    assert sorted(y for _, y in sample) == [0, 1, 2]
    with pytest.raises(ValueError, match="class 2 has 1"):
        vp.balanced_sample(pool, 2, 3, seed=0)


def test_mean_pooling_ignores_padding():
    model, tok = pretrained.load("shakespeare-bert")
    short, long = "lay her a-hold.", "lay her a-hold, set her two courses off to sea again."
    ids = vp.encode(tok, [short, long])
    alone = vp.encode(tok, [short])
    assert ids.shape[1] > alone.shape[1]  # the short line is padded in the batch
    with torch.no_grad():
        torch.testing.assert_close(vp.mean_pool(model, ids)[0], vp.mean_pool(model, alone)[0], atol=1e-5, rtol=1e-4)


def test_token_counts_leave_out_specials():
    ids = torch.tensor([[1, 5, 5, 7, 0]])
    counts = vp.token_counts(ids, 10, skip=[0, 1])
    assert counts[0].tolist() == [0, 0, 0, 0, 0, 2, 0, 1, 0, 0]


def test_tiny_run_scores_every_method_on_a_balanced_test_set():
    result = vp.run(per_class=4, test_per_class=3, seeds=(0,), epochs=1)
    assert set(result["accuracy"]) == set(vp.METHODS)
    for accuracies in result["accuracy"].values():
        assert len(accuracies) == 1 and 0.0 <= accuracies[0] <= 1.0
    confusion = torch.tensor(result["fine_tuned_confusion_first_seed"])
    assert confusion.shape == (2, 2) and confusion.sum(1).tolist() == [3, 3]
