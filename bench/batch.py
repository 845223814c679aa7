"""Throughput of `styleshift batch`: pictures per minute per preset, size and way of running.

    .venv/bin/python bench/batch.py                       # the table in docs/performance.md
    .venv/bin/python bench/batch.py --presets instant --sizes 256 --images 4   # quicker
    .venv/bin/python bench/batch.py --precision float32   # as a CPU without AMX runs

Each cell runs one batch of --images photos (the shared content photos, repeated as
needed) with one painting into an empty folder, through `run_batch` as the CLI does, and
times it from the call to the last result: worker start-up (processes spawning and
loading VGG-19, or a local Ray cluster starting) included, since a user's batch pays it.
The steady rate leaves the start-up out: pictures after the first result of every worker
over the time they took, the pace a long batch settles to.
Modes: `local1` (the driver's own process), `local2` (two worker processes of one thread
each), `ray2` (a local Ray cluster with two one-CPU actors). Refuses to run on a busy
machine (another process using more than 10% of the CPUs over one second) unless
--force. Writes bench/batch_results.json (--out) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from itertools import cycle, islice
from pathlib import Path
from typing import Any

import torch

from styleshift import Options
from styleshift.apps.batch import plan, run_batch
from styleshift.core.device import fast_bfloat16_unit

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("STYLESHIFT_SHARED", REPO.parent / "shared")) / "images"
MODES = {"local1": (1, False), "local2": (2, False), "ray2": (2, True)}


def busy_share(seconds: float = 1.0) -> float:
    """The share of all CPUs that other processes used over `seconds` (Linux)."""

    def ticks() -> tuple[int, int]:
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
        return sum(values), values[3] + values[4]  # total, idle + iowait

    total0, idle0 = ticks()
    time.sleep(seconds)
    total1, idle1 = ticks()
    return 1.0 - (idle1 - idle0) / max(total1 - total0, 1)


def cell(preset: str, size: int, mode: str, count: int, precision: str) -> dict[str, Any]:
    workers, ray = MODES[mode]
    photos = list(islice(cycle(sorted((SHARED / "content").iterdir())), count))
    painting = SHARED / "style" / "hokusai_great_wave.jpg"
    options = Options(preset=preset, size=size, precision=precision)  # type: ignore[arg-type]
    with tempfile.TemporaryDirectory() as tmp:
        inputs = []
        for i, photo in enumerate(photos):  # distinct names: a photo may repeat
            link = Path(tmp) / "in" / f"{i:02d}{photo.suffix}"
            link.parent.mkdir(exist_ok=True)
            link.symlink_to(photo)
            inputs.append(link)
        start = time.perf_counter()
        results, stamps = [], []
        for result in run_batch(plan(inputs, [painting], options), Path(tmp) / "out",
                                workers=workers, ray=ray):  # fmt: skip
            results.append(result)
            stamps.append(time.perf_counter())
        wall = stamps[-1] - start
    failed = [r.error for r in results if r.status != "done"]
    if failed:
        raise SystemExit(f"{preset} {size} {mode}: {failed[0]}")
    return {
        "preset": preset,
        "size": size,
        "mode": mode,
        "images": count,
        "wall_s": wall,
        "per_minute": count / wall * 60,
        # Once every worker is up: the pace a long batch settles to, start-up left out.
        "steady_per_minute": (count - workers) / (stamps[-1] - stamps[workers - 1]) * 60,
        "startup_s": stamps[workers - 1] - start,
        "item_median_s": sorted(r.seconds for r in results)[len(results) // 2],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="instant,fast")
    parser.add_argument("--sizes", default="256,512")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--images", type=int, default=8, help="pictures per batch")
    parser.add_argument("--precision", default="auto", choices=["auto", "float32", "bfloat16"])
    parser.add_argument("--force", action="store_true", help="run on a busy machine")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "batch_results.json")
    args = parser.parse_args(argv)

    busy = busy_share()
    if busy > 0.10 and not args.force:
        raise SystemExit(f"other processes use {busy:.0%} of the CPUs; stop them or --force")
    rows = []
    for preset in args.presets.split(","):
        for size in (int(s) for s in args.sizes.split(",")):
            for mode in args.modes.split(","):
                rows.append(cell(preset, size, mode, args.images, args.precision))
                r = rows[-1]
                print(f"{preset} {size} {mode}: {r['per_minute']:.1f}/min", file=sys.stderr)
    unit = fast_bfloat16_unit(torch.device("cpu"))
    facts = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "amx": unit == "AMX",
        "bfloat16_unit": unit,
        "isa": torch.backends.cpu.get_cpu_capability(),
        "onednn_cap": os.environ.get("ONEDNN_MAX_CPU_ISA"),
        "precision": args.precision,
        "busy_before": busy,
    }
    args.out.write_text(json.dumps({"machine": facts, "rows": rows}, indent=1) + "\n")
    print(table(rows))
    return 0


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| preset | size | mode | images | wall s | per minute | steady per minute "
             "| first results s | median item s |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in rows:
        lines.append(
            f"| {r['preset']} | {r['size']} | {r['mode']} | {r['images']} | {r['wall_s']:.1f} "
            f"| {r['per_minute']:.1f} | {r['steady_per_minute']:.1f} | {r['startup_s']:.1f} "
            f"| {r['item_median_s']:.2f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
