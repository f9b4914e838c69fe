"""Interpolated Kneser–Ney: probabilities that sum to one, a hand-computed case, and clear errors."""

import math

import pytest

from llmbook.ngrams import KneserNey, unseen_share

TEXT = "abracadabra abracadabra cadabra"


@pytest.mark.parametrize("order", [1, 2, 3, 4])
@pytest.mark.parametrize("history", ["", "a", "ab", "abr", "zzz", "ra "])
def test_probabilities_over_the_alphabet_and_an_unknown_sum_to_one(order, history):
    model = KneserNey(4).fit(TEXT)
    total = sum(model.prob(history, ch, order) for ch in model.alphabet) + model.prob(history, "?", order)
    assert total == pytest.approx(1.0, abs=1e-12)


def test_a_bigram_probability_computed_by_hand():
    model = KneserNey(2).fit("abab")
    # unigram level (continuation counts): "a" follows "b" once, "b" follows "a" once -> N(a)=1, N(b)=1,
    # total 2, one distinct count of 1 each -> n1 = 2, n2 = 0 -> D = 1; P1(w) = (1 - 1 + 1 * 2 * 1/3) / 2
    p0 = 1 / 3
    p1_b = (max(1 - 1, 0) + 1 * 2 * p0) / 2
    # bigram level (occurrences): "ab" twice, "ba" once; counts of counts n1 = 1, n2 = 1 -> D = 1/3;
    # after "a": total 2, one follower
    d = 1 / 3
    expected = (2 - d + d * 1 * p1_b) / 2
    assert model.prob("a", "b") == pytest.approx(expected)


def test_higher_orders_fit_repetitive_text_better_and_bits_match_the_probabilities():
    model = KneserNey(4).fit(TEXT * 5)
    held_out = "abracadabra"
    bits = [model.bits_per_char(held_out, n) for n in (1, 2, 3, 4)]
    assert bits[0] > 2 * bits[1] > 4 * bits[2]  # (order 4 need not beat 3: its counts are tiny)
    by_hand = -sum(math.log2(model.prob(held_out[max(0, i - 3): i], c)) for i, c in enumerate(held_out))
    assert bits[-1] == pytest.approx(by_hand / len(held_out))


def test_samples_use_the_alphabet_and_repeat_with_the_seed():
    model = KneserNey(3).fit(TEXT)
    a, b = model.sample(50, "ab", seed=3), model.sample(50, "ab", seed=3)
    assert a == b and a.startswith("ab") and len(a) == 52 and set(a) <= set(TEXT)


def test_unseen_share_counts_held_out_ngrams_missing_from_training():
    assert unseen_share("abcd", "abce", 2) == pytest.approx(1 / 3)  # ab, bc seen; ce not
    assert unseen_share("abcd", "abcd", 3) == 0


def test_bad_input_is_refused_by_name():
    with pytest.raises(ValueError, match="order must be an integer >= 1, got 0"):
        KneserNey(0)
    with pytest.raises(ValueError, match="fewer than the order 5"):
        KneserNey(5).fit("abc")
    with pytest.raises(RuntimeError, match="call fit"):
        KneserNey(2).prob("a", "b")
    with pytest.raises(ValueError, match=r"order must lie in \[1, 2\], got 3"):
        KneserNey(2).fit("abab").prob("a", "b", order=3)
