"""Tests for llmbook.data: generated corpora and tasks, BERT masking, padding, LM batches."""
import datetime
import re
from collections import defaultdict

import pytest
import torch

from llmbook import data
from llmbook.data import (
    addition_task,
    addition_text,
    chinese_corpus,
    copy_task,
    date_task,
    lm_batch,
    mask_tokens,
    nsp_pairs,
    pad_batch,
    reverse_task,
    sentiment_task,
    teacher_forcing_targets,
    toy_grammar_corpus,
)

GENERATORS = {
    "toy_grammar": lambda seed: toy_grammar_corpus(50, seed=seed),
    "chinese": lambda seed: chinese_corpus(50, seed=seed),
    "copy": lambda seed: copy_task(8, 10, 20, seed=seed),
    "reverse": lambda seed: reverse_task(8, 10, 20, seed=seed),
    "date": lambda seed: date_task(20, seed=seed),
    "addition": lambda seed: addition_task(20, 3, seed=seed),
    "sentiment": lambda seed: sentiment_task(20, seed=seed),
    "nsp": lambda seed: nsp_pairs([["a", "b", "c"], ["d", "e", "f"]], 30, seed=seed),
}


def _same(a, b) -> bool:
    if isinstance(a, tuple) and isinstance(a[0], torch.Tensor):
        return all(torch.equal(x, y) for x, y in zip(a, b))
    return a == b


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_generators_are_deterministic_and_depend_on_the_seed(name):
    make = GENERATORS[name]
    assert _same(make(0), make(0))
    assert not _same(make(0), make(1))


# ---------------------------------------------------------------- corpora

_DETS = {"the", "a", "an", "every", "this", "some", "these", "many", "two"}
_SG_NOUNS = {sg for sg, _ in data._NOUNS}
_PL_NOUNS = {pl for _, pl in data._NOUNS}
_SG_VERBS = {sg for _, sg in data._TRANSITIVE + data._INTRANSITIVE} | {"is"}
_PL_VERBS = {pl for pl, _ in data._TRANSITIVE + data._INTRANSITIVE} | {"are"}


def _skip_noun_phrase(words, i):
    """Index just after the noun phrase starting at words[i], and that phrase's noun."""
    assert words[i] in _DETS, words
    i += 1
    while words[i] not in _SG_NOUNS | _PL_NOUNS:
        i += 1  # adjectives
    return i + 1, words[i]


def test_toy_grammar_subject_and_main_verb_agree_across_relative_clauses():
    lines = toy_grammar_corpus(2000, seed=3).splitlines()
    assert len(lines) == 2000
    n_object_relatives = 0
    for line in lines:
        assert line.endswith(".") and line == line.lower()
        assert not re.search(r"\ba [aeiou]", line), line  # "an old cat", never "a old cat"
        words = line[:-1].split()
        i, head = _skip_noun_phrase(words, 0)
        if words[i] == "that":
            if words[i + 1] in _DETS:  # "the cat that the dogs chase ..."
                i, inner = _skip_noun_phrase(words, i + 1)
                assert words[i] in (_SG_VERBS if inner in _SG_NOUNS else _PL_VERBS), line
                n_object_relatives += 1
                i += 1
            else:  # "the cat that chases the dogs ..."
                assert words[i + 1] in (_SG_VERBS if head in _SG_NOUNS else _PL_VERBS), line
                i, _ = _skip_noun_phrase(words, i + 2)
        main_verb = words[i]
        assert main_verb in (_SG_VERBS if head in _SG_NOUNS else _PL_VERBS), line
    assert n_object_relatives > 100


def test_parse_toy_sentence_reads_every_generated_sentence():
    for line in toy_grammar_corpus(3000, seed=4).splitlines():
        parsed = data.parse_toy_sentence(line)
        assert parsed is not None, line
        assert parsed.words[-1] == "." and " ".join(parsed.words[:-1]) + "." == line
        verb = parsed.words[parsed.verb_index]
        assert verb in (_SG_VERBS if parsed.number == "sg" else _PL_VERBS), line
    parsed = data.parse_toy_sentence("the cat that the dogs chase is happy near the river.")
    assert (parsed.subject, parsed.number, parsed.words[parsed.verb_index]) == ("cat", "sg", "is")
    assert data.parse_toy_sentence("  many old mice sleep. ").subject == "mouse"


@pytest.mark.parametrize("sentence", [
    "the cat that the dogs chase are happy.",  # main verb agrees with the nearer noun
    "the cats sleeps.", "a cats sleep.", "many cat sleeps.", "a old cat sleeps.", "an cat sleeps.",
    "the dogs that chases the cat run.", "the dog that the cats chases runs.",
    "the dog sleeps", "the dog sleeps. the cat runs.", "dog sleeps.", "the dog chases.",
    "the dog sleeps under the tree near.", "the dog is.", "the dog sleeps the cat.", "", ".",
])
def test_parse_toy_sentence_rejects_what_the_grammar_cannot_say(sentence):
    assert data.parse_toy_sentence(sentence) is None


def test_agreement_task_differs_only_in_the_main_verb():
    pairs = data.agreement_task(2000, seed=5)
    originals = toy_grammar_corpus(2000, seed=5).splitlines()
    assert 0.45 < sum(label for _, label in pairs) / len(pairs) < 0.55
    for (sentence, label), original in zip(pairs, originals):
        parsed = data.parse_toy_sentence(original)
        if label == 1:
            assert sentence == original
            continue
        assert data.parse_toy_sentence(sentence) is None, sentence
        changed = [i for i, (a, b) in enumerate(zip(sentence[:-1].split(), original[:-1].split())) if a != b]
        assert changed == [parsed.verb_index], (sentence, original)
    assert data.agreement_task(50, seed=1) == data.agreement_task(50, seed=1)
    with pytest.raises(ValueError, match="n must be >= 1"):
        data.agreement_task(0)


