"""Copy the JavaScript libraries that bertviz's views need into the package, from the npm registry.

    python tools/vendor_viz_scripts.py

A development-time step, run again only to change a version. bertviz's head view and model view
load d3 and jQuery through require.js from a CDN; llmbook.viz instead inlines the copies written
here into each view's HTML (src/llmbook/viz/bertviz_html.py), so a view draws with no network and
no require.js. For each library below the tool runs ``npm pack <name>@<version>`` (npm checks the
tarball against the registry's integrity hash), copies the minified file and the licence into
src/llmbook/viz/static/, and records name, version, file, sha256, licence and npm's integrity hash
in static/VERSIONS.json. tests/test_bertviz_offline.py checks the files against that record.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STATIC = ROOT / "src" / "llmbook" / "viz" / "static"

# name -> (version, minified file inside the npm package, licence file inside the npm package).
# d3: the version bertviz 1.4's views ask for (require.config in bertviz/head_view.js).
# jQuery: bertviz asks for 2.0.0, which was never published to npm (its 2.x there starts at 2.1.0).
# 3.7.1 is the version the website has served to bertviz since the book began; bertviz calls only
# $(selector), .append, .val, .text, .empty and .on, which behave the same in 2.x and 3.x, and
# 3.x carries the fixes for the 2.x security advisories.
LIBRARIES = {
    "d3": ("5.7.0", "dist/d3.min.js", "LICENSE"),
    "jquery": ("3.7.1", "dist/jquery.min.js", "LICENSE.txt"),
}


def npm_pack(name: str, version: str, folder: Path) -> tuple[Path, str]:
    """Download <name>@<version> from the npm registry into folder; return the tarball and its integrity."""
    npm = shutil.which("npm")
    if npm is None:
        sys.exit("vendor_viz_scripts: `npm` not found. Install Node.js (e.g. apt-get install -y npm).")
    result = subprocess.run([npm, "pack", f"{name}@{version}", "--json", "--ignore-scripts",
                             "--pack-destination", str(folder)], capture_output=True, text=True, check=True)
    (packed,) = json.loads(result.stdout)
    if packed["version"] != version:
        sys.exit(f"vendor_viz_scripts: asked npm for {name}@{version}, got {packed['version']}")
    return folder / packed["filename"], packed["integrity"]


def read_member(tarball: Path, member: str) -> bytes:
    with tarfile.open(tarball) as archive:
        return archive.extractfile(f"package/{member}").read()


def vendor(name: str, version: str, script: str, licence: str, folder: Path) -> dict:
    """Write the library's script and licence into STATIC; return its line of the record."""
    tarball, integrity = npm_pack(name, version, folder)
    source = read_member(tarball, script)
    declared = json.loads(read_member(tarball, "package.json"))["license"]
    script_name, licence_name = f"{name}.min.js", f"{name}.LICENSE.txt"
    (STATIC / script_name).write_bytes(source)
    (STATIC / licence_name).write_bytes(read_member(tarball, licence))
    return {"version": version, "file": script_name, "sha256": hashlib.sha256(source).hexdigest(),
            "licence": declared, "licence_file": licence_name, "npm": f"{name}@{version}",
            "npm_file": script, "npm_integrity": integrity}


def main() -> int:
    STATIC.mkdir(parents=True, exist_ok=True)
    record = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (version, script, licence) in LIBRARIES.items():
            record[name] = vendor(name, version, script, licence, Path(tmp))
            print(f"vendor_viz_scripts: {name}@{version} -> {STATIC.relative_to(ROOT)}/{record[name]['file']}")
    (STATIC / "VERSIONS.json").write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
