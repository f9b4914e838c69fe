"""Two tokenizers the book builds by hand: one id per character, and byte-level BPE.

Both are pure Python (no torch needed), deterministic, and save to / load from JSON.
`encode` returns a plain list of ints; `decode` accepts a list of ints, or anything with a
`.tolist()` such as a 1-D torch tensor or NumPy array.

Taught in chapter 2, Core concepts.
"""
from __future__ import annotations

import heapq
import json
import os
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

# How BPE cuts text into chunks before merging; merges never cross a chunk boundary, so
# " the" can become one token but "e t" cannot. Alternatives, tried left to right:
# English contractions, a run of letters (CJK characters count as letters, so a Chinese
# clause is one chunk) with an optional leading space, 1-3 digits, a run of punctuation or
# other symbols (underscore included), whitespace that is not followed by a word (so the
# last space attaches to the next word), any other whitespace, and finally any single
# character, so that every character of every string lands in some chunk.
SPLIT_PATTERN = (
    r"'(?:s|t|re|ve|m|ll|d)"
    r"| ?[^\W\d_]+"
    r"| ?\d{1,3}"
    r"| ?(?:[^\s\w]|_)+"
    r"|\s+(?!\S)"
    r"|\s+"
    r"|[\s\S]"
)

# Strings are turned into bytes with "surrogatepass" so that even Python strings holding
# lone surrogates (not valid Unicode, but legal `str` values) round-trip exactly.
_TEXT_ERRORS = "surrogatepass"


def _as_id_list(ids) -> list[int]:
    """Turn a list / tuple / 1-D tensor / 1-D array of token ids into a list of Python ints.

    Raises TypeError if an element is not an integer (floats are refused, not truncated).
    """
    if hasattr(ids, "tolist"):
        ids = ids.tolist()
    out = list(ids)
    for i in out:
        if not isinstance(i, int):
            raise TypeError(f"token ids must be integers, got {i!r} of type {type(i).__name__}")
    return out


def _check_specials(specials: Sequence[str]) -> list[str]:
    """Return `specials` as a list after checking they are distinct, non-empty strings.

    Raises TypeError for a non-string, ValueError for an empty or repeated one.
    """
    if isinstance(specials, str):
        raise TypeError(f"specials must be a sequence of strings, not the string {specials!r}")
    out = list(specials)
    for s in out:
        if not isinstance(s, str):
            raise TypeError(f"special tokens must be strings, got {s!r}")
        if s == "":
            raise ValueError("special tokens must be non-empty strings")
    repeated = sorted(s for s, c in Counter(out).items() if c > 1)
    if repeated:
        raise ValueError(f"special tokens must be distinct, repeated: {repeated}")
    return out


