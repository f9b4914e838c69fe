"""A small English grammar with subject-verb agreement: its corpus, its word classes, a parser that
reads a sentence back, and the agreement task built on it.

Used in chapters 1, Background: from n-grams to large language models; 2, Core concepts; 3,
Attention, step by step; 5, Pretraining; and 8, Scaling and unit scaling.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from ._validate import check_int

_NOUNS = [  # (singular, plural)
    ("cat", "cats"), ("dog", "dogs"), ("bird", "birds"), ("child", "children"),
    ("teacher", "teachers"), ("farmer", "farmers"), ("mouse", "mice"), ("fox", "foxes"),
]
_ADJECTIVES = ["small", "big", "happy", "old", "young", "hungry", "lazy", "clever", "brown"]
_DETERMINERS = {"sg": ["the", "a", "every", "this"], "pl": ["the", "some", "these", "many", "two"]}
_TRANSITIVE = [  # (plural / base form, third person singular)
    ("chase", "chases"), ("see", "sees"), ("like", "likes"),
    ("follow", "follows"), ("feed", "feeds"), ("watch", "watches"),
]
_INTRANSITIVE = [("sleep", "sleeps"), ("run", "runs"), ("sing", "sings"), ("wait", "waits"), ("laugh", "laughs")]
_PREPOSITIONS = ["in", "near", "under", "behind", "on"]
_PLACES = ["garden", "river", "tree", "house", "hill", "road"]


def _word_classes() -> dict[str, tuple[str, ...]]:
    """Every word the grammar can write, by class: each word in exactly one class."""
    determiners = list(dict.fromkeys(_DETERMINERS["sg"] + _DETERMINERS["pl"]))
    determiners.insert(determiners.index("a") + 1, "an")  # "a" becomes "an" before a vowel
    verbs = _TRANSITIVE + _INTRANSITIVE + [("are", "is")]
    return {
        "determiner": tuple(determiners),
        "adjective": tuple(_ADJECTIVES),
        "noun, singular": tuple(sg for sg, _ in _NOUNS),
        "noun, plural": tuple(pl for _, pl in _NOUNS),
        "place": tuple(_PLACES),
        "verb, singular": tuple(sg for _, sg in verbs),
        "verb, plural": tuple(pl for pl, _ in verbs),
        "preposition": tuple(_PREPOSITIONS),
        "other": ("that", "."),
    }


# The vocabulary of toy_grammar_corpus by word class; "." counts as a word.
TOY_GRAMMAR_WORD_CLASSES = _word_classes()


def _noun_phrase(rng: random.Random, number: str) -> str:
    """A determiner, maybe an adjective, and a noun in `number` ("sg" or "pl")."""
    det = rng.choice(_DETERMINERS[number])
    words = [rng.choice(_ADJECTIVES)] if rng.random() < 0.4 else []
    words.append(rng.choice(_NOUNS)[0 if number == "sg" else 1])
    if det == "a" and words[0][0] in "aeiou":
        det = "an"
    return " ".join([det] + words)


def _verb(rng: random.Random, verbs: list[tuple[str, str]], number: str) -> str:
    """A verb from `verbs` agreeing with a subject of `number`."""
    return rng.choice(verbs)[1 if number == "sg" else 0]


def _sentence(rng: random.Random) -> str:
    """One sentence: subject, optional relative clause, verb phrase, optional place."""
    number = rng.choice(["sg", "pl"])
    words = [_noun_phrase(rng, number)]
    r = rng.random()
    if r < 0.15:
        # Object relative clause: the main verb must agree with the head noun, not with
        # the nearer noun inside the clause ("the cat that the dogs chase IS ...").
        inner = rng.choice(["sg", "pl"])
        words += ["that", _noun_phrase(rng, inner), _verb(rng, _TRANSITIVE, inner)]
    elif r < 0.3:
        words += ["that", _verb(rng, _TRANSITIVE, number), _noun_phrase(rng, rng.choice(["sg", "pl"]))]
    kind = rng.random()
    if kind < 0.4:
        words += [_verb(rng, _TRANSITIVE, number), _noun_phrase(rng, rng.choice(["sg", "pl"]))]
    elif kind < 0.75:
        words.append(_verb(rng, _INTRANSITIVE, number))
    else:
        words += ["is" if number == "sg" else "are", rng.choice(_ADJECTIVES)]
    if rng.random() < 0.3:
        words += [rng.choice(_PREPOSITIONS), "the", rng.choice(_PLACES)]
    return " ".join(words) + "."


def toy_grammar_corpus(n_sentences: int, seed: int = 0) -> str:
    """`n_sentences` lowercase English sentences from a small grammar, one per line.

    The grammar has subject-verb agreement, also across relative clauses
    ("the cat that the dogs chase is happy."), so there is structure to learn.
    Raises ValueError if n_sentences < 1.
    """
    check_int("n_sentences", n_sentences, 1)
    rng = random.Random(seed)
    return "\n".join(_sentence(rng) for _ in range(n_sentences)) + "\n"


# Reading the grammar back: which noun is the subject, and where is the verb that must agree with it?
_SINGULAR_OF = {sg: sg for sg, _ in _NOUNS} | {pl: sg for sg, pl in _NOUNS}
_NOUN_NUMBER = {sg: "sg" for sg, _ in _NOUNS} | {pl: "pl" for _, pl in _NOUNS}


def _verb_tables():
    """(word, number) -> "transitive" / "intransitive" / "copula", and each verb form -> its other number."""
    kinds, other_form = {}, {}
    for kind, verbs in (("transitive", _TRANSITIVE), ("intransitive", _INTRANSITIVE), ("copula", [("are", "is")])):
        for plural, singular in verbs:
            kinds[singular, "sg"], kinds[plural, "pl"] = kind, kind
            other_form[singular], other_form[plural] = plural, singular  # chases <-> chase
    return kinds, other_form


_VERB_KIND, _OTHER_NUMBER_FORM = _verb_tables()


@dataclass(frozen=True)
class ToySentence:
    """What parse_toy_sentence reads from a sentence of the toy grammar.

    words: the sentence as words, "." a word of its own; subject: the singular form of the subject
    noun ("mice" -> "mouse"); number: "sg" or "pl"; verb_index: the position in `words` of the main
    verb, the one that agrees with the subject.
    """

    words: tuple[str, ...]
    subject: str
    number: str
    verb_index: int


def _parse_noun_phrase(words, i):
    """(index after the phrase, number, singular noun) for a noun phrase at words[i], or None."""
    if i + 1 >= len(words) or words[i] not in _DETERMINERS["sg"] + _DETERMINERS["pl"] + ["an"]:
        return None
    det, j = words[i], i + 1
    if det in ("a", "an") and (words[j][0] in "aeiou") != (det == "an"):
        return None  # "a old cat", "an cat"
    if words[j] in _ADJECTIVES:
        j += 1
    number = _NOUN_NUMBER.get(words[j]) if j < len(words) else None
    if number is None or not (det in _DETERMINERS[number] or (det == "an" and number == "sg")):
        return None  # not a noun, or "a cats", "many cat"
    return j + 1, number, _SINGULAR_OF[words[j]]


def _verb_at(words, i, number, kind):
    return i < len(words) and _VERB_KIND.get((words[i], number)) == kind


def parse_toy_sentence(sentence: str) -> ToySentence | None:
    """Parse one sentence of toy_grammar_corpus; None if the grammar cannot produce it.

    Checks every rule of the generator: word order, "a"/"an", determiner-noun and subject-verb
    agreement (also across a relative clause), a final ".". Surrounding whitespace is ignored.
    """
    words = sentence.replace(".", " .").split()
    if len(words) < 2 or words[-1] != "." or "." in words[:-1]:
        return None
    body = words[:-1]
    subject = _parse_noun_phrase(body, 0)
    if subject is None:
        return None
    i, number, noun = subject
    if i < len(body) and body[i] == "that":
        inner = _parse_noun_phrase(body, i + 1)
        if inner is not None:  # object relative: "that the dogs chase"
            if not _verb_at(body, inner[0], inner[1], "transitive"):
                return None
            i = inner[0] + 1
        else:  # subject relative: "that chases a mouse"
            obj = _parse_noun_phrase(body, i + 2) if _verb_at(body, i + 1, number, "transitive") else None
            if obj is None:
                return None
            i = obj[0]
    verb_index = i
    if _verb_at(body, i, number, "transitive"):
        obj = _parse_noun_phrase(body, i + 1)
        if obj is None:
            return None
        i = obj[0]
    elif _verb_at(body, i, number, "intransitive"):
        i += 1
    elif _verb_at(body, i, number, "copula") and i + 1 < len(body) and body[i + 1] in _ADJECTIVES:
        i += 2
    else:
        return None
    place = body[i:]
    if place and not (len(place) == 3 and place[0] in _PREPOSITIONS and place[1] == "the" and place[2] in _PLACES):
        return None
    return ToySentence(tuple(words), noun, number, verb_index)


def agreement_task(n: int, seed: int = 0) -> list[tuple[str, int]]:
    """`n` toy-grammar sentences labelled 1 if the main verb agrees with the subject, 0 if not.

    Half of them (in expectation) have their main verb put in the other number ("the cat that the
    dogs chase are happy."), so only subject-verb agreement tells the classes apart: both contain
    the same words otherwise. Raises ValueError if n < 1.
    """
    check_int("n", n, 1)
    rng = random.Random(seed)
    out = []
    for line in toy_grammar_corpus(n, seed=seed).splitlines():
        label = rng.randrange(2)
        if label == 0:
            parsed = parse_toy_sentence(line)
            words = list(parsed.words)
            words[parsed.verb_index] = _OTHER_NUMBER_FORM[words[parsed.verb_index]]
            line = " ".join(words[:-1]) + "."
        out.append((line, label))
    return out
