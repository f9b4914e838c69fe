"""Generated corpora, toy tasks and batching helpers; nothing is downloaded.

Every generator takes a `seed` (or a torch.Generator) and returns the same data for the
same seed on every machine. Text generators use Python's `random.Random(seed)`; tensor
generators use a `torch.Generator` seeded with `seed`.
"""
from __future__ import annotations

import datetime
import random
from dataclasses import dataclass
from typing import Sequence

import torch

from .models import check_token_ids

# Ids reserved by copy_task / reverse_task: content tokens are drawn from
# [N_TASK_SPECIALS, vocab_size), so a model can add these around the sequences.
PAD_ID = 0
BOS_ID = 1
EOS_ID = 2
N_TASK_SPECIALS = 3


def _check_int(name: str, value, minimum: int) -> None:
    """Raise TypeError if `value` is not an int, ValueError if it is below `minimum`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


# ---------------------------------------------------------------------------------------
# A small English grammar, with number agreement between a subject and its verb
# ---------------------------------------------------------------------------------------

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
    _check_int("n_sentences", n_sentences, 1)
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
    _check_int("n", n, 1)
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


# ---------------------------------------------------------------------------------------
# A small Chinese corpus from templates
# ---------------------------------------------------------------------------------------

_ZH_SUBJECTS = ["我", "你", "他", "她", "我们", "他们", "老师", "学生", "妈妈", "爸爸", "小明", "小红", "朋友们"]
_ZH_TIMES = ["今天", "昨天", "明天", "早上", "晚上", "周末", "每天"]
_ZH_PLACES = ["学校", "家里", "公园", "图书馆", "饭店", "商店", "北京", "上海"]
_ZH_ADJECTIVES = ["高兴", "忙", "累", "开心"]
_ZH_VERB_OBJECTS = {  # each verb with the objects that go with it
    "吃": ["苹果", "米饭", "面条", "饺子"],
    "喝": ["茶", "咖啡", "牛奶", "水"],
    "看": ["书", "电影", "报纸"],
    "写": ["信", "作业", "小说"],
    "买": ["衣服", "水果", "书", "礼物"],
    "学习": ["中文", "数学", "历史", "音乐"],
}
_ZH_TEMPLATES = [
    "{time}{subj}在{place}{verb}{obj}。",
    "{subj}{time}去{place}{verb}{obj}。",
    "{subj}喜欢{verb}{obj}。",
    "{subj}{time}很{adj}。",
    "{subj}不想{verb}{obj}。",
]


def chinese_corpus(n_sentences: int, seed: int = 0) -> str:
    """`n_sentences` short Chinese sentences from templates, one per line, each ending with 。.

    Verbs only take objects that fit them (喝 takes 茶, not 米饭). Raises ValueError if n_sentences < 1.
    """
    _check_int("n_sentences", n_sentences, 1)
    rng = random.Random(seed)
    lines = []
    for _ in range(n_sentences):
        verb = rng.choice(sorted(_ZH_VERB_OBJECTS))
        slots = {
            "subj": rng.choice(_ZH_SUBJECTS), "time": rng.choice(_ZH_TIMES),
            "place": rng.choice(_ZH_PLACES), "adj": rng.choice(_ZH_ADJECTIVES),
            "verb": verb, "obj": rng.choice(_ZH_VERB_OBJECTS[verb]),
        }
        lines.append(rng.choice(_ZH_TEMPLATES).format(**slots))
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------
# Sequence-to-sequence toy tasks
# ---------------------------------------------------------------------------------------


def copy_task(n: int, length: int, vocab_size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random sequences and their copies: (src, tgt), both LongTensor (n, length), tgt == src.

    Tokens are drawn uniformly from [N_TASK_SPECIALS, vocab_size); ids PAD_ID=0, BOS_ID=1,
    EOS_ID=2 never occur, so the model can use them. Raises ValueError if vocab_size <= 3.
    """
    _check_int("n", n, 1)
    _check_int("length", length, 1)
    _check_int("vocab_size", vocab_size, N_TASK_SPECIALS + 1)
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(N_TASK_SPECIALS, vocab_size, (n, length), generator=g)
    return src, src.clone()