def _write_json(path: str | os.PathLike, obj: dict) -> None:
    """Write `obj` to `path` as JSON (ASCII-escaped, so any string survives, surrogates too)."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1)


def _read_json(path: str | os.PathLike, kind: str) -> dict:
    """Read a tokenizer JSON file and check it holds a tokenizer of `kind`.

    Raises ValueError if the file was saved by a different kind of tokenizer.
    """
    with open(path, encoding="utf-8") as f:
        obj = json.load(f)
    if obj.get("kind") != kind:
        raise ValueError(f"{path} holds a tokenizer of kind {obj.get('kind')!r}, expected {kind!r}")
    return obj


class CharTokenizer:
    """One token per character: specials get ids 0..k-1, then the sorted alphabet.

    If "<unk>" is among the specials, characters outside the alphabet encode to its id;
    otherwise encoding one raises ValueError naming it. Special strings inside the text
    are NOT parsed: "<pad>" in text is five ordinary characters. Use `token_to_id("<pad>")`.
    """

    def __init__(self, text: Iterable[str], specials: Sequence[str] = ()):
        """Build the vocabulary from the characters of `text` (a string, or any iterable of characters).

        A single-character special that also occurs in `text` keeps only its special id.
        Raises TypeError if an item of `text` is not a single character; see `_check_specials`.
        """
        self.specials = _check_specials(specials)
        chars = set()
        for ch in text:
            if not isinstance(ch, str) or len(ch) != 1:
                raise TypeError(f"the alphabet must be made of single characters, got {ch!r}")
            chars.add(ch)
        self.chars = sorted(chars - set(self.specials))
        self._itos = self.specials + self.chars
        self._stoi = {tok: i for i, tok in enumerate(self._itos)}
        self._unk_id = self._stoi.get("<unk>") if "<unk>" in self.specials else None

    @classmethod
    def from_text(cls, text: str, specials: Sequence[str] = ()) -> CharTokenizer:
        """Same as `CharTokenizer(text, specials)`; reads better at call sites."""
        return cls(text, specials)

    @property
    def vocab_size(self) -> int:
        """Number of ids: specials plus distinct characters."""
        return len(self._itos)

    def encode(self, text: str) -> list[int]:
        """Map each character of `text` to its id; returns a list of len(text) ints.

        Raises TypeError if `text` is not a str; ValueError naming the first unknown
        character (and its position) unless the tokenizer has an "<unk>" special.
        """
        if not isinstance(text, str):
            raise TypeError(f"encode expects a str, got {type(text).__name__}")
        ids = []
        for pos, ch in enumerate(text):
            i = self._stoi.get(ch, self._unk_id)
            if i is None:
                raise ValueError(
                    f"character {ch!r} at position {pos} is not in the vocabulary of "
                    f"{len(self.chars)} characters (build with specials=('<unk>',) to allow it)"
                )
            ids.append(i)
        return ids

    def decode(self, ids, skip_specials: bool = False) -> str:
        """Join the tokens of `ids` (list or 1-D tensor of ints) back into a string.

        Special tokens appear as their strings, e.g. "<eos>", unless `skip_specials`.
        Raises ValueError naming an id outside [0, vocab_size); TypeError for non-integers.
        """
        out = []
        for i in _as_id_list(ids):
            if not 0 <= i < self.vocab_size:
                raise ValueError(f"token id {i} is out of range for vocab_size {self.vocab_size}")
            if skip_specials and i < len(self.specials):
                continue
            out.append(self._itos[i])
        return "".join(out)

    def token_to_id(self, token: str) -> int:
        """The id of a special token or a character.

        Raises ValueError if `token` is neither.
        """
        if token not in self._stoi:
            raise ValueError(f"token {token!r} is not in the vocabulary (specials: {self.specials})")
        return self._stoi[token]

    def id_to_token(self, i: int) -> str:
        """The special token or character with id `i`.

        Raises ValueError if `i` is outside [0, vocab_size).
        """
        if not 0 <= i < self.vocab_size:
            raise ValueError(f"token id {i} is out of range for vocab_size {self.vocab_size}")
        return self._itos[i]

    def save(self, path: str | os.PathLike) -> None:
        """Write the alphabet and specials to `path` as JSON."""
        _write_json(path, {"kind": "char", "specials": self.specials, "chars": self.chars})

    @classmethod
    def load(cls, path: str | os.PathLike) -> CharTokenizer:
        """Read a tokenizer written by `save`; it encodes exactly like the saved one.

        Raises ValueError if `path` holds another kind of tokenizer.
        """
        obj = _read_json(path, "char")
        return cls(obj["chars"], obj["specials"])

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size}, specials={self.specials})"


def _merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace each non-overlapping occurrence of `pair` in `ids`, left to right, by `new_id`."""
    out = []
    i = 0
    n = len(ids)
    while i < n:
        if i + 1 < n and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def _count_pairs(words: list[list[int]], freqs: list[int]):
    """Count adjacent pairs over all words, each weighted by its word's frequency.

    Returns (pair -> count, pair -> set of indices of the words that contain it).
    """
    counts: Counter = Counter()
    where: defaultdict = defaultdict(set)
    for w, (word, f) in enumerate(zip(words, freqs)):
        for pair in zip(word, word[1:]):
            counts[pair] += f
            where[pair].add(w)
    return counts, where


def _apply_merge_to_word(w, words, freqs, pair, new_id, counts, where, touched) -> None:
    """Merge `pair` inside words[w] and update `counts` / `where` for that word only.

    This is what keeps training fast: a merge only touches the words that contain the pair.
    Every pair whose count changes is added to `touched`.
    """
    old = words[w]
    new = _merge(old, pair, new_id)
    if len(new) == len(old):
        return  # a stale entry in `where`: an earlier merge already removed the pair here
    f = freqs[w]
    for p in zip(old, old[1:]):
        counts[p] -= f
        touched.add(p)
        if counts[p] == 0:
            del counts[p]
    for p in zip(new, new[1:]):
        counts[p] += f
        touched.add(p)
        where[p].add(w)
    words[w] = new


