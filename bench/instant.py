"""Benchmark of the feed-forward (instant) method: speed, its arithmetic floor, and quality.

    .venv/bin/python bench/instant.py speed      # API and CLI time at 512 px, float32 and bfloat16
    .venv/bin/python bench/instant.py quality    # every transform on photos x paintings
    .venv/bin/python bench/instant.py quality --compare 4   # also fast and balanced on 4 pairs

Speed: one 512 x 512 photo and painting; the API time is `engine.run` with the network
and decoder loaded (median of --repeats), the CLI time a whole `styleshift stylize
--preset instant` process (median of 3). The floor is the multiply-adds of the
encoder (photo and painting) and the decoder over the measured peak rate of a large
float32 / bfloat16 matrix product on this machine.

Quality (metrics.py's independent scorer, the output's own size): content similarity
(relu4_2 cosine with the photo) and style reduction (how many times closer to the
painting's Gram matrices than the photo was), per pair and summarised as median and
10th percentile. Photos: ../shared/images/content plus, when present, the held-out
validation photos of training-data/val (scripts/training_data.py).

Prints Markdown tables and writes bench/instant_results.json (--out).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image, ImageDraw
from torch import nn

from styleshift import Options, StyleTransfer
from styleshift.core.device import Precision, fast_bfloat16_unit
from styleshift.core.metrics import Scorer, fit_painting, fit_photo
from styleshift.core.weights import ensure_weights, load_state_dict
from styleshift.io.image import load_image, split_alpha

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("STYLESHIFT_SHARED", REPO.parent / "shared")) / "images"
PAINTINGS = (
    "vangogh_starry_night.jpg",
    "hokusai_great_wave.jpg",
    "kandinsky_composition_vii.jpg",
    "munch_the_scream.jpg",
    "picabia_udnie.jpg",
    "seurat_sunday_grande_jatte.jpg",
)
TRANSFORMS = ("adain", "wct", "efdm")


def cpu_facts() -> dict[str, Any]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    unit = fast_bfloat16_unit(torch.device("cpu"))
    return {
        "cpu": model,
        "amx": unit == "AMX",
        "bfloat16_unit": unit,
        "isa": torch.backends.cpu.get_cpu_capability(),
        "onednn_cap": os.environ.get("ONEDNN_MAX_CPU_ISA"),
        "threads": torch.get_num_threads(),
        # Where the commands pick a GPU (--device auto), the figures are the GPU's.
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch": torch.__version__,
        "load_average_at_start": os.getloadavg()[0],
    }


def rgb(path: Path) -> Image.Image:
    return split_alpha(load_image(path))[0]


def square(image: Image.Image, side: int) -> Image.Image:
    short = min(image.size)
    left, top = (image.width - short) // 2, (image.height - short) // 2
    box = (left, top, left + short, top + short)
    return image.crop(box).resize((side, side), Image.Resampling.LANCZOS)


def peak_flops(dtype: torch.dtype, seconds: float = 2.0) -> float:
    """Multiply-add rate of a large matrix product: the best this CPU does in `dtype`."""
    a = torch.randn(2048, 2048, dtype=dtype)
    b = torch.randn(2048, 2048, dtype=dtype)
    a @ b  # warm-up
    runs, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        runs += 1
    return 2 * 2048**3 * runs / (time.perf_counter() - start)


def conv_macs(engine: StyleTransfer, side: int) -> int:
    """Multiply-adds of encoder (photo and painting) plus decoder at side x side."""
    ((decoder, info),) = engine.feedforward.decoders(("relu4_1",))
    from styleshift.core.vgg import VGGFeatures

    encoder = VGGFeatures(engine._state, (info.level,), info.pooling)
    total = 0

    def hook(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        nonlocal total
        assert isinstance(module, nn.Conv2d)
        k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels
        total += output.numel() * k

    handles = [m.register_forward_hook(hook) for m in encoder.modules() if isinstance(m, nn.Conv2d)]
    handles += [
        m.register_forward_hook(hook) for m in decoder.modules() if isinstance(m, nn.Conv2d)
    ]
    with torch.no_grad():
        features = encoder(torch.rand(1, 3, side, side))[info.level]
        encoder_macs = total
        decoder(features)
    for h in handles:
        h.remove()
    return total + encoder_macs  # the painting is encoded too


def speed(args: argparse.Namespace) -> dict[str, Any]:
    engine = StyleTransfer(device="cpu")
    photo = square(rgb(SHARED / "content" / "kodim23_parrots.png"), args.size)
    painting = square(rgb(SHARED / "style" / "vangogh_starry_night.jpg"), args.size)
    macs = conv_macs(engine, args.size)
    rows = []
    fast = fast_bfloat16_unit(torch.device("cpu")) is not None
    precisions: list[Precision] = ["float32", "bfloat16"] if fast else ["float32"]
    for precision in precisions:
        options = Options(
            preset="instant", size=args.size, precision=precision, model=tuple(args.model) or None
        )
        engine.run(photo, painting, options)  # warm-up: loads the decoder, first-call costs
        times, cached = [], []
        for _ in range(args.repeats):
            # A new painting each time (its features are not kept), then the same again.
            engine.feedforward._styles.clear()
            start = time.perf_counter()
            engine.run(photo, painting, options)
            times.append(time.perf_counter() - start)
            start = time.perf_counter()
            engine.run(photo, painting, options)
            cached.append(time.perf_counter() - start)
        dtype = torch.float32 if precision == "float32" else torch.bfloat16
        peak = peak_flops(dtype)
        api = statistics.median(times)
        with tempfile.TemporaryDirectory() as tmp:
            paths = [Path(tmp) / "photo.png", Path(tmp) / "painting.png"]
            photo.save(paths[0])
            painting.save(paths[1])
            cli = []
            for run in range(3):
                start = time.perf_counter()
                subprocess.run(
                    [sys.executable, "-m", "styleshift", "stylize", *map(str, paths), "-q",
                     "-o", str(Path(tmp) / f"out{run}.png"), "--preset", "instant",
                     "--size", str(args.size), "--precision", precision],
                    check=True,
                )  # fmt: skip
                cli.append(time.perf_counter() - start)
        rows.append(
            {
                "precision": precision,
                "api_s": api,
                "api_runs": times,
                "api_cached_s": statistics.median(cached),
                "cli_s": statistics.median(cli),
                "cli_runs": cli,
                "gmacs": macs / 1e9,
                "peak_gflops": peak / 1e9,
                "floor_s": 2 * macs / peak,
                "api_over_floor": api / (2 * macs / peak),
            }
        )
    return {"size": args.size, "rows": rows}


def speed_table(report: dict[str, Any], facts: dict[str, Any]) -> str:
    lines = [
        f"instant at {report['size']} x {report['size']} on {facts['cpu']} "
        f"({facts['threads']} threads, fast bfloat16: {facts['bfloat16_unit']}, "
        f"ISA: {facts['isa']})",
        "",
        "| precision | API s (median) | same painting again s | CLI s (median) | GMAC "
        "| peak GFLOP/s | floor s | API / floor |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["rows"]:
        lines.append(
            f"| {r['precision']} | {r['api_s']:.2f} | {r['api_cached_s']:.2f} "
            f"| {r['cli_s']:.2f} | {r['gmacs']:.1f} | "
            f"{r['peak_gflops']:.0f} | {r['floor_s']:.2f} | {r['api_over_floor']:.1f} |"
        )
    return "\n".join(lines)


def photos(extra: Path | None) -> list[Path]:
    found = sorted((SHARED / "content").iterdir())
    if extra is not None and extra.is_dir():
        found += sorted(
            p for p in extra.rglob("*") if p.suffix.lower() in {".png", ".jpg", ".webp"}
        )
    return found


def paintings_of(given: Sequence[str]) -> list[Path]:
    """Paintings by path, or by name in ../shared/images/style or style-corpus."""
    if not given:
        return [SHARED / "style" / name for name in PAINTINGS]
    found = []
    for name in given:
        candidates = [Path(name), SHARED / "style" / name, SHARED / "style-corpus" / name]
        found.append(next((c for c in candidates if c.is_file()), Path(name)))
    return found


def quality(args: argparse.Namespace) -> dict[str, Any]:
    engine = StyleTransfer(device="cpu")
    scorer = Scorer(load_state_dict(ensure_weights()))
    paintings = paintings_of(args.paintings)
    pairs = [(p, s) for p in photos(args.extra) for s in paintings]
    levels = [tuple(group.split(",")) for group in args.levels.split(";")]
    models = tuple(args.model) or None
    instant = {
        f"instant-{t}" + ("" if len(lv) == 1 else f"-{len(lv)}levels"): Options(
            method=t, size=args.size, levels=lv, model=models
        )
        for lv in levels
        for t in args.transforms.split(",")
    }
    for strength in (float(x) for x in args.strengths.split(",") if x):
        instant |= {
            f"{name} strength {strength:g}": dataclasses.replace(o, strength=strength)
            for name, o in list(instant.items())
        }
    if args.baseline_model:  # the same transforms with other decoders, named "... before"
        instant |= {
            f"{name} before": dataclasses.replace(o, model=tuple(args.baseline_model))
            for name, o in instant.items()
        }
    rows = []
    save = Path(args.save_images) if args.save_images else None
    for index, (photo_path, painting_path) in enumerate(pairs):
        photo, painting = rgb(photo_path), rgb(painting_path)
        configs = dict(instant)
        # The optimisation presets on one pair per photo, each with another painting.
        photo_index, painting_index = divmod(index, len(paintings))
        compared = photo_index < args.compare and painting_index == photo_index % len(paintings)
        if args.only_compared and not compared:
            continue
        if compared:
            presets = {
                "fast": Options(preset="fast", size=args.size),
                "balanced": Options(preset="balanced", size=args.size),
                "balanced+instant": Options(
                    preset="balanced", size=args.size, init="instant", model=models
                ),
            }
            configs |= {name: presets[name] for name in args.presets.split(",")}
        for name, options in configs.items():
            start = time.perf_counter()
            result = engine.run(photo, painting, options)
            seconds = time.perf_counter() - start
            scores = scorer.score(result.image, photo, painting)
            row = {
                "photo": photo_path.name,
                "painting": painting_path.name,
                "painting_path": str(painting_path),
                "method": name,
                "seconds": seconds,
                "content_similarity": scores.content_similarity,
                "style_reduction": scores.style_reduction,
                "statistics_reduction": scores.statistics_reduction,
            }
            if args.layers:  # each layer's Gram distance, the picture's and the photo's
                fitted = fit_photo(photo, result.image.size)
                fitted_painting = fit_painting(painting, result.image.size)
                row["layers"] = scorer.style(result.image, fitted, fitted_painting).layers
                row["photo_layers"] = scorer.style(fitted, fitted, fitted_painting).layers
            rows.append(row)
            if save is not None:
                save.mkdir(parents=True, exist_ok=True)
                result.image.save(save / f"{photo_path.stem}__{painting_path.stem}__{name}.jpg")
        print(f"{index + 1}/{len(pairs)} {photo_path.name} x {painting_path.name}", file=sys.stderr)
    return {"size": args.size, "rows": rows, "summary": summarise(rows)}


def contact_sheet(
    rows: Sequence[dict[str, Any]], images: Path, out: Path, worst: int, extra: Path | None
) -> None:
    """The photo, the painting and every method's picture for the pairs where the default
    instant method kept the least of the photo (and every pair the presets also ran)."""
    default = f"instant-{TRANSFORMS[0]}"
    by_pair: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for r in rows:
        by_pair.setdefault((r["photo"], r["painting"]), {})[r["method"]] = r
    compared = [p for p, runs in by_pair.items() if "fast" in runs or "balanced" in runs]
    ranked = sorted(by_pair, key=lambda p: by_pair[p][default]["content_similarity"])
    pairs = list(dict.fromkeys(ranked[:worst] + compared))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    cell, header = 192, 20
    columns = ["photo", "painting", *methods]
    sheet = Image.new("RGB", (cell * len(columns), header + cell * len(pairs)), "white")
    draw = ImageDraw.Draw(sheet)
    for col, name in enumerate(columns):
        draw.text((col * cell + 4, 4), name, fill="black")
    for row, (photo, painting) in enumerate(pairs):
        photo_path = next(p for p in photos(extra) if p.name == photo)
        painting_path = next(r["painting_path"] for r in rows if r["painting"] == painting)
        tiles = [rgb(photo_path), rgb(Path(painting_path))]
        for method in methods:
            path = images / f"{Path(photo).stem}__{Path(painting).stem}__{method}.jpg"
            tiles.append(Image.open(path) if path.is_file() else Image.new("RGB", (1, 1), "white"))
        for col, tile in enumerate(tiles):
            tile = tile.copy()
            tile.thumbnail((cell - 4, cell - 4))
            sheet.paste(tile, (col * cell + 2, header + row * cell + 2))
    sheet.save(out, quality=88)


def summarise(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    summary = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        sims = sorted(r["content_similarity"] for r in mine)
        summary[method] = {
            "pairs": len(mine),
            "content_p10": sims[max(0, round(0.1 * (len(sims) - 1)))],
            "content_median": statistics.median(sims),
            "style_reduction_median": statistics.median(r["style_reduction"] for r in mine),
            "statistics_reduction_median": statistics.median(
                r["statistics_reduction"] for r in mine
            ),
            "seconds_median": statistics.median(r["seconds"] for r in mine),
        }
        if all("layers" in r for r in mine):
            for key in ("layers", "photo_layers"):
                summary[method][key] = {
                    n: statistics.median(r[key][n] for r in mine) for n in mine[0][key]
                }
    return summary


def quality_table(report: dict[str, Any]) -> str:
    lines = [
        f"at {report['size']} px",
        "",
        "| method | pairs | content sim. p10 | median | Gram reduction (median) "
        "| mean/std reduction (median) | s (median) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for method, s in report["summary"].items():
        lines.append(
            f"| {method} | {s['pairs']} | {s['content_p10']:.3f} | {s['content_median']:.3f} | "
            f"{s['style_reduction_median']:.2f}x | {s['statistics_reduction_median']:.2f}x | "
            f"{s['seconds_median']:.1f} |"
        )
    layered = {m: s for m, s in report["summary"].items() if "layers" in s}
    if layered:
        names = list(next(iter(layered.values()))["layers"])
        lines += [
            "",
            "Gram distance to the painting by layer (median; the photo's, then the picture's):",
            "",
            "| method | " + " | ".join(names) + " |",
            "|---|" + "---:|" * len(names),
        ]
        for method, s in layered.items():
            for who, key in (("photo", "photo_layers"), (method, "layers")):
                values = " | ".join(f"{s[key][n]:.3f}" for n in names)
                lines.append(f"| {who} ({s['pairs']} pairs) | {values} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["speed", "quality"])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--compare", type=int, default=0, metavar="N",
        help="also run fast, balanced and balanced from instant on N photos",
    )  # fmt: skip
    parser.add_argument("--extra", type=Path, default=REPO / "training-data" / "val")
    parser.add_argument("--transforms", default=",".join(TRANSFORMS))
    parser.add_argument(
        "--levels", default="relu4_1", help="level sets to compare, e.g. 'relu4_1;relu4_1,relu3_1'"
    )
    parser.add_argument("--model", nargs="*", default=[], help="decoder files to use")
    parser.add_argument(
        "--baseline-model", nargs="*", default=[],
        help="also run every instant setting with these decoders (named '... before')",
    )  # fmt: skip
    parser.add_argument(
        "--strengths", default="", help="also run each instant setting at these strengths"
    )
    parser.add_argument(
        "--paintings", nargs="*", default=[],
        help="paintings (paths or names in shared style/ or style-corpus/); default the six",
    )  # fmt: skip
    parser.add_argument("--save-images", default=None, metavar="DIR")
    parser.add_argument(
        "--sheet", type=Path, default=None, help="with --save-images: write a contact sheet"
    )
    parser.add_argument("--worst", type=int, default=6, help="worst pairs on the sheet")
    parser.add_argument(
        "--presets", default="fast,balanced,balanced+instant",
        help="the optimisation runs of --compare (of fast, balanced, balanced+instant)",
    )  # fmt: skip
    parser.add_argument("--only-compared", action="store_true", help="run only the --compare pairs")
    parser.add_argument(
        "--layers", action="store_true",
        help="also report each layer's Gram distance (the photo's and the picture's)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    facts = cpu_facts()
    report = speed(args) if args.what == "speed" else quality(args)
    if args.sheet is not None and args.save_images is not None:
        contact_sheet(report["rows"], Path(args.save_images), args.sheet, args.worst, args.extra)
    report["machine"] = facts
    table = speed_table(report, facts) if args.what == "speed" else quality_table(report)
    print(table)
    out = args.out or REPO / "bench" / f"instant_{args.what}.json"
    out.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
