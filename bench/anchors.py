"""Calibration of `styleshift evaluate`: every metric on anchors whose answer is known.

    .venv/bin/python bench/anchors.py             # prints a Markdown table per anchor
    .venv/bin/python bench/anchors.py --size 256 --balanced 2   # quicker

For each photo x painting pair (the shared content photos x six paintings), at --size:
the photo itself, the painting itself (stretched to the photo's size), a grey picture, a
Gaussian blur of the photo (radius 1% of the long side), and the outputs of the instant
and fast presets; `balanced` on the first --balanced pairs (one per photo). Writes
bench/anchors.json (every value) and prints the 10th percentile, median and 90th
percentile of each metric per anchor: docs/evaluation.md quotes them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

# The same spread of paintings as the instant method's quality benchmark.
from instant import PAINTINGS, REPO, SHARED  # bench/ is on the path when run as a script
from styleshift import StyleTransfer
from styleshift.apps.evaluate import Evaluation, evaluate_image
from styleshift.core.metrics import Scorer
from styleshift.core.weights import ensure_weights, load_state_dict
from styleshift.io.image import load_image, resize_long_side

ANCHORS = ("photo", "painting", "grey", "blur", "instant", "fast", "balanced")
METRICS: dict[str, Callable[[Evaluation], float]] = {
    "content similarity": lambda e: e.content.similarity,
    "feature error": lambda e: e.content.feature_error,
    "SSIM": lambda e: e.content.ssim,
    "edge F1": lambda e: e.content.edge_overlap,
    "Gram distance": lambda e: e.styles[0].scores.distance,
    "Gram reduction": lambda e: e.styles[0].scores.reduction,
    "mean/std distance": lambda e: e.styles[0].scores.statistics_distance,
    "colour distance": lambda e: e.styles[0].scores.colour_distance,
}


def candidates(
    engine: StyleTransfer, photo: Image.Image, painting: Image.Image, size: int, balanced: bool
) -> dict[str, Image.Image]:
    found = {
        "photo": photo,
        "painting": painting.convert("RGB").resize(photo.size, Image.Resampling.LANCZOS),
        "grey": Image.new("RGB", photo.size, (128, 128, 128)),
        "blur": photo.filter(ImageFilter.GaussianBlur(size / 100)),
    }
    presets = ("instant", "fast", "balanced") if balanced else ("instant", "fast")
    for preset in presets:
        found[preset] = engine.stylize(photo, painting, preset=preset, size=size).convert("RGB")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--balanced", type=int, default=6, help="pairs that also run balanced")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "anchors.json")
    args = parser.parse_args(argv)

    engine = StyleTransfer(device="cpu")
    scorer = Scorer(load_state_dict(ensure_weights()))
    photos = sorted((SHARED / "content").iterdir())
    rows: list[dict[str, Any]] = []
    for i, painting_name in enumerate(PAINTINGS):
        painting = load_image(SHARED / "style" / painting_name)
        for j, photo_path in enumerate(photos):
            photo = resize_long_side(load_image(photo_path).convert("RGB"), args.size)
            # One balanced run per photo, each with another painting.
            balanced = (j - i) % len(PAINTINGS) == 0 and sum(
                r["anchor"] == "balanced" for r in rows
            ) < args.balanced
            for anchor, picture in candidates(engine, photo, painting, args.size, balanced).items():
                e = evaluate_image(scorer, picture, photo, [painting])
                rows.append(
                    {"photo": photo_path.name, "painting": painting_name, "anchor": anchor}
                    | {name: float(get(e)) for name, get in METRICS.items()}
                )
            print(f"{photo_path.name} x {painting_name}", file=sys.stderr, flush=True)
    args.out.write_text(json.dumps({"size": args.size, "rows": rows}, indent=1) + "\n")
    print(table(rows))
    return 0


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| anchor | pairs | " + " | ".join(METRICS) + " |",
        "|---|---:|" + "---:|" * len(METRICS),
    ]
    for anchor in ANCHORS:
        group = [r for r in rows if r["anchor"] == anchor]
        if not group:
            continue
        cells = []
        for name in METRICS:
            p10, p50, p90 = np.percentile([r[name] for r in group], [10, 50, 90])
            cells.append(f"{p50:.3g} ({p10:.3g}–{p90:.3g})")
        lines.append(f"| {anchor} | {len(group)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