def _most_frequent(heap: list, counts: Counter) -> tuple[int, int] | None:
    """Pop the most frequent pair (ties: the smallest pair) off a heap of (-count, pair) entries.

    The heap may hold stale entries (the pair's count has changed since it was pushed); they are
    dropped here. Returns None when no pair is left.
    """
    while heap:
        neg, pair = heapq.heappop(heap)
        if counts.get(pair) == -neg:
            return pair
    return None


class BPETokenizer:
    """Byte-level byte-pair encoding.

    Ids 0..255 are the raw bytes, 256..256+k-1 the k special tokens, and each merge i
    (in the order learned) makes the new id 256 + k + i. Any string round-trips exactly:
    decode(encode(s)) == s. `encode` only produces special ids when asked with
    `allow_specials=True`; by default "<eos>" in text is ordinary bytes.
    """

    def __init__(
        self,
        merges: Sequence[tuple[int, int]],
        specials: Sequence[str] = (),
        pattern: str = SPLIT_PATTERN,
    ):
        """Build a tokenizer from an ordered list of merges, e.g. from `train` or `load`.

        Raises ValueError if a merge refers to a special or to an id not yet created.
        """
        self.specials = _check_specials(specials)
        self.pattern = pattern
        self._split = re.compile(pattern)
        n_base = 256 + len(self.specials)
        self._vocab: list[bytes] = [bytes([b]) for b in range(256)]
        self._vocab += [s.encode("utf-8", _TEXT_ERRORS) for s in self.specials]
        self._merge_ids: dict[tuple[int, int], int] = {}
        for a, b in merges:
            new_id = len(self._vocab)
            for i in (a, b):
                if not (0 <= i < 256 or n_base <= i < new_id):
                    raise ValueError(
                        f"merge ({a}, {b}) for new id {new_id} uses id {i}, which is a special "
                        f"or not yet defined (bytes are 0..255, merges start at {n_base})"
                    )
            if (a, b) in self._merge_ids:
                raise ValueError(f"merge ({a}, {b}) appears twice (first made id {self._merge_ids[(a, b)]})")
            self._merge_ids[(a, b)] = new_id
            self._vocab.append(self._vocab[a] + self._vocab[b])
        self._special_ids = {s: 256 + k for k, s in enumerate(self.specials)}
        self._cache: dict[str, list[int]] = {}

    @classmethod
    def train(
        cls,
        text: str,
        vocab_size: int,
        specials: Sequence[str] = (),
        pattern: str = SPLIT_PATTERN,
    ) -> BPETokenizer:
        """Learn merges on `text` until the vocabulary has `vocab_size` ids (or no pair is left).

        Each step merges the most frequent adjacent pair; ties go to the smallest (left, right)
        id pair, so training is deterministic. Raises ValueError if vocab_size < 256 + len(specials).
        """
        if not isinstance(text, str):
            raise TypeError(f"train expects a str, got {type(text).__name__}")
        n_base = 256 + len(_check_specials(specials))
        if vocab_size < n_base:
            raise ValueError(
                f"vocab_size {vocab_size} is smaller than the 256 bytes + {len(specials)} specials = {n_base}"
            )
        # Work on each distinct chunk once, weighted by how often it occurs.
        chunk_counts = Counter(re.findall(pattern, text))
        words = [list(c.encode("utf-8", _TEXT_ERRORS)) for c in chunk_counts]
        freqs = list(chunk_counts.values())
        counts, where = _count_pairs(words, freqs)
        heap = [(-c, p) for p, c in counts.items()]  # a heap keeps each step from scanning all pairs
        heapq.heapify(heap)
        merges = []
        for new_id in range(n_base, vocab_size):
            best = _most_frequent(heap, counts)
            if best is None:
                break  # every chunk is a single token: nothing left to merge
            merges.append(best)
            touched: set = set()
            for w in where.pop(best):
                _apply_merge_to_word(w, words, freqs, best, new_id, counts, where, touched)
            for p in touched:
                if p in counts:
                    heapq.heappush(heap, (-counts[p], p))
        return cls(merges, specials, pattern)

    @property
    def vocab_size(self) -> int:
        """Number of ids: 256 bytes + specials + merges."""
        return len(self._vocab)

    @property
    def merges(self) -> list[tuple[int, int]]:
        """The learned merges in order; merge i created id 256 + len(specials) + i."""
        return list(self._merge_ids)

    @property
    def vocab(self) -> dict[int, bytes]:
        """id -> the bytes that id stands for (a special maps to its UTF-8 string)."""
        return dict(enumerate(self._vocab))

    def _encode_chunk(self, chunk: str) -> list[int]:
        """Encode one pre-split chunk by applying merges, lowest-ranked (earliest learned) first."""
        ids = list(chunk.encode("utf-8", _TEXT_ERRORS))
        while len(ids) > 1:
            # Later merges have larger ids, so the smallest new id is the earliest merge.
            pair = min(zip(ids, ids[1:]), key=lambda p: self._merge_ids.get(p, 1 << 62))
            if pair not in self._merge_ids:
                break
            ids = _merge(ids, pair, self._merge_ids[pair])
        return ids

    def _encode_ordinary(self, text: str) -> list[int]:
        """Encode text that contains no special tokens, caching each distinct chunk."""
        if len(self._cache) > 100_000:
            self._cache.clear()  # keep memory bounded when encoding very varied text
        ids = []
        for chunk in self._split.findall(text):
            cached = self._cache.get(chunk)
            if cached is None:
                cached = self._cache[chunk] = self._encode_chunk(chunk)
            ids.extend(cached)
        return ids

    def encode(self, text: str, allow_specials: bool = False) -> list[int]:
        """Turn `text` into token ids (a list of ints).

        With `allow_specials`, occurrences of special strings such as "<eos>" become their ids.
        Raises TypeError if `text` is not a str.
        """
        if not isinstance(text, str):
            raise TypeError(f"encode expects a str, got {type(text).__name__}")
        if not (allow_specials and self.specials):
            return self._encode_ordinary(text)
        # Longest first, so that "<eos>" wins over a special that is a prefix of it.
        alternatives = "|".join(re.escape(s) for s in sorted(self.specials, key=len, reverse=True))
        parts = re.split(f"({alternatives})", text)
        ids = []
        for k, part in enumerate(parts):
            # re.split with one group alternates: text, special, text, special, ..., text
            ids.extend([self._special_ids[part]] if k % 2 else self._encode_ordinary(part))
        return ids

    def decode(self, ids, skip_specials: bool = False) -> str:
        """Turn ids (list or 1-D tensor of ints) back into text.

        Byte sequences that are not valid UTF-8 (only possible for ids not made by `encode`)
        decode with U+FFFD replacement characters. Raises ValueError naming an id outside
        [0, vocab_size); TypeError for non-integers.
        """
        n_base = 256 + len(self.specials)
        parts = []
        for i in _as_id_list(ids):
            if not 0 <= i < self.vocab_size:
                raise ValueError(f"token id {i} is out of range for vocab_size {self.vocab_size}")
            if skip_specials and 256 <= i < n_base:
                continue
            parts.append(self._vocab[i])
        data = b"".join(parts)
        try:
            return data.decode("utf-8", _TEXT_ERRORS)
        except UnicodeDecodeError:
            return data.decode("utf-8", "replace")

    def token_to_id(self, token: str) -> int:
        """The id of a special token.

        Raises ValueError if `token` is not one of the specials.
        """
        if token not in self._special_ids:
            raise ValueError(f"{token!r} is not a special token; specials are {self.specials}")
        return self._special_ids[token]

    def id_to_token(self, i: int) -> str:
        """A readable form of token `i`: its bytes as UTF-8, with U+FFFD for partial characters.

        Raises ValueError if `i` is outside [0, vocab_size).
        """
        if not 0 <= i < self.vocab_size:
            raise ValueError(f"token id {i} is out of range for vocab_size {self.vocab_size}")
        return self._vocab[i].decode("utf-8", "replace")

    def save(self, path: str | os.PathLike) -> None:
        """Write merges, specials and the split pattern to `path` as JSON."""
        obj = {
            "kind": "bpe",
            "pattern": self.pattern,
            "specials": self.specials,
            "merges": [list(m) for m in self.merges],
        }
        _write_json(path, obj)

    @classmethod
    def load(cls, path: str | os.PathLike) -> BPETokenizer:
        """Read a tokenizer written by `save`; it encodes exactly like the saved one.

        Raises ValueError if `path` holds another kind of tokenizer.
        """
        obj = _read_json(path, "bpe")
        return cls([tuple(m) for m in obj["merges"]], obj["specials"], obj["pattern"])

    def __repr__(self) -> str:
        return (
            f"BPETokenizer(vocab_size={self.vocab_size}, merges={len(self._merge_ids)}, "
            f"specials={self.specials})"
        )
