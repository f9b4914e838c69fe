"""Copy a font with Chinese glyphs into the package, from the Debian archive.

    python tools/vendor_cjk_font.py            # fetch and write src/llmbook/viz/fonts/
    python tools/vendor_cjk_font.py --check    # fetch again and compare, write nothing

A development-time step. matplotlib's own font (DejaVu Sans) has no Chinese glyphs: a figure that
draws a Tang poem or a Chinese token shows empty boxes. llmbook.viz.use_cjk_font() registers the font
written here as a fallback, so the same figure draws the same way on every machine, Colab included,
with nothing installed and nothing downloaded when a chapter runs.

The font is Droid Sans Fallback (Google, Apache License 2.0), from the Debian package
``fonts-droid-fallback`` at the version pinned below; ``apt-get download`` fetches it (apt checks the
archive's signatures) and this tool refuses a .deb whose sha256 is not the pinned one. It covers the
CJK Unified Ideographs block and extension A, so every character of the shipped Tang poems except
about 490 rare ones from extensions B and later (tests/test_cjk_font.py counts them). The .ttf is
copied unchanged, with the package's copyright file, and recorded in fonts/record.json.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FONTS = ROOT / "src" / "llmbook" / "viz" / "fonts"

PACKAGE, VERSION = "fonts-droid-fallback", "1:6.0.1r16-1.1"
DEB_SHA256 = "d2096d4edde128fedf6749be2dd204a5810210a6201126d99b8d412344f71056"
# The Apache License 2.0 as Debian ships it (package base-files, on every Debian and Ubuntu system).
APACHE_TEXT = Path("/usr/share/common-licenses/Apache-2.0")
APACHE_SHA256 = "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"
MEMBERS = {  # file inside the .deb -> name in the package
    "./usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf": "DroidSansFallbackFull.ttf",
    "./usr/share/doc/fonts-droid-fallback/copyright": "LICENSE",
}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def apt_download(folder: Path) -> bytes:
    """The pinned .deb, fetched by apt; its bytes, after checking the pinned sha256."""
    if shutil.which("apt-get") is None:
        sys.exit("vendor_cjk_font: `apt-get` not found (a Debian or Ubuntu machine is needed).")
    subprocess.run(["apt-get", "download", f"{PACKAGE}={VERSION}"], cwd=folder, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    (deb,) = folder.glob("*.deb")
    data = deb.read_bytes()
    if sha256(data) != DEB_SHA256:
        sys.exit(f"vendor_cjk_font: {deb.name} has sha256 {sha256(data)}, not the pinned {DEB_SHA256}")
    return data


def ar_member(archive: bytes, prefix: str) -> bytes:
    """The first member of an ar archive (a .deb is one) whose name starts with prefix."""
    if not archive.startswith(b"!<arch>\n"):
        raise ValueError("not an ar archive")
    at = 8
    while at < len(archive):
        name = archive[at:at + 16].decode().strip().rstrip("/")
        size = int(archive[at + 48:at + 58].decode().strip())
        if name.startswith(prefix):
            return archive[at + 60:at + 60 + size]
        at += 60 + size + size % 2  # members are aligned to two bytes
    raise KeyError(f"no member {prefix}* in the archive")


def extract(deb: bytes) -> dict[str, bytes]:
    files = {}
    with tarfile.open(fileobj=io.BytesIO(ar_member(deb, "data.tar")), mode="r:*") as tar:
        for member, name in MEMBERS.items():
            files[name] = tar.extractfile(member).read()
    # The copyright file names the licence and points to Debian's copy of its text; the package
    # carries the text itself, which the licence asks for.
    text = APACHE_TEXT.read_bytes()
    if sha256(text) != APACHE_SHA256:
        sys.exit(f"vendor_cjk_font: {APACHE_TEXT} is not the licence text this tool expects")
    files["LICENSE"] += b"\n" + text
    return files


def record(files: dict[str, bytes]) -> dict:
    return {"package": PACKAGE, "version": VERSION, "registry": "Debian (apt-get download)",
            "deb_sha256": DEB_SHA256, "licence": "Apache-2.0 (Copyright 2006-2010 Google Corp.), see LICENSE",
            "family": "Droid Sans Fallback",
            "files": {name: sha256(data) for name, data in sorted(files.items())}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the files in the package")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        files = extract(apt_download(Path(tmp)))
    files["record.json"] = (json.dumps(record(files), indent=2) + "\n").encode()
    if args.check:
        stale = [name for name, data in files.items() if (FONTS / name).read_bytes() != data]
        sys.exit(f"vendor_cjk_font: differ from the fetched font: {stale}" if stale else 0)
    FONTS.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (FONTS / name).write_bytes(data)
        print(f"{FONTS / name}: {len(data):,} bytes")


if __name__ == "__main__":
    main()
