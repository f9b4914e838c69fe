"""The toy grammar (llmbook.data.toy_grammar): its sentences agree, its parser reads them back,
its agreement task changes only the main verb, and its word classes are its vocabulary."""
import re

import pytest

from llmbook.data import TOY_GRAMMAR_WORD_CLASSES, agreement_task, parse_toy_sentence, toy_grammar_corpus

_DETS = {"the", "a", "an", "every", "this", "some", "these", "many", "two"}
_SG_NOUNS = set(TOY_GRAMMAR_WORD_CLASSES["noun, singular"])
_PL_NOUNS = set(TOY_GRAMMAR_WORD_CLASSES["noun, plural"])
_SG_VERBS = set(TOY_GRAMMAR_WORD_CLASSES["verb, singular"])
_PL_VERBS = set(TOY_GRAMMAR_WORD_CLASSES["verb, plural"])


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
        parsed = parse_toy_sentence(line)
        assert parsed is not None, line
        assert parsed.words[-1] == "." and " ".join(parsed.words[:-1]) + "." == line
        verb = parsed.words[parsed.verb_index]
        assert verb in (_SG_VERBS if parsed.number == "sg" else _PL_VERBS), line
    parsed = parse_toy_sentence("the cat that the dogs chase is happy near the river.")
    assert (parsed.subject, parsed.number, parsed.words[parsed.verb_index]) == ("cat", "sg", "is")
    assert parse_toy_sentence("  many old mice sleep. ").subject == "mouse"


@pytest.mark.parametrize("sentence", [
    "the cat that the dogs chase are happy.",  # main verb agrees with the nearer noun
    "the cats sleeps.", "a cats sleep.", "many cat sleeps.", "a old cat sleeps.", "an cat sleeps.",
    "the dogs that chases the cat run.", "the dog that the cats chases runs.",
    "the dog sleeps", "the dog sleeps. the cat runs.", "dog sleeps.", "the dog chases.",
    "the dog sleeps under the tree near.", "the dog is.", "the dog sleeps the cat.", "", ".",
])
def test_parse_toy_sentence_rejects_what_the_grammar_cannot_say(sentence):
    assert parse_toy_sentence(sentence) is None


def test_agreement_task_differs_only_in_the_main_verb():
    pairs = agreement_task(2000, seed=5)
    originals = toy_grammar_corpus(2000, seed=5).splitlines()
    assert 0.45 < sum(label for _, label in pairs) / len(pairs) < 0.55
    for (sentence, label), original in zip(pairs, originals):
        parsed = parse_toy_sentence(original)
        if label == 1:
            assert sentence == original
            continue
        assert parse_toy_sentence(sentence) is None, sentence
        changed = [i for i, (a, b) in enumerate(zip(sentence[:-1].split(), original[:-1].split())) if a != b]
        assert changed == [parsed.verb_index], (sentence, original)
    assert agreement_task(50, seed=1) == agreement_task(50, seed=1)
    with pytest.raises(ValueError, match="n must be >= 1"):
        agreement_task(0)


def test_word_classes_are_exactly_the_words_of_the_corpus():
    words = [w for members in TOY_GRAMMAR_WORD_CLASSES.values() for w in members]
    assert len(words) == len(set(words)) == 71  # each word in one class
    assert set(words) == set(toy_grammar_corpus(3000, seed=0).replace(".", " .").split())
    assert {"is", "sleeps", "mouse"} <= _SG_VERBS | _SG_NOUNS and {"are", "sleep", "mice"} <= _PL_VERBS | _PL_NOUNS
    assert _DETS == set(TOY_GRAMMAR_WORD_CLASSES["determiner"])
