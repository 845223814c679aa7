"""Benchmark of regions (masks): separation, keep, cost, and a contact sheet.

    .venv/bin/python bench/regions.py                       # instant and fast, every photo
    .venv/bin/python bench/regions.py --presets instant     # seconds, not minutes

On every shared photo, with a left/right pair of masks and two very different paintings
per pair of --pairs:
- separation: for each half, the style distance (metrics.py, a Gram matrix weighted by
  the half's mask) to the other painting over the distance to its own. Beside it, the
  same for a picture painted all over with that half's painting alone, which is as far
  as the method itself carries a painting: masks should lose little of it.
- keep: one painting on the left half only; the PSNR of the right half against the photo,
  at least --band pixels from the mask's border (the feather).
- cost: the time of the masked run over the same run without a mask (median of
  --repeats, both in this process and sitting).

Writes bench/regions_results.json (--out) and, with --sheet, a contact sheet (sky only,
two styles, the subject kept, the automatic mask).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image, ImageDraw

from instant import REPO, SHARED, cpu_facts, rgb  # bench/ is on the path when run as a script
from styleshift import Options, StyleTransfer
from styleshift.core.metrics import Scorer, kept_psnr
from styleshift.core.regions import open_regions
from styleshift.core.weights import ensure_weights, load_state_dict

REGION_COLOURS = [(255, 255, 255), (255, 170, 0), (0, 170, 255)]
PAIRS = (
    ("vangogh_starry_night.jpg", "mondrian_tableau_no2_comp_vii.jpg"),
    ("munch_the_scream.jpg", "picabia_udnie.jpg"),
)


def halves(size: tuple[int, int]) -> tuple[Image.Image, Image.Image]:
    w, h = size
    left, right = Image.new("L", size, 0), Image.new("L", size, 0)
    left.paste(255, (0, 0, w // 2, h))
    right.paste(255, (w // 2, 0, w, h))
    return left, right


def separation(
    scorer: Scorer,
    picture: Image.Image,
    paintings: Sequence[Image.Image],
    masks: Sequence[Image.Image],
) -> list[float]:
    return [
        scorer.region_distance(picture, paintings[1 - i], m)
        / scorer.region_distance(picture, paintings[i], m)
        for i, m in enumerate(masks)
    ]


def options(preset: str) -> Options:
    return Options(preset=preset)  # type: ignore[arg-type]


def timed(
    engine: StyleTransfer, photo: Image.Image, paintings: Any, opts: Options
) -> tuple[Image.Image, float]:
    start = time.perf_counter()
    picture = engine.run(photo, paintings, opts).image
    return picture, time.perf_counter() - start


def measure(args: argparse.Namespace) -> dict[str, Any]:
    engine = StyleTransfer(device=args.device)
    scorer = Scorer(load_state_dict(ensure_weights()), engine.device)
    photos = sorted((SHARED / "content").iterdir())[: args.photos]
    rows = []
    for preset in args.presets.split(","):
        opts = options(preset)
        for photo_path in photos:
            photo = rgb(photo_path)
            masks = halves(photo.size)
            for pair in PAIRS[: args.pairs]:
                paintings = [rgb(SHARED / "style" / name) for name in pair]
                both = engine.run(
                    photo, paintings, Options(**{**opts.to_dict(), "mask": masks})
                ).image
                alone = [engine.run(photo, p, opts).image for p in paintings]
                masked_times, plain_times = [], []
                for _ in range(args.repeats):  # interleaved, so a slower minute hits both
                    kept, seconds = timed(
                        engine,
                        photo,
                        paintings[0],
                        Options(**{**opts.to_dict(), "mask": masks[:1]}),
                    )
                    masked_times.append(seconds)
                    plain_times.append(timed(engine, photo, paintings[0], opts)[1])
                sep = separation(scorer, both, paintings, masks)
                whole = [separation(scorer, a, paintings, masks)[i] for i, a in enumerate(alone)]
                band = max(1, round(args.band * max(kept.size) / 512))
                row = {
                    "preset": preset,
                    "photo": photo_path.name,
                    "paintings": list(pair),
                    "size": list(kept.size),
                    "separation": sep,
                    "separation_alone": whole,
                    "kept_psnr": kept_psnr(kept, photo, masks[0], band),
                    "band_px": band,
                    "masked_seconds": statistics.median(masked_times),
                    "plain_seconds": statistics.median(plain_times),
                }
                row["cost"] = row["masked_seconds"] / row["plain_seconds"]
                rows.append(row)
                print(json.dumps(row), file=sys.stderr)
    return {"rows": rows}


def table(rows: Sequence[dict[str, Any]]) -> str:
    lines = [
        "| preset | pairs | separation median (min) | alone median | kept PSNR min "
        "| cost median (max) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for preset in dict.fromkeys(r["preset"] for r in rows):
        mine = [r for r in rows if r["preset"] == preset]
        seps = [s for r in mine for s in r["separation"]]
        alone = [s for r in mine for s in r["separation_alone"]]
        costs = [r["cost"] for r in mine]
        psnr = min(r["kept_psnr"] for r in mine)
        lines.append(
            f"| {preset} | {len(mine)} | {statistics.median(seps):.2f} ({min(seps):.2f}) | "
            f"{statistics.median(alone):.2f} | {psnr:.1f} dB | "
            f"{statistics.median(costs):.2f} ({max(costs):.2f}) |"
        )
    return "\n".join(lines)


def sheet(args: argparse.Namespace, out: Path) -> None:
    """Photo, mask and picture for: the sky only, two styles, the subject kept, and the
    automatic mask itself."""
    engine = StyleTransfer(device=args.device)
    content, style = SHARED / "content", SHARED / "style"
    cases: list[tuple[str, Image.Image, list[Image.Image], list[Any]]] = []
    tubingen = rgb(content / "tubingen.jpg")
    sky = Image.new("L", tubingen.size, 0)
    sky.paste(255, (0, 0, tubingen.width, int(tubingen.height * 0.42)))
    cases.append(("sky only", tubingen, [rgb(style / "vangogh_starry_night.jpg")], [sky]))
    lighthouse = rgb(content / "kodim21_lighthouse.png")
    left, right = halves(lighthouse.size)
    two = [rgb(style / "hokusai_great_wave.jpg"), rgb(style / "munch_the_scream.jpg")]
    cases.append(("two styles", lighthouse, two, [left, right]))
    parrots = rgb(content / "kodim23_parrots.png")
    cases.append(("subject kept", parrots, [rgb(style / "picabia_udnie.jpg")], ["auto:background"]))
    cell, header = 256, 20
    columns = ["photo", "masks", "instant", args.sheet_preset]
    rows = []
    for label, photo, paintings, masks in cases:
        regions = open_regions(masks, photo, len(paintings))
        # Each region in its own colour over black, the part that keeps the photo.
        weights = regions.weights(photo.height, photo.width)[:, 0]
        colours = torch.tensor(REGION_COLOURS[: len(weights)], dtype=torch.float32)
        legend = torch.einsum("rhw,rc->hwc", weights, colours).clamp(0, 255)
        tiles = [photo, Image.fromarray(legend.byte().numpy())]
        for preset in ("instant", args.sheet_preset):
            opts = Options(**{**options(preset).to_dict(), "mask": tuple(masks), "size": 512})
            tiles.append(engine.run(photo, paintings, opts).image)
        for tile in tiles:
            tile.thumbnail((cell - 4, cell - 4))
        rows.append((label, tiles))
    heights = [max(t.height for t in tiles) + 4 for _, tiles in rows]
    canvas = Image.new("RGB", (cell * len(columns), header + sum(heights)), "white")
    draw = ImageDraw.Draw(canvas)
    for col, name in enumerate(columns):
        draw.text((col * cell + 4, 4), name, fill="black")
    top = header
    for (label, tiles), height in zip(rows, heights, strict=True):
        for col, tile in enumerate(tiles):
            canvas.paste(tile, (col * cell + 2, top + 2))
        draw.text((6, top + 4), label, fill="white")
        top += height
    canvas.save(out, quality=88)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", default="instant,fast")
    parser.add_argument("--photos", type=int, default=6, help="how many of the shared photos")
    parser.add_argument("--pairs", type=int, default=len(PAIRS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--band", type=int, default=8, help="feather band in pixels at 512 px")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--sheet", type=Path, help="write a contact sheet here")
    parser.add_argument("--sheet-preset", default="fast")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "regions_results.json")
    args = parser.parse_args(argv)
    facts = cpu_facts()
    if args.sheet is not None:
        sheet(args, args.sheet)
        return 0
    report = measure(args)
    report["machine"] = facts
    report["command"] = " ".join(["bench/regions.py", *(argv or sys.argv[1:])])
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    unit = facts["bfloat16_unit"] or "no bfloat16 unit"
    print(f"{facts['cpu']} ({unit}, {facts['threads']} threads)")
    print(table(report["rows"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
