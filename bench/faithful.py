"""Does the subject survive? Every preset on a grid of photos x paintings (issue 12).

    .venv/bin/python bench/faithful.py                          # all presets, 12 x 6 pairs
    .venv/bin/python bench/faithful.py --presets fast --size 256 --set content_weight=0.2
    .venv/bin/python bench/faithful.py --presets balanced,high --paintings 1 --rotate
    .venv/bin/python bench/faithful.py --save-images DIR ...        # keep the pictures
    .venv/bin/python bench/faithful.py --sheet docs/faithful_worst.jpg --save-images DIR

Photos: the six shared content photos (a grey portrait, a mountain stream, a lighthouse,
parrots, a rocket launch, a town) and six held-out validation photos of the decoder's
training data (scripts/training_data.py: an astronaut's portrait, a cat, a cup of coffee,
a mountain landscape, a flower, a shell). The paintings are bench/instant.py's six.
fast's schedule and the adaptive style weight were chosen on this grid, not on one image.

Per pair, two numbers:
- content similarity: cosine of the output's and the photo's relu4_2 features, from the
  independent max-pooling scorer (styleshift.core.metrics), at the output's size;
- style-loss reduction: the package's own style loss (bench/run.py's referee: relative
  Gram error averaged over relu1_1..relu5_1, average pooling) of the photo over that of
  the output, at the output's size. The scorer's Gram reduction is recorded too.

Rows are appended to --out as they finish, so a rerun resumes. Prints, per configuration,
the 10th percentile and median of each number and the worst pair.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from instant import PAINTINGS, REPO, SHARED, cpu_facts, rgb
from run import Referee
from styleshift import Options, StyleTransfer
from styleshift.core.device import resolve_device
from styleshift.core.metrics import Scorer
from styleshift.core.options import FEEDFORWARD_ONLY, GATYS
from styleshift.core.weights import ensure_weights, load_state_dict
from styleshift.io.image import resize_long_side, to_tensor

VALIDATION = REPO / "training-data" / "val"
PHOTOS = (
    "camera_gray.png",
    "kodim13_mountain_stream.png",
    "kodim21_lighthouse.png",
    "kodim23_parrots.png",
    "rocket.jpg",
    "tubingen.jpg",
    "scikit-image/astronaut.png",
    "scikit-image/chelsea.png",
    "scikit-image/coffee.png",
    "lomiri-wallpapers-16.04/aitzgorri_by_Aitzol_Berasategi.jpg",
    "mate-backgrounds/FreshFlower.jpg",
    "plasma-workspace-wallpapers/Shell.jpg",
)
DEFAULT_PRESETS = ("instant", "fast", "balanced", "high")


def photo_path(name: str) -> Path:
    shared = SHARED / "content" / name
    return shared if shared.is_file() else VALIDATION / name


def parse_set(text: str) -> tuple[str, Any]:
    name, _, value = text.partition("=")
    try:
        return name, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return name, value


def applying(preset: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """The overrides that belong to the preset's method (one --set can hold options of
    both families)."""
    methods = {f.name: f.metadata["method"] for f in dataclasses.fields(Options)}
    foreign = GATYS if preset == "instant" else FEEDFORWARD_ONLY
    return {k: v for k, v in overrides.items() if methods.get(k) != foreign}


def label(preset: str, size: int | None, overrides: dict[str, Any], device: str = "cpu") -> str:
    # The presets differ by device, so a run elsewhere than the CPU is a configuration
    # of its own.
    parts = [preset] + ([device] if device != "cpu" else []) + ([f"{size}px"] if size else [])
    return " ".join(parts + [f"{k}={v}" for k, v in applying(preset, overrides).items()])


def run_grid(args: argparse.Namespace) -> list[dict[str, Any]]:
    missing = [p for p in PHOTOS if not photo_path(p).is_file()]
    if missing:
        sys.exit(f"missing photos {missing}: run scripts/training_data.py first")
    rows: list[dict[str, Any]] = []
    if args.out.is_file():
        rows = json.loads(args.out.read_text())["rows"]
    done = {(r["config"], r["photo"], r["painting"]) for r in rows}
    overrides = dict(parse_set(s) for s in args.set)
    engine = StyleTransfer(device=args.device)
    # Moved once: every pair builds a referee from the same weights.
    state = {k: v.to(engine.device) for k, v in load_state_dict(ensure_weights()).items()}
    scorer = Scorer(state, engine.device)
    shard, shards = args.shard
    machine = cpu_facts()
    device_name = machine["gpu"] if engine.device.type == "cuda" else engine.device.type
    for preset in args.presets:
        config = args.label or label(preset, args.size, overrides, engine.device.type)
        extra = applying(preset, overrides)
        pairs = [
            (photo_name, painting_name)
            for index, photo_name in enumerate(PHOTOS[: args.photos])
            for painting_name in paintings_for(index, args.paintings, args.rotate)
        ]
        if args.worst_of is not None:
            pairs = worst_pairs(rows, args.worst_of, args.worst)
        if args.pair:
            pairs = args.pair
        for photo_name, painting_name in pairs[shard::shards]:
            if (config, photo_name, painting_name) in done:
                continue
            photo, painting = rgb(photo_path(photo_name)), rgb(SHARED / "style" / painting_name)
            options = Options(preset=preset, size=args.size, **extra)
            start = time.perf_counter()
            picture = engine.run(photo, painting, options).image.convert("RGB")
            seconds = time.perf_counter() - start
            scores = scorer.score(picture, photo, painting)
            referee = Referee(state, photo, painting, max(picture.size), engine.device)
            own = to_tensor(resize_long_side(photo, max(picture.size)))
            reduction = referee.terms(own)["style"] / referee.terms(to_tensor(picture))["style"]
            rows.append(
                {
                    "config": config,
                    "photo": photo_name,
                    "painting": painting_name,
                    "seconds": seconds,
                    "content_similarity": scores.content_similarity,
                    "style_loss_reduction": reduction,
                    "gram_reduction": scores.style_reduction,
                    # Rows from session 15 on say where they ran; earlier CPU rows ran on
                    # the Intel Xeon with AMX, in bfloat16.
                    "cpu": machine["cpu"],
                    "bfloat16_unit": machine["bfloat16_unit"],
                    "device": device_name,
                }
            )
            if args.save_images is not None:
                args.save_images.mkdir(parents=True, exist_ok=True)
                picture.save(args.save_images / image_name(config, photo_name, painting_name))
            save(args.out, rows)
            print(
                f"{config}: {photo_name} x {painting_name} similarity "
                f"{scores.content_similarity:.3f} style x{reduction:.1f} {seconds:.0f} s",
                file=sys.stderr,
                flush=True,
            )
    return rows


def worst_pairs(rows: Sequence[dict[str, Any]], config: str, count: int) -> list[tuple[str, str]]:
    """The `count` pairs on which `config` kept the least of the photo."""
    mine = sorted((r for r in rows if r["config"] == config), key=lambda r: r["content_similarity"])
    if not mine:
        sys.exit(f"no rows of configuration '{config}' in --out")
    return [(r["photo"], r["painting"]) for r in mine[:count]]


def shard_spec(text: str) -> tuple[int, int]:
    k, _, n = text.partition("/")
    if not (k.isdigit() and n.isdigit() and int(k) < int(n)):
        raise argparse.ArgumentTypeError(f"'{text}' is not K/N with 0 <= K < N")
    return int(k), int(n)


def pair_spec(text: str) -> tuple[str, str]:
    photo, _, painting = text.partition(":")
    if photo not in PHOTOS or painting not in PAINTINGS:
        raise argparse.ArgumentTypeError(f"'{text}' is not PHOTO:PAINTING of the grid")
    return photo, painting


def paintings_for(photo_index: int, count: int, rotate: bool) -> tuple[str, ...]:
    """The first `count` paintings, or with `rotate` `count` of them starting at the
    photo's own index, so that a partial grid still covers every painting."""
    if not rotate:
        return PAINTINGS[:count]
    return tuple(PAINTINGS[(photo_index + k) % len(PAINTINGS)] for k in range(count))