def reverse_task(n: int, length: int, vocab_size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random sequences and their reversals: (src, tgt), LongTensor (n, length), tgt = src flipped.

    Same ids and errors as `copy_task`.
    """
    src, _ = copy_task(n, length, vocab_size, seed)
    return src, src.flip(1)


# ---------------------------------------------------------------------------------------
# Dates, addition, sentiment: string tasks
# ---------------------------------------------------------------------------------------

_MONTHS = [
    "january", "february", "march", "april", "may", "june",
    "july", "august", "september", "october", "november", "december",
]
_WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]

# Written out here instead of taken from `calendar`/`strftime`, whose names depend on the locale.
_DATE_FORMATS = [
    lambda d: f"{_MONTHS[d.month - 1]} {d.day}, {d.year}",                 # march 5, 1999
    lambda d: f"{_MONTHS[d.month - 1].capitalize()} {d.day}, {d.year}",    # March 5, 1999
    lambda d: f"{d.day} {_MONTHS[d.month - 1][:3].capitalize()} {d.year}",  # 5 Mar 1999
    lambda d: f"{d.day} {_MONTHS[d.month - 1]} {d.year}",                  # 5 march 1999
    lambda d: f"{_WEEKDAYS[d.weekday()]}, {_MONTHS[d.month - 1]} {d.day}, {d.year}",  # friday, march 5, 1999
    lambda d: f"{d.day}.{d.month}.{d.year}",                               # 5.3.1999 (day first)
    lambda d: f"{d.year}年{d.month}月{d.day}日",                            # 1999年3月5日
]


def date_task(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """`n` pairs (human-readable date, ISO date), e.g. ("5 Mar 1999", "1999-03-05").

    Dates are uniform over 1900-01-01 .. 2099-12-31, written in one of 7 styles.
    Raises ValueError if n < 1.
    """
    _check_int("n", n, 1)
    rng = random.Random(seed)
    first = datetime.date(1900, 1, 1).toordinal()
    last = datetime.date(2099, 12, 31).toordinal()
    pairs = []
    for _ in range(n):
        d = datetime.date.fromordinal(rng.randint(first, last))
        pairs.append((rng.choice(_DATE_FORMATS)(d), d.isoformat()))
    return pairs


def addition_task(n: int, n_digits: int, seed: int = 0) -> list[tuple[str, str]]:
    """`n` pairs ("a+b=", "a+b as digits"), a and b uniform in [0, 10**n_digits), e.g. ("123+45=", "168").

    Raises ValueError if n < 1 or n_digits < 1.
    """
    _check_int("n", n, 1)
    _check_int("n_digits", n_digits, 1)
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        a, b = rng.randrange(10**n_digits), rng.randrange(10**n_digits)
        pairs.append((f"{a}+{b}=", str(a + b)))
    return pairs


def addition_text(n: int, n_digits: int, seed: int = 0) -> str:
    """The same problems as `addition_task`, as GPT-style training lines "123+45=168\\n"."""
    return "".join(f"{q}{a}\n" for q, a in addition_task(n, n_digits, seed))


_POSITIVE = ["good", "great", "excellent", "wonderful", "fun", "lovely", "amazing"]
_NEGATIVE = ["bad", "terrible", "boring", "awful", "poor", "dull", "disappointing"]
_REVIEW_NOUNS = ["movie", "book", "food", "service", "hotel", "game", "plot", "music", "acting"]
_INTENSIFIERS = ["", "", "very ", "really ", "quite "]
_LIKE_VERBS = {1: ["loved", "liked", "enjoyed"], 0: ["hated", "disliked"]}


def _review(rng: random.Random, label: int) -> str:
    """A short review whose sentiment is `label` (1 positive, 0 negative)."""
    same = _POSITIVE if label else _NEGATIVE
    other = _NEGATIVE if label else _POSITIVE
    noun, noun2 = rng.sample(_REVIEW_NOUNS, 2)
    template = rng.randrange(5)
    if template == 0:
        return f"the {noun} was {rng.choice(_INTENSIFIERS)}{rng.choice(same)}."
    if template == 1:  # negation flips the word's polarity: "not bad" is positive
        return f"the {noun} was not {rng.choice(other)}."
    if template == 2:
        return f"i {rng.choice(_LIKE_VERBS[label])} this {noun}."
    if template == 3:  # "did not like" is negative, "did not hate" is (mildly) positive
        verb = "hate" if label else rng.choice(["like", "enjoy", "love"])
        return f"i did not {verb} this {noun}."
    # The clause after "but" decides, so counting words is not enough.
    return f"the {noun} was {rng.choice(other)} but the {noun2} was {rng.choice(same)}."


def sentiment_task(n: int, seed: int = 0) -> list[tuple[str, int]]:
    """`n` generated reviews with labels (text, 1 = positive / 0 = negative), balanced in expectation.

    Includes negation ("the plot was not bad.") and contrast ("... but ...") so that a
    bag-of-words model cannot be perfect. Raises ValueError if n < 1.
    """
    _check_int("n", n, 1)
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        label = rng.randrange(2)
        out.append((_review(rng, label), label))
    return out


def review_aspects(text: str) -> list[tuple[str, int]] | None:
    """What a review of sentiment_task says about each thing it names: [(noun, 1 or 0), ...] in order.

    "the food was awful but the service was great." -> [("food", 0), ("service", 1)]; the other
    templates name one noun. Returns None for text sentiment_task never produces (an unknown word, a
    template that does not exist, a missing full stop, or a contrast whose halves have the same
    polarity or the same noun). Raises TypeError if text is not a str.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if not text.endswith("."):
        return None
    polarity = {**{w: 1 for w in _POSITIVE}, **{w: 0 for w in _NEGATIVE}}
    nouns, intensifiers = set(_REVIEW_NOUNS), {i.strip() for i in _INTENSIFIERS if i}
    match text[:-1].split(" "):
        case ["the", noun, "was", word] if noun in nouns and word in polarity:
            return [(noun, polarity[word])]
        case ["the", noun, "was", "not", word] if noun in nouns and word in polarity:
            return [(noun, 1 - polarity[word])]
        case ["the", noun, "was", very, word] if noun in nouns and very in intensifiers and word in polarity:
            return [(noun, polarity[word])]
        case ["i", verb, "this", noun] if noun in nouns and verb in _LIKE_VERBS[1] + _LIKE_VERBS[0]:
            return [(noun, int(verb in _LIKE_VERBS[1]))]
        case ["i", "did", "not", verb, "this", noun] if noun in nouns and verb in ("hate", "like", "enjoy", "love"):
            return [(noun, int(verb == "hate"))]
        case ["the", noun, "was", first, "but", "the", other, "was", second] if (
                noun in nouns and other in nouns and noun != other and first in polarity and second in polarity
                and polarity[first] != polarity[second]):
            return [(noun, polarity[first]), (other, polarity[second])]
    return None


def review_label(text: str) -> int | None:
    """The label sentiment_task gives `text` (1 positive, 0 negative), or None if it never produces it.

    An oracle for text that did not come from sentiment_task, such as a language model's samples: the
    label of the last thing the review names (after "but", the second clause decides); None as in
    review_aspects. Raises TypeError if text is not a str.
    """
    aspects = review_aspects(text)
    return None if aspects is None else aspects[-1][1]


# ---------------------------------------------------------------------------------------
# BERT pre-training: masked tokens and next-sentence pairs
# ---------------------------------------------------------------------------------------


def mask_tokens(
    ids: torch.Tensor,
    vocab_size: int,
    mask_id: int,
    special_ids: Sequence[int] = (),
    p: float = 0.15,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking rule: returns (inputs, labels), both shaped like `ids` (B, T).

    Each position whose id is not in `special_ids` is selected with probability p. A selected
    position becomes mask_id (80%), a random id (10%; uniform over ids that are neither special
    nor mask_id), or stays unchanged (10%). labels holds the original id where selected and
    -100 (ignored by cross_entropy) elsewhere. `ids` is not modified. Draws use `generator`
    (or torch's global RNG if None). Raises ValueError for p outside (0, 1], mask_id or an id
    outside [0, vocab_size), ids not 2-D, or no id left to draw; TypeError unless ids is a long/int tensor.
    """
    check_token_ids(ids, vocab_size, "ids")
    if not 0 < p <= 1:
        raise ValueError(f"p must be in (0, 1], got {p}")
    if not 0 <= mask_id < vocab_size:
        raise ValueError(f"mask_id {mask_id} is out of range for vocab_size {vocab_size}")
    specials = set(int(s) for s in special_ids)
    excluded = specials | {mask_id}
    keep = torch.ones(vocab_size, dtype=torch.bool)
    keep[[i for i in excluded if 0 <= i < vocab_size]] = False
    allowed = keep.nonzero().squeeze(1)
    if len(allowed) == 0:
        raise ValueError(f"no ordinary token left to draw: all {vocab_size} ids are special or mask_id")

    # Draw on the generator's device (a CPU generator cannot fill a CUDA tensor), then move.
    device = generator.device if generator is not None else ids.device
    select_u = torch.rand(ids.shape, generator=generator, device=device).to(ids.device)
    action_u = torch.rand(ids.shape, generator=generator, device=device).to(ids.device)
    random_ix = torch.randint(len(allowed), ids.shape, generator=generator, device=device)
    random_tokens = allowed.to(device)[random_ix].to(ids.device, ids.dtype)

    special = torch.zeros_like(ids, dtype=torch.bool)
    for s in specials:
        special |= ids == s
    selected = (select_u < p) & ~special
    to_mask = selected & (action_u < 0.8)
    to_random = selected & (action_u >= 0.8) & (action_u < 0.9)

    labels = torch.where(selected, ids, torch.full_like(ids, -100))
    inputs = torch.where(to_mask, torch.full_like(ids, mask_id), ids)
    inputs = torch.where(to_random, random_tokens, inputs)
    return inputs, labels


def nsp_pairs(documents: Sequence, n: int, seed: int = 0) -> list[tuple[str, str, int]]:
    """`n` next-sentence-prediction triples (sentence_a, sentence_b, label), as in BERT.

    Label 0 = IsNext: b is the sentence right after a in the same document (probability 1/2).
    Label 1 = NotNext: b is a random sentence from another document.
    `documents` is a list of documents, each a list of sentences; a flat list of strings is
    taken as one document, and NotNext then picks any sentence other than a and its successor.
    Raises ValueError if no document has two sentences, or a flat list has fewer than three.
    """
    _check_int("n", n, 1)
    if len(documents) and all(isinstance(s, str) for s in documents):
        docs = [list(documents)]
    else:
        docs = [list(d) for d in documents]
    starts = [(d, i) for d, doc in enumerate(docs) for i in range(len(doc) - 1)]
    if not starts:
        raise ValueError("nsp_pairs needs at least one document with two or more sentences")
    if len(docs) == 1 and len(docs[0]) < 3:
        raise ValueError(f"a single document needs >= 3 sentences for NotNext pairs, got {len(docs[0])}")
    nonempty = [d for d, doc in enumerate(docs) if doc]
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        d, i = rng.choice(starts)
        a = docs[d][i]
        if rng.random() < 0.5:
            out.append((a, docs[d][i + 1], 0))
            continue
        if len(docs) == 1:
            j = rng.choice([j for j in range(len(docs[0])) if j not in (i, i + 1)])
            out.append((a, docs[0][j], 1))
        else:
            other = rng.choice([k for k in nonempty if k != d])
            out.append((a, rng.choice(docs[other]), 1))
    return out


# ---------------------------------------------------------------------------------------
# Batching
# ---------------------------------------------------------------------------------------


def pad_batch(
    sequences: Sequence[Sequence[int]],
    pad_id: int,
    max_len: int | None = None,
    side: str = "right",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad id sequences into one tensor: returns (ids LongTensor (B, T), lengths LongTensor (B,)).

    T is `max_len` if given, else the longest sequence. side="left" puts the padding first,
    which decoder-only models want for batched generation. Raises ValueError for an empty
    batch, a sequence longer than max_len, or an unknown side.
    """
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    if len(sequences) == 0:
        raise ValueError("pad_batch needs at least one sequence")
    seqs = [torch.as_tensor(s, dtype=torch.long).reshape(-1) for s in sequences]
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)
    longest = int(lengths.max())
    if max_len is None:
        max_len = longest
    elif longest > max_len:
        b = int(lengths.argmax())
        raise ValueError(f"sequence {b} has length {longest}, longer than max_len {max_len}")
    out = torch.full((len(seqs), max_len), pad_id, dtype=torch.long)
    for b, s in enumerate(seqs):
        if len(s) == 0:
            continue  # out[b, -0:] would be the whole row
        if side == "right":
            out[b, : len(s)] = s
        else:
            out[b, -len(s):] = s
    return out, lengths


def teacher_forcing_targets(
    targets: Sequence[Sequence[int]],
    bos_id: int = BOS_ID,
    eos_id: int = EOS_ID,
    pad_id: int = PAD_ID,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoder inputs and labels for teacher forcing: (inputs, labels), LongTensor (B, T + 1) each.

    For a target t_1 .. t_n (without bos/eos): inputs = bos t_1 .. t_n, labels = t_1 .. t_n eos,
    so position i sees the true tokens before t_i and is asked for t_i (labels = inputs shifted
    left by one). Rows are right-padded with pad_id to the longest target plus one; T = its length.
    Raises ValueError for an empty batch.
    """
    if len(targets) == 0:
        raise ValueError("teacher_forcing_targets needs at least one target sequence")
    rows = [[int(t) for t in torch.as_tensor(seq, dtype=torch.long).reshape(-1).tolist()] for seq in targets]
    inputs, _ = pad_batch([[bos_id] + r for r in rows], pad_id)
    labels, _ = pad_batch([r + [eos_id] for r in rows], pad_id)
    return inputs, labels


def lm_batch(
    ids: torch.Tensor | Sequence[int],
    batch_size: int,
    block_size: int,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random windows of a 1-D token stream for LM training: (x, y), LongTensor (batch_size, block_size).

    y is x shifted left by one: y[b, t] = ids[start_b + t + 1]. Windows start uniformly in
    [0, len(ids) - block_size - 1]. Raises ValueError unless ids is 1-D and block_size < len(ids).
    """
    ids = torch.as_tensor(ids)
    if ids.dim() != 1:
        raise ValueError(f"ids must be 1-D, got shape {tuple(ids.shape)}")
    _check_int("batch_size", batch_size, 1)
    _check_int("block_size", block_size, 1)
    if block_size >= len(ids):
        raise ValueError(f"block_size {block_size} must be < len(ids) {len(ids)} (one extra token for y)")
    device = generator.device if generator is not None else torch.device("cpu")
    starts = torch.randint(len(ids) - block_size, (batch_size,), generator=generator, device=device)
    index = starts.to(ids.device)[:, None] + torch.arange(block_size, device=ids.device)
    return ids[index].long(), ids[index + 1].long()
