"""Tests for llmbook.tokenizers: exact round trips, BPE training, save/load, errors."""
import re
from collections import Counter

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from llmbook.data import chinese_corpus, toy_grammar_corpus
from llmbook.tokenizers import SPLIT_PATTERN, BPETokenizer, CharTokenizer, _merge

SPECIALS = ("<pad>", "<bos>", "<eos>", "<mask>")
TRAIN_TEXT = toy_grammar_corpus(600, seed=0) + chinese_corpus(400, seed=0) + "emoji 🙂🙂 naïve café 123 4567\n"
# Words the tokenizer has seen, so that generated strings also exercise the merges.
IN_DISTRIBUTION_PIECES = ["the", " cat", " dogs", " that", " chase", "我们", "学校", "。", "\n", "🙂", " 123"]


@pytest.fixture(scope="module")
def bpe():
    return BPETokenizer.train(TRAIN_TEXT, vocab_size=400, specials=SPECIALS)


# ---------------------------------------------------------------- BPE: round trips


@settings(max_examples=200, deadline=None)
@given(text=st.one_of(st.text(), st.lists(st.sampled_from(IN_DISTRIBUTION_PIECES)).map("".join)))
def test_bpe_roundtrips_any_text(bpe, text):
    assert bpe.decode(bpe.encode(text)) == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "我们今天在学校吃饺子。",
        "family 👨‍👩‍👧‍👦 and flags 🇫🇷",
        "\u0301 lone combining accent, e\u0301 decomposed",
        "tabs\tand\r\nnewlines   and    spaces  ",
        "snake_case__name and <eos> written as text",
        "lone surrogate \ud800 survives",
        "\x00\x7f\uffff\U0010ffff",
    ],
)
def test_bpe_roundtrips_hard_strings(bpe, text):
    assert bpe.decode(bpe.encode(text)) == text


def test_split_pattern_covers_every_character():
    text = "a_b  c\u0301\u200d!?\t\n123456 我们。🙂"
    assert "".join(re.findall(SPLIT_PATTERN, text)) == text


# ---------------------------------------------------------------- BPE: training


def test_bpe_first_merges_follow_pair_counts_by_hand():
    # chunks: "ab", " ab", " ab", " cd" -> (a,b) occurs 3 times, (" ", a) twice, the rest once
    tok = BPETokenizer.train("ab ab ab cd", vocab_size=258)
    assert tok.merges == [(ord("a"), ord("b")), (ord(" "), 256)]
    assert tok.vocab[257] == b" ab"


def test_bpe_ties_go_to_the_smallest_pair():
    # chunks "ba" and " dc": three pairs, each seen once; (32, 100) is the smallest
    tok = BPETokenizer.train("ba dc", vocab_size=257)
    assert tok.merges == [(ord(" "), ord("d"))]


def test_bpe_merges_do_not_cross_chunks_and_training_stops_when_nothing_is_left():
    tok = BPETokenizer.train("ab.ab.ab.", vocab_size=300)
    # "ab" and "." are separate chunks, so after merging (a, b) no pair is left
    assert tok.merges == [(ord("a"), ord("b"))]
    assert tok.vocab_size == 257


def test_bpe_incremental_training_matches_recounting_from_scratch():
    text = toy_grammar_corpus(150, seed=4) + chinese_corpus(100, seed=4) + "aaaaaaa  \n\n  "
    words = [list(c.encode("utf-8")) for c in re.findall(SPLIT_PATTERN, text)]
    expected = []
    for new_id in range(256, 356):  # the textbook algorithm: recount every pair each step
        counts = Counter(p for w in words for p in zip(w, w[1:]))
        top = max(counts.values())
        best = min(p for p, c in counts.items() if c == top)
        expected.append(best)
        words = [_merge(w, best, new_id) for w in words]
    assert BPETokenizer.train(text, vocab_size=356).merges == expected


def test_bpe_vocab_is_bytes_then_specials_then_merges(bpe):
    assert bpe.vocab_size == 400
    assert len(bpe.merges) == 400 - 256 - len(SPECIALS)
    vocab = bpe.vocab
    assert all(vocab[b] == bytes([b]) for b in range(256))
    assert [bpe.token_to_id(s) for s in SPECIALS] == [256, 257, 258, 259]
    for k, (a, b) in enumerate(bpe.merges):
        assert vocab[260 + k] == vocab[a] + vocab[b]


def test_bpe_training_is_deterministic(bpe):
    again = BPETokenizer.train(TRAIN_TEXT, vocab_size=400, specials=SPECIALS)
    assert again.merges == bpe.merges


def test_bpe_compresses_in_distribution_text(bpe):
    held_out = toy_grammar_corpus(200, seed=1) + chinese_corpus(200, seed=1)
    n_bytes = len(held_out.encode("utf-8"))
    n_tokens = len(bpe.encode(held_out))
    assert n_tokens < 0.5 * n_bytes


def test_bpe_special_tokens_only_when_allowed(bpe):
    eos = bpe.token_to_id("<eos>")
    plain = bpe.encode("hi<eos>")
    assert eos not in plain
    allowed = bpe.encode("hi<eos><pad>", allow_specials=True)
    assert allowed[-2:] == [eos, bpe.token_to_id("<pad>")]
    assert bpe.decode(allowed) == "hi<eos><pad>"
    assert bpe.decode(allowed, skip_specials=True) == "hi"


