"""scripts/style_corpus.py on a small fake tree: every file's licence is recorded, and the
held-out paintings are never among the training ones."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "style_corpus.py"
sys.path[:0] = [str(REPO / "scripts")]
from style_corpus import HELD_OUT_CORPUS, HELD_OUT_STYLE  # noqa: E402


def _tree(root: Path, folder: str, names: list[str], sources: Path) -> None:
    (root / folder).mkdir(parents=True)
    lines = []
    for name in names:
        Image.new("RGB", (8, 8), "red").save(root / folder / name)
        lines += [f"### {folder}/{name}" if folder == "style" else f"### {name}", "",
                  f"- Licence / why OK: PD, {name}", ""]  # fmt: skip
    with sources.open("a") as f:
        f.write("\n".join(lines) + "\n")


def _run(shared: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), str(out), "--shared", str(shared)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_held_out_paintings_stay_out_and_every_licence_is_recorded(tmp_path: Path) -> None:
    shared = tmp_path / "images"
    shared.mkdir()
    _tree(shared, "style", [*HELD_OUT_STYLE, "klimt_the_kiss.jpg"], shared / "SOURCES.md")
    corpus = [*HELD_OUT_CORPUS, "monet_woman_with_a_parasol.jpg"]
    _tree(shared, "style-corpus", corpus, shared / "style-corpus" / "SOURCES.md")
    done = _run(shared, tmp_path / "out")
    assert done.returncode == 0, done.stderr
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    train = {r["name"] for r in manifest if r["split"] == "train"}
    assert train == {"klimt_the_kiss.jpg", "monet_woman_with_a_parasol.jpg"}
    assert {p.name for p in (tmp_path / "out" / "train").iterdir()} == train
    held_out = {p.name for p in (tmp_path / "out" / "val").iterdir()}
    assert held_out == set(HELD_OUT_STYLE) | set(HELD_OUT_CORPUS)
    assert all(r["licence"] == f"PD, {r['name']}" for r in manifest)
    assert all(len(r["sha256"]) == 64 for r in manifest)
    # A painting meant to be held out but missing is refused, not silently trained without.
    (shared / "style" / HELD_OUT_STYLE[0]).unlink()
    refused = _run(shared, tmp_path / "again")
    assert refused.returncode != 0 and HELD_OUT_STYLE[0] in refused.stderr
