"""Train the tokenizers that ship with llmbook (``src/llmbook/pretrained_data/tokenizers/``).

Run at development time, after ``tools/build_corpora.py``; nothing is downloaded::

    python tools/build_tokenizers.py            # train, write, print sizes and sha256
    python tools/build_tokenizers.py --check    # train again and compare, write nothing

Every tokenizer learns from the *training* split only, so held-out text stays held out:

- ``bpe-en-zh``: byte-level BPE with 8,192 ids over both languages: Shakespeare's training works and
  the training Tang poems (``corpora.tang_text``). The Chinese text is longer in bytes (3 bytes per
  character in UTF-8), so it is cut to the same number of bytes as the English before training,
  giving each language an equal say in which pairs merge.
- ``bpe-shakespeare``: byte-level BPE with 2,048 ids on the English training text only, with BERT's
  specials. The Shakespeare models use it: with 2,048 ids the output layer of a d_model = 256 GPT
  costs 0.5 M multiply-adds per token instead of 2.1 M for 8,192.
- ``char-shakespeare`` and ``char-tang``: one id per character of the training text, plus
  ``<unk>`` (for a held-out character never seen in training) and ``<eos>`` (the Tang model ends a
  poem with it). ``char-tang`` keeps characters seen at least twice in training; the rarer ones
  (under 0.1 % of the text) become ``<unk>``.

Training is deterministic (ties between pairs go to the smallest pair), so ``--check`` rebuilds the
same bytes. ``record.json`` holds each file's sha256 and size, and tokens per character on every split.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from llmbook import corpora  # noqa: E402  (after the path is set)
from llmbook.pretrained import BERT_SPECIALS  # noqa: E402
from llmbook.tokenizers import BPETokenizer, CharTokenizer  # noqa: E402

OUT = REPO / "src" / "llmbook" / "pretrained_data" / "tokenizers"
CHAR_SPECIALS = ("<unk>", "<eos>")
TANG_MIN_COUNT = 2


def _head_bytes(text: str, n_bytes: int) -> str:
    """The longest prefix of text that fits in n_bytes of UTF-8."""
    return text.encode("utf-8")[:n_bytes].decode("utf-8", errors="ignore")


def build() -> dict:
    english, chinese = corpora.shakespeare("train"), corpora.tang_text("train")
    tang_counts = Counter(chinese)
    tang_chars = [c for c, n in tang_counts.items() if n >= TANG_MIN_COUNT]
    made = {}
    start = time.perf_counter()
    made["bpe-en-zh"] = BPETokenizer.train(
        english + "\n\n" + _head_bytes(chinese, len(english.encode("utf-8"))), vocab_size=8192)
    made["bpe-shakespeare"] = BPETokenizer.train(english, vocab_size=2048, specials=BERT_SPECIALS)
    made["char-shakespeare"] = CharTokenizer(english, specials=CHAR_SPECIALS)
    made["char-tang"] = CharTokenizer(tang_chars, specials=CHAR_SPECIALS)
    print(f"trained in {time.perf_counter() - start:.0f} s")
    return made


def describe(made: dict) -> dict:
    """Tokens per character of every tokenizer on every split of each corpus."""
    texts = {(name, split): text(split) for name, text in
             (("shakespeare", corpora.shakespeare), ("tang", corpora.tang_text)) for split in corpora.SPLITS}
    out = {}
    for name, tok in made.items():
        rates = {}
        for (corpus, split), text in texts.items():
            if name.startswith("char-") and not name.endswith(corpus):
                continue
            rates[f"{corpus}/{split}"] = round(len(tok.encode(text)) / len(text), 4)
        out[name] = {"vocab_size": tok.vocab_size, "tokens_per_char": rates}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="rebuild and compare with the shipped files")
    args = parser.parse_args()
    made = build()
    record = {"tokenizers": describe(made), "files": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name, tok in made.items():
            path = Path(tmp) / f"{name}.json"
            tok.save(path)
            data = path.read_bytes()
            record["files"][path.name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            target = OUT / path.name
            if args.check:
                same = target.is_file() and target.read_bytes() == data
                print(f"{path.name}: {'same' if same else 'DIFFERS'}")
                if not same:
                    sys.exit(1)
            else:
                OUT.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
    if not args.check:
        (OUT / "record.json").write_text(json.dumps(record, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(json.dumps(record, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