def test_bpe_on_a_large_corpus_round_trips_and_compresses():
    """A 180 KB corpus (speed of this is measured in bench/, not here)."""
    text = toy_grammar_corpus(3500, seed=2) + chinese_corpus(2500, seed=2)
    assert len(text.encode("utf-8")) > 180_000
    tok = BPETokenizer.train(text, vocab_size=512)
    ids = tok.encode(text[:100_000])
    assert tok.decode(ids) == text[:100_000]
    assert len(ids) < 0.5 * len(text[:100_000].encode("utf-8"))


# ---------------------------------------------------------------- BPE: save/load and errors


def test_bpe_save_load_gives_identical_encodings(bpe, tmp_path):
    path = tmp_path / "bpe.json"
    bpe.save(path)
    loaded = BPETokenizer.load(path)
    assert loaded.merges == bpe.merges
    assert loaded.vocab == bpe.vocab
    assert loaded.specials == bpe.specials
    for text in [TRAIN_TEXT[:2000], "unseen 文本 🙂 \ud800"]:
        assert loaded.encode(text) == bpe.encode(text)


def test_bpe_load_refuses_a_char_tokenizer_file(tmp_path):
    path = tmp_path / "char.json"
    CharTokenizer("abc").save(path)
    with pytest.raises(ValueError, match="char"):
        BPETokenizer.load(path)


@pytest.mark.parametrize("bad_id", [400, 10_000, -1])
def test_bpe_decode_out_of_range_names_the_id(bpe, bad_id):
    with pytest.raises(ValueError, match=f"{bad_id}.*400"):
        bpe.decode([104, bad_id])


def test_bpe_decode_accepts_tensors_and_replaces_invalid_utf8(bpe):
    assert bpe.decode(torch.tensor(bpe.encode("hello"))) == "hello"
    assert bpe.decode([0xE6, ord("a")]) == "\ufffda"  # a cut-off 3-byte character
    with pytest.raises(TypeError):
        bpe.decode([1.0])


def test_bpe_input_errors():
    with pytest.raises(ValueError, match="255.*258"):
        BPETokenizer.train("abc", vocab_size=255, specials=("<a>", "<b>"))
    with pytest.raises(ValueError, match="repeated"):
        BPETokenizer.train("abc", vocab_size=300, specials=("<a>", "<a>"))
    with pytest.raises(TypeError):
        BPETokenizer.train("abc", vocab_size=300).encode(b"abc")
    with pytest.raises(ValueError, match="special"):
        BPETokenizer([(97, 256)], specials=("<a>",))  # a merge may not use a special's id


# ---------------------------------------------------------------- CharTokenizer

ALPHABET = "abcdefghij .,\n我们学校🙂é\u0301"


@pytest.fixture(scope="module")
def char_tok():
    return CharTokenizer.from_text(ALPHABET, specials=SPECIALS)


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet=ALPHABET))
def test_char_roundtrips_text_on_its_alphabet(char_tok, text):
    ids = char_tok.encode(text)
    assert len(ids) == len(text)
    assert char_tok.decode(ids) == text


@settings(max_examples=200, deadline=None)
@given(text=st.text())
def test_char_built_from_any_text_roundtrips_it(text):
    tok = CharTokenizer(text)
    assert tok.vocab_size == len(set(text))
    assert tok.decode(tok.encode(text)) == text


def test_char_specials_come_first(char_tok):
    assert [char_tok.token_to_id(s) for s in SPECIALS] == [0, 1, 2, 3]
    assert char_tok.id_to_token(2) == "<eos>"
    assert char_tok.vocab_size == len(SPECIALS) + len(set(ALPHABET))
    ids = [char_tok.token_to_id("<bos>")] + char_tok.encode("abc")
    assert char_tok.decode(ids) == "<bos>abc"
    assert char_tok.decode(ids, skip_specials=True) == "abc"


def test_char_unknown_character_raises_or_maps_to_unk(char_tok):
    with pytest.raises(ValueError, match="'z'.*position 1"):
        char_tok.encode("az")
    with_unk = CharTokenizer("ab", specials=("<unk>",))
    assert with_unk.encode("azb") == [1, 0, 2]


def test_char_save_load_gives_identical_encodings(char_tok, tmp_path):
    path = tmp_path / "char.json"
    char_tok.save(path)
    loaded = CharTokenizer.load(path)
    assert loaded.vocab_size == char_tok.vocab_size
    assert loaded.encode(ALPHABET) == char_tok.encode(ALPHABET)
    odd = CharTokenizer("x\ud800y")  # a lone surrogate must survive JSON too
    odd.save(path)
    assert CharTokenizer.load(path).encode("\ud800yx") == odd.encode("\ud800yx")


@pytest.mark.parametrize("bad_id", [-1, len(SPECIALS) + len(set(ALPHABET))])
def test_char_decode_out_of_range_names_the_id(char_tok, bad_id):
    with pytest.raises(ValueError, match=str(bad_id)):
        char_tok.decode([0, bad_id])


def test_char_token_to_id_unknown_raises(char_tok):
    with pytest.raises(ValueError, match="<cls>"):
        char_tok.token_to_id("<cls>")
