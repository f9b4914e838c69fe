"""The Chinese corpus (llmbook.data.chinese)."""
from llmbook.data import chinese_corpus


def test_chinese_corpus_is_chinese_sentences_ending_with_full_stop():
    lines = chinese_corpus(300, seed=0).splitlines()
    assert len(lines) == 300
    for line in lines:
        assert line.endswith("。")
        assert all("\u4e00" <= ch <= "\u9fff" for ch in line[:-1]), line
    assert len(set(lines)) > 200