def test_chinese_corpus_is_chinese_sentences_ending_with_full_stop():
    lines = chinese_corpus(300, seed=0).splitlines()
    assert len(lines) == 300
    for line in lines:
        assert line.endswith("。")
        assert all("\u4e00" <= ch <= "\u9fff" for ch in line[:-1]), line
    assert len(set(lines)) > 200


# ---------------------------------------------------------------- seq2seq tasks


def test_copy_task_copies_and_avoids_reserved_ids():
    src, tgt = copy_task(64, 12, 10, seed=0)
    assert src.shape == tgt.shape == (64, 12) and src.dtype == torch.long
    assert torch.equal(src, tgt)
    assert src.min() >= data.N_TASK_SPECIALS and src.max() <= 9
    assert set(src.unique().tolist()) == set(range(3, 10))


def test_reverse_task_reverses():
    src, tgt = reverse_task(16, 7, 50, seed=1)
    for row_src, row_tgt in zip(src.tolist(), tgt.tolist()):
        assert row_tgt == row_src[::-1]
    assert not torch.equal(src, tgt)


def test_seq2seq_tasks_reject_a_vocab_without_room_for_content():
    with pytest.raises(ValueError, match="vocab_size.*4.*3"):
        copy_task(4, 5, vocab_size=3)


# ---------------------------------------------------------------- string tasks

_MONTH = {name: k + 1 for k, name in enumerate(data._MONTHS)}
_MONTH.update({name[:3]: k for name, k in list(_MONTH.items())})


def _parse_date(text):
    """An independent parser for the styles date_task writes; returns (date, weekday name or None)."""
    t = text.lower()
    if m := re.fullmatch(r"(?:(\w+), )?([a-z]+) (\d{1,2}), (\d{4})", t):
        return datetime.date(int(m[4]), _MONTH[m[2]], int(m[3])), m[1]
    if m := re.fullmatch(r"(\d{1,2}) ([a-z]+) (\d{4})", t):
        return datetime.date(int(m[3]), _MONTH[m[2]], int(m[1])), None
    if m := re.fullmatch(r"(\d{1,2})\.(\d{1,2})\.(\d{4})", t):
        return datetime.date(int(m[3]), int(m[2]), int(m[1])), None
    if m := re.fullmatch(r"(\d{4})年(\d{1,2})月(\d{1,2})日", t):
        return datetime.date(int(m[1]), int(m[2]), int(m[3])), None
    raise AssertionError(f"unexpected date style: {text!r}")


def test_dates_map_to_the_right_iso_date():
    pairs = date_task(1000, seed=0)
    styles = set()
    for source, target in pairs:
        date, weekday = _parse_date(source)
        assert date.isoformat() == target
        if weekday is not None:
            assert weekday == date.strftime("%A").lower()
        styles.add(re.sub(r"\d+", "0", source.lower()).split()[0][:3])
    assert len(styles) >= 5  # the styles really vary
    years = {int(t[:4]) for _, t in pairs}
    assert min(years) < 1920 and max(years) > 2080


def test_addition_targets_are_correct():
    pairs = addition_task(500, 3, seed=0)
    for question, answer in pairs:
        m = re.fullmatch(r"(\d+)\+(\d+)=", question)
        a, b = int(m[1]), int(m[2])
        assert a < 1000 and b < 1000
        assert int(answer) == a + b and answer == str(a + b)
    assert any(int(a) >= 1000 for _, a in pairs)  # carries into a 4th digit happen
    lines = addition_text(500, 3, seed=0).splitlines()
    assert lines == [q + a for q, a in pairs]


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
    x, y = lm_batch(stream, batch_size=512, block_size=8, generator=torch.Generator().manual_seed(0))
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
    with pytest.raises(ValueError, match="block_size 50.*50"):
        lm_batch(stream, 4, 50)
    with pytest.raises(ValueError, match="1-D"):
        lm_batch(stream.view(5, 10), 4, 3)
    x, y = lm_batch(list(range(10)), 2, 9)  # the only window: 0..8 -> 1..9
    assert x.tolist() == [list(range(9))] * 2 and y.tolist() == [list(range(1, 10))] * 2


def test_review_label_recovers_every_generated_label_and_rejects_other_text():
    for text, label in sentiment_task(5000, seed=3):
        assert data.review_label(text) == label, text
    assert data.review_label("the plot was not bad.") == 1
    assert data.review_label("the food was great but the service was awful.") == 0
    assert data.review_aspects("the food was great but the service was awful.") == [("food", 1), ("service", 0)]
    assert data.review_aspects("i did not hate this plot.") == [("plot", 1)]
    for text in ["the movie was good", "the movie was superb.", "the movie was not very good.",
                 "the movie was good but the movie was bad.", "the movie was good but the plot was great.",
                 "i did not enjoyed this movie.", "i loved this.", "", "."]:
        assert data.review_label(text) is None and data.review_aspects(text) is None, text
    with pytest.raises(TypeError, match="str"):
        data.review_label(3)
    with pytest.raises(TypeError, match="str"):
        data.review_aspects(None)
