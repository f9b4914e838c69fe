"""The sampling side of chapter 6's form-by-temperature measurement, at a tiny size."""
from llmbook import corpora
from llmbook.experiments import form_by_temperature as fbt


def test_regular_test_poems_are_regular_with_distinct_short_titles_in_split_order():
    chosen = fbt.regular_test_poems(30)
    titles = [p["title"] for p in chosen]
    assert len(set(titles)) == 30 and all(2 <= len(t) <= 6 for t in titles)
    assert all(corpora.poem_form(p) for p in chosen)
    order = [p["id"] for p in corpora.tang_poems("test")]
    assert [order.index(p["id"]) for p in chosen] == sorted(order.index(p["id"]) for p in chosen)


def test_even_lines_ignores_the_number_of_lines_but_not_their_lengths():
    assert fbt.line_lengths("床前明月光，疑是「地上」霜。\n举头望明月") == [5, 5, 5]
    assert fbt.even_lines("床前明月光，疑是地上霜。\n举头望明月")  # three lines: irregular, but even
    assert corpora.poem_form("床前明月光，疑是地上霜。\n举头望明月") is None
    assert not fbt.even_lines("床前明月光，疑是地上霜也。") and not fbt.even_lines("床前明月，疑是地上。")
    assert not fbt.even_lines("")


def test_tiny_run_counts_every_poem_and_greedy_like_cold_sampling_stops():
    result = fbt.run(n_poems=3, max_new_tokens=40)
    assert set(result["temperatures"]) == {str(t) for t in fbt.TEMPERATURES} and len(result["titles"]) == 3
    for measured in result["temperatures"].values():
        assert sum(measured["forms"].values()) == round(3 * measured["regular_share"])
        assert measured["regular_share"] <= measured["even_lines_share"]  # a regular poem has even lines
        assert 0 <= measured["stopped_share"] <= 1