def image_name(config: str, photo: str, painting: str) -> str:
    return f"{config.replace(' ', '_')}__{Path(photo).stem}__{Path(painting).stem}.jpg"


def save(out: Path, rows: Sequence[dict[str, Any]]) -> None:
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps({"machine": cpu_facts(), "rows": list(rows)}, indent=1) + "\n")
    tmp.replace(out)


def table(rows: Sequence[dict[str, Any]]) -> str:
    lines = [
        "| configuration | pairs | content similarity p10 | median | worst | "
        "style-loss reduction p10 | median | Gram reduction (scorer) median | s (median) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for config in dict.fromkeys(r["config"] for r in rows):
        mine = [r for r in rows if r["config"] == config]
        sim = np.array([r["content_similarity"] for r in mine])
        red = np.array([r["style_loss_reduction"] for r in mine])
        gram = np.median([r["gram_reduction"] for r in mine])
        secs = np.median([r["seconds"] for r in mine])
        worst = min(mine, key=lambda r: r["content_similarity"])
        lines.append(
            f"| {config} | {len(mine)} | {np.percentile(sim, 10):.3f} | {np.median(sim):.3f} | "
            f"{sim.min():.3f} ({Path(worst['photo']).stem} x {Path(worst['painting']).stem}) | "
            f"{np.percentile(red, 10):.1f}x | {np.median(red):.1f}x | {gram:.2f}x | {secs:.1f} |"
        )
    return "\n".join(lines)


def estimate(rows: Sequence[dict[str, Any]], config: str, reference: str) -> str:
    """The whole grid of a partly run `config`, its missing pairs counted at `reference`'s
    scores shifted by what `config` changed on the pairs both ran with the same painting:
    the median change, then the worst one seen (a bound for the unrun pairs only if no
    pair moves further than any that ran)."""
    mine = {(r["photo"], r["painting"]): r for r in rows if r["config"] == config}
    ref = {(r["photo"], r["painting"]): r for r in rows if r["config"] == reference}
    if not mine or not ref:
        sys.exit(f"no rows of configuration '{config if not mine else reference}' in --out")
    missing = [pair for pair in ref if pair not in mine]
    shifts: dict[str, tuple[list[float], list[float]]] = {}
    for pair in mine.keys() & ref.keys():
        sim, red = shifts.setdefault(pair[1], ([], []))
        sim.append(mine[pair]["content_similarity"] - ref[pair]["content_similarity"])
        red.append(mine[pair]["style_loss_reduction"] / ref[pair]["style_loss_reduction"])
    unseen = sorted({painting for _, painting in missing} - shifts.keys())
    if unseen or not missing:
        sys.exit(
            f"cannot estimate '{config}' from '{reference}': "
            + (f"no pair of {unseen} ran in both" if unseen else "nothing is missing")
        )
    lines = [f"{config}: {len(mine)} pairs run, {len(missing)} counted at {reference}'s scores"]
    for name, pick in (("median change", np.median), ("worst change", np.min)):
        sim = [r["content_similarity"] for r in mine.values()] + [
            ref[p]["content_similarity"] + float(pick(shifts[p[1]][0])) for p in missing
        ]
        red = [r["style_loss_reduction"] for r in mine.values()] + [
            ref[p]["style_loss_reduction"] * float(pick(shifts[p[1]][1])) for p in missing
        ]
        lines.append(
            f"  {name} per painting: content similarity p10 {np.percentile(sim, 10):.3f}, "
            f"style-loss reduction median {np.median(red):.1f}x"
        )
    return "\n".join(lines)


def contact_sheet(
    rows: Sequence[dict[str, Any]], images: Path, out: Path, worst: int, configs: Sequence[str]
) -> None:
    """Per configuration, its `worst` pairs by content similarity: photo, painting, picture."""
    cell, header = 200, 18
    picked = []
    for config in configs:
        mine = sorted(
            (r for r in rows if r["config"] == config), key=lambda r: r["content_similarity"]
        )
        picked += mine[:worst]
    columns = 3
    sheet = Image.new("RGB", (cell * columns * 2, (cell + header) * -(-len(picked) // 2)), "white")
    draw = ImageDraw.Draw(sheet)
    for index, r in enumerate(picked):
        row, half = divmod(index, 2)
        x0, y0 = half * columns * cell, row * (cell + header)
        tiles = [
            rgb(photo_path(r["photo"])),
            rgb(SHARED / "style" / r["painting"]),
            Image.open(images / image_name(r["config"], r["photo"], r["painting"])),
        ]
        for col, tile in enumerate(tiles):
            tile = tile.copy()
            tile.thumbnail((cell - 4, cell - 4))
            sheet.paste(tile, (x0 + col * cell + 2, y0 + header))
        draw.text(
            (x0 + 4, y0 + 3),
            f"{r['config']}: similarity {r['content_similarity']:.2f}, "
            f"style x{r['style_loss_reduction']:.0f}",
            fill="black",
        )
    sheet.save(out, quality=88)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", type=lambda s: s.split(","), default=list(DEFAULT_PRESETS))
    parser.add_argument("--size", type=int, default=None, help="(default: each preset's)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="OPTION=VALUE", help="an Options field"
    )
    parser.add_argument("--photos", type=int, default=len(PHOTOS), help="the first N photos")
    parser.add_argument("--paintings", type=int, default=len(PAINTINGS), help="per photo")
    parser.add_argument(
        "--rotate", action="store_true", help="each photo's paintings start at its own index"
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto; the presets follow it")
    parser.add_argument(
        "--shard",
        type=shard_spec,
        default=(0, 1),
        metavar="K/N",
        help="only every Nth pair from the Kth (0-based): N processes share one GPU",
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "faithful_results.json")
    parser.add_argument("--save-images", type=Path, default=None)
    parser.add_argument(
        "--sheet", type=Path, default=None, help="draw the worst pairs of --out, run nothing"
    )
    parser.add_argument(
        "--worst", type=int, default=4, help="pairs per configuration (--sheet, --worst-of)"
    )
    parser.add_argument(
        "--worst-of",
        metavar="CONFIG",
        default=None,
        help="run only the --worst pairs of an earlier configuration in --out: where a change "
        "meets the 10th percentile is decided among them",
    )
    parser.add_argument(
        "--pair",
        type=pair_spec,
        action="append",
        default=[],
        metavar="PHOTO:PAINTING",
        help="run only these pairs, in this order (the grid's names, as in --out)",
    )
    parser.add_argument(
        "--estimate",
        nargs=2,
        metavar=("CONFIG", "REFERENCE"),
        default=None,
        help="run nothing: the whole grid of a partly run CONFIG, its missing pairs at "
        "REFERENCE's scores shifted per painting by the median and the worst change seen",
    )
    parser.add_argument(
        "--label",
        default=None,
        help="file the rows under this configuration instead of the one the options name: "
        "the same configuration run elsewhere (--device cuda --presets balanced --label high "
        "runs the CPU's high schedule on a GPU) resumes and joins its rows",
    )
    args = parser.parse_args(argv)
    if args.label is not None and len(args.presets) != 1:
        parser.error("--label names the rows of one preset: give --presets one name")
    if args.pair and args.worst_of is not None:
        parser.error("--pair and --worst-of both choose the pairs: give one")
    if args.estimate is not None:
        print(estimate(json.loads(args.out.read_text())["rows"], *args.estimate))
        return 0
    if args.sheet is None:
        rows = run_grid(args)
    elif args.save_images is None:
        parser.error("--sheet draws the pictures kept by an earlier --save-images DIR")
    else:
        rows = json.loads(args.out.read_text())["rows"]
        sets = dict(parse_set(s) for s in args.set)
        device = resolve_device(args.device).type
        configs = [args.label or label(p, args.size, sets, device) for p in args.presets]
        contact_sheet(rows, args.save_images, args.sheet, args.worst, configs)
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
