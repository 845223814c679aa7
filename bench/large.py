"""Benchmark: print-size outputs within a memory budget (tiling), their memory, time and seams.

Each size runs in a fresh subprocess so its peak resident memory is its own. For a tiled
top scale the seam ratio of the output is measured across the borders of that scale's
unshifted tile grid (the one its content targets were assembled on): the mean step
between neighbouring pixels across tile borders over the mean step elsewhere, about 1
when there are no seams.

    .venv/bin/python bench/large.py                 # 1024 and 2048 px (fast preset), and
                                                    # 4096 px single scale, 2 evaluations
    .venv/bin/python bench/large.py --quick         # 384 px in a 0.3 GiB budget: a smoke check
    .venv/bin/python bench/large.py --runs 2048:fast --max-memory 3
    .venv/bin/python bench/large.py --runs 4096:instant,8192:instant --out bench/large_instant.json

Prints a Markdown table and writes JSON (default bench/large_results.json).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from run import REPO, default_images_dir, machine_info
from styleshift import Options, StyleTransfer
from styleshift.gatys import tiles
from styleshift.io.image import load_image, resize_long_side, to_tensor

CONTENT = "tubingen.jpg"
STYLE = "vangogh_starry_night.jpg"
# What the issue asks for: 1024 and 2048 with a preset, and 4096 (fast preset is fine).
# A full fast run at 4096 px spends most of an hour in its top two scales on 2 cores, so
# by default 4096 px runs its top scale alone for two evaluations: enough for the peak
# memory and the cost of an evaluation there.
DEFAULT_RUNS = ("1024:fast", "2048:fast", "4096:top2")
SIZE_LIMIT_MB = 6000.0  # the target at 2048 px


def run_one(spec: dict[str, Any]) -> dict[str, Any]:
    images = Path(spec["images"])
    size, mode = spec["size"], spec["mode"]
    options = Options(
        preset="instant" if mode == "instant" else "fast",
        size=size,
        max_memory=spec["max_memory"],
        precision=spec["precision"],
    )
    if mode == "top2":
        options = replace(options, multiscale=False, iterations=(2,))
    engine = StyleTransfer(device=spec["device"])
    start, cpu_start = time.perf_counter(), time.process_time()
    result = engine.run(images / "content" / CONTENT, images / "style" / STYLE, options)
    seconds = time.perf_counter() - start
    # Well below 1: other processes competed for the cores and the times are inflated.
    cpu_util = (time.process_time() - cpu_start) / seconds / torch.get_num_threads()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    top = result.scales[-1]
    seam = photo_seam = None
    if top.tile is not None:
        seam, photo_seam = seam_ratios(result.image, images / "content" / CONTENT, top.tile)
    if spec["save"]:
        out = Path(spec["save"])
        out.parent.mkdir(parents=True, exist_ok=True)
        result.image.save(out)
    return {
        "size": size,
        "mode": mode,
        "max_memory": spec["max_memory"],
        "precision": result.options.precision,
        "output": list(result.image.size),
        "seconds": seconds,
        "cpu_util": cpu_util,
        "peak_mb": peak_mb,
        "loss": result.loss,
        "scales": [
            {
                "size": list(s.size),
                "evaluations": s.iterations,
                "seconds": s.seconds,
                "tile": s.tile,
            }
            for s in result.scales
        ],
        "top_seconds_per_evaluation": top.seconds / top.iterations if top.iterations else None,
        "top_tile": top.tile,
        "seam_ratio": seam,
        "photo_seam_ratio": photo_seam,
    }


def seam_ratios(output: Image.Image, content: Path, tile: int) -> tuple[float, float]:
    """The output's seam ratio on the unshifted grid, and the content photo's own on the
    same lines at the same size: an upscaled JPEG's 8 px blocks fall on them at some sizes,
    and no tiling put those there."""
    image = to_tensor(output)
    h, w = image.shape[-2:]
    layout = tiles.grid(h, w, tile)
    photo = to_tensor(resize_long_side(load_image(content), max(h, w)))
    return tiles.seam_ratio(image, layout), tiles.seam_ratio(photo, layout)


def table(rows: Sequence[dict[str, Any]]) -> str:
    lines = [
        "| output | run | wall | CPU util | peak RSS | top scale tile | s / evaluation at top "
        "| seam ratio (photo's own) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        tile = f"{r['top_tile']} px" if r["top_tile"] else "none"
        seam = "-"
        if r["seam_ratio"] is not None:
            seam = f"{r['seam_ratio']:.3f} ({r.get('photo_seam_ratio') or 0:.3f})"
        util = f"{r['cpu_util']:.2f}" if r.get("cpu_util") is not None else "-"
        each = r["top_seconds_per_evaluation"]  # None: one feed-forward pass
        run = r["mode"] + (f", --max-memory {r['max_memory']:g}" if r.get("max_memory") else "")
        run += f", {r.get('precision', 'float32')}"
        lines.append(
            f"| {r['output'][0]}x{r['output'][1]} | {run} | {r['seconds']:.0f} s "
            f"| {util} | {r['peak_mb'] / 1024:.2f} GiB | {tile} "
            f"| {'-' if each is None else f'{each:.1f} s'} | {seam} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--runs", default=",".join(DEFAULT_RUNS), help="SIZE:fast, SIZE:top2 or SIZE:instant, ..."
    )
    p.add_argument("--max-memory", type=float, default=None, help="GiB (default: the engine's)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default="auto", help="auto, float32 or bfloat16")
    p.add_argument("--images", type=Path, default=None)
    p.add_argument("--save-images", type=Path, default=None, help="folder for the outputs")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "large_results.json")
    p.add_argument("--quick", action="store_true", help="384 px in a 0.3 GiB budget")
    p.add_argument("--one", type=str, default=None, help=argparse.SUPPRESS)
    p.add_argument("--table", type=Path, default=None, help="print the table of a JSON report")
    args = p.parse_args(argv)
    if args.one is not None:
        print(json.dumps(run_one(json.loads(args.one))))
        return 0
    if args.table is not None:
        print(table(json.loads(args.table.read_text())["runs"]))
        return 0
    if args.quick:
        args.runs, args.max_memory = "384:fast", 0.3
        args.out = REPO / "bench" / "large_results-quick.json"
    images = args.images or default_images_dir()
    rows = []
    for run in args.runs.split(","):
        size, mode = run.split(":")
        spec = {
            "images": str(images),
            "size": int(size),
            "mode": mode,
            "max_memory": args.max_memory,
            "device": args.device,
            "precision": args.precision,
            "save": str(args.save_images / f"large_{size}_{mode}.png")
            if args.save_images
            else None,
        }
        done = subprocess.run(
            [sys.executable, __file__, "--one", json.dumps(spec)], capture_output=True, text=True
        )
        if done.returncode:  # a size refused for its memory says so and the others go on
            print(f"{run}: {(done.stderr.strip().splitlines() or ['failed'])[-1]}", flush=True)
            continue
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(table(rows[-1:]).splitlines()[-1], flush=True)
    print()
    print(table(rows))
    report = {"machine": machine_info(args.device), "max_memory": args.max_memory, "runs": rows}
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
