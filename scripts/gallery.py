"""The README's gallery, made by `styleshift compare` so that it can be regenerated.

    .venv/bin/python scripts/gallery.py        # (make gallery) about 7 minutes with AMX
    .venv/bin/python scripts/gallery.py --presets instant   # the instant pictures alone

Runs `styleshift compare PHOTO PAINTING --presets instant,balanced --size 512` for each
pair of the gallery into out/gallery/<pair>/ (a full report each: times and scores), then
saves the two results as docs/gallery/<photo>__<painting>[__instant].jpg.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("STYLESHIFT_SHARED", REPO.parent / "shared")) / "images"
PAIRS = (
    ("tubingen.jpg", "vangogh_starry_night.jpg"),
    ("kodim21_lighthouse.png", "hokusai_great_wave.jpg"),
    ("kodim23_parrots.png", "kandinsky_composition_vii.jpg"),
    ("rocket.jpg", "munch_the_scream.jpg"),
)
SUFFIXES = {"instant": "__instant", "balanced": ""}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", default=",".join(SUFFIXES), help="of instant,balanced")
    presets = {p: SUFFIXES[p] for p in parser.parse_args().presets.split(",")}
    styleshift = Path(sys.executable).with_name("styleshift")
    for photo, painting in PAIRS:
        name = f"{Path(photo).stem}__{Path(painting).stem}"
        report = REPO / "out" / "gallery" / name
        subprocess.run(
            [str(styleshift), "compare", str(SHARED / "content" / photo),
             str(SHARED / "style" / painting), "--presets", ",".join(presets), "--size",
             "512", "-o", str(report), "--overwrite", "-q"],
            check=True,
        )  # fmt: skip
        for preset, suffix in presets.items():
            result = report / "results" / f"{Path(painting).stem}__{preset}.png"
            target = REPO / "docs" / "gallery" / f"{name}{suffix}.jpg"
            Image.open(result).convert("RGB").save(target, quality=90)
            print(f"{target.relative_to(REPO)} (report: {report / 'index.html'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
