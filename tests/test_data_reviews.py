"""Sentiment reviews (llmbook.data.reviews): balanced, beyond bag-of-words, and read back by the oracle."""
from collections import defaultdict

import pytest

from llmbook.data import review_aspects, review_label, sentiment_task


def test_sentiment_is_balanced_and_not_solvable_by_bag_of_words():
    reviews = sentiment_task(4000, seed=0)
    labels = [y for _, y in reviews]
    assert set(labels) == {0, 1}
    assert 0.45 < sum(labels) / len(labels) < 0.55
    assert any("not bad" in t or "not terrible" in t for t, y in reviews if y == 1)
    assert any(" not " in t for t, y in reviews if y == 0)
    # Two reviews with exactly the same words but opposite labels defeat any bag-of-words model.
    labels_by_bag = defaultdict(set)
    for text, y in reviews:
        labels_by_bag[tuple(sorted(text.rstrip(".").split()))].add(y)
    assert any(len(ys) == 2 for ys in labels_by_bag.values())


def test_review_label_recovers_every_generated_label_and_rejects_other_text():
    for text, label in sentiment_task(5000, seed=3):
        assert review_label(text) == label, text
    assert review_label("the plot was not bad.") == 1
    assert review_label("the food was great but the service was awful.") == 0
    assert review_aspects("the food was great but the service was awful.") == [("food", 1), ("service", 0)]
    assert review_aspects("i did not hate this plot.") == [("plot", 1)]
    for text in ["the movie was good", "the movie was superb.", "the movie was not very good.",
                 "the movie was good but the movie was bad.", "the movie was good but the plot was great.",
                 "i did not enjoyed this movie.", "i loved this.", "", "."]:
        assert review_label(text) is None and review_aspects(text) is None, text
    with pytest.raises(TypeError, match="str"):
        review_label(3)
    with pytest.raises(TypeError, match="str"):
        review_aspects(None)
