#!/usr/bin/env python3
"""Split the shared paintings into a training and a held-out set for style-trained decoders.

    python scripts/style_corpus.py DIR [--shared ../shared/images]

writes DIR/train/*.jpg, DIR/val/*.jpg and DIR/manifest.json (every file with its
source, SHA-256, licence line and split). Nothing is committed: the paintings stay in
../shared/images (style/ and style-corpus/, each with its SOURCES.md), so this runs the
same on any machine that has them.

Whole paintings are held out, never cropped from, so that every figure measured on them
is on paintings the decoder never saw: the six paintings of bench/instant.py's grid
(The Starry Night, The Great Wave, The Scream among them) and ten of the corpus, one
from each of ten periods and movements.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).parents[1] / "bench")]
from training_data import write_corpus  # noqa: E402

from instant import PAINTINGS  # noqa: E402

# The paintings of bench/instant.py's grid, on which every instant figure is measured.
HELD_OUT_STYLE = PAINTINGS
HELD_OUT_CORPUS = (
    "hiroshige_kanbara_night_snow.jpg",  # ukiyo-e
    "kirchner_street_berlin.jpg",  # Expressionism
    "delaunay_simultaneous_windows_on_the_city.jpg",  # Orphism
    "malevich_supremus_no_55.jpg",  # early abstraction
    "renoir_bal_du_moulin_de_la_galette.jpg",  # Impressionism
    "cezanne_the_large_bathers.jpg",  # Post-impressionism
    "friedrich_wanderer_above_the_sea_of_fog.jpg",  # Romanticism
    "rembrandt_the_night_watch.jpg",  # Baroque
    "rublev_the_trinity.jpg",  # icon
    "piranesi_carceri_prison.jpg",  # print
)
SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}


def licences(sources_md: Path) -> dict[str, str]:
    """File name -> its 'Licence / why OK' line in a SOURCES.md."""
    found: dict[str, str] = {}
    name = None
    for line in sources_md.read_text(encoding="utf-8").splitlines():
        heading = re.match(r"^###\s+(?:\S+/)?(\S+)\s*$", line)
        if heading:
            name = heading.group(1)
        elif name and line.startswith("- Licence"):
            found[name] = line.split(":", 1)[1].strip()
    return found


def collect(shared: Path) -> list[dict[str, str]]:
    items = []
    for folder, held_out in (("style", HELD_OUT_STYLE), ("style-corpus", HELD_OUT_CORPUS)):
        root = shared / folder
        known = licences(root / "SOURCES.md") if folder == "style-corpus" else {}
        if folder == "style":
            known = licences(shared / "SOURCES.md")
        missing = set(held_out) - {p.name for p in root.iterdir()}
        if missing:
            raise SystemExit(
                f"held-out paintings missing from {root}: {', '.join(sorted(missing))}"
            )
        for path in sorted(root.iterdir()):
            if path.suffix.lower() not in SUFFIXES:
                continue
            items.append(
                {
                    "path": str(path),
                    "name": path.name,
                    "source": f"../shared/images/{folder}",
                    "licence": known.get(path.name, f"see ../shared/images/{folder} SOURCES.md"),
                    "split": "val" if path.name in held_out else "train",
                }
            )
    return items


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder to write (train/, val/, manifest.json)")
    parser.add_argument("--shared", type=Path, default=Path(__file__).parents[2] / "shared/images")
    args = parser.parse_args()
    if args.out.exists() and any(args.out.iterdir()):
        print(f"{args.out} is not empty; give a new folder", file=sys.stderr)
        return 2
    counts = write_corpus(args.out, collect(args.shared))
    print(f"{args.out}: {counts['train']} training and {counts['val']} held-out paintings")
    return 0


if __name__ == "__main__":
    sys.exit(main())
