"""Benchmark: flicker and speed of `styleshift video` against independent per-frame stylisation.

For each clip (the Sintel market frames and the Big Buck Bunny clip from ../shared/images)
the same content frames, at the same size, are stylised twice with the same preset:

- **video**: `VideoStylizer`, as `styleshift video` runs it (the first frame with the full
  preset; each later frame from the previous result warped by DIS flow, a short
  single-scale optimisation with the temporal term);
- **independent**: `engine.run` on every frame on its own, the full preset each time.

Flicker is the temporal warping error: the mean absolute difference (0..1 scale, over the
RGB channels) between each stylised frame and the previous stylised frame warped onto it
by the flow of the content frames, over the pixels where forward and backward flow agree;
averaged over the consecutive pairs. Speed is the wall time of each frame's `run` call.

    flock /tmp/styleshift-cpu.lock .venv/bin/python bench/video.py           # ~15-20 min
    .venv/bin/python bench/video.py --quick                                   # ~1 min check

Prints a Markdown table and writes bench/video_results.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from styleshift import Options, StyleTransfer
from styleshift.apps.video import VideoSettings, VideoStylizer
from styleshift.core.flow import sequence_warping_error
from styleshift.io.videoio import probe, read_frames

REPO = Path(__file__).resolve().parents[1]
CLIPS: dict[str, tuple[str, float]] = {  # name -> (path under images/, start in seconds)
    "sintel_market": ("video/sintel_market_frames", 0.0),
    "big_buck_bunny": ("video/big_buck_bunny_cut_10s_640x360.mp4", 1.0),
}


def default_images_dir() -> Path:
    shared = os.environ.get("STYLESHIFT_SHARED")
    return Path(shared) / "images" if shared else REPO.parent / "shared" / "images"


def flicker(contents: Sequence[np.ndarray], stylised: Sequence[np.ndarray]) -> dict[str, float]:
    error, consistent = sequence_warping_error(contents, stylised)
    return {"warping_error": error, "consistent": consistent}


class CpuClock:
    """CPU utilisation of this process over a span: well below 1 means competition."""

    def __enter__(self) -> CpuClock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.perf_counter() - self.wall
        self.util = (time.process_time() - self.cpu) / wall / torch.get_num_threads()


def run_clip(
    name: str, engine: StyleTransfer, style: Image.Image, args: argparse.Namespace
) -> dict[str, Any]:
    path, start = CLIPS[name]
    info = probe(args.images / path, start=start)
    options = Options(preset=args.preset, size=args.size, device=args.device)
    prepare = VideoStylizer(engine, style, options).prepare
    frames = [prepare(f) for f in itertools.islice(read_frames(info), args.frames)]
    contents = [np.asarray(f) for f in frames]
    with CpuClock() as clock:
        independent = [engine.run(f, style, replace(options, size=max(f.size))) for f in frames]
    runs: dict[str, Any] = {
        "independent": {
            **flicker(contents, [np.asarray(r.image) for r in independent]),
            "per_frame_s": statistics.fmean(r.seconds for r in independent),
            "cpu_util": clock.util,
        }
    }
    print(f"{name} independent: {runs['independent']}", file=sys.stderr)
    first = independent[0]
    instant = independent[0].options.feedforward
    # Feed-forward presets mix in the warped previous frame (blend); the optimisation
    # ties each frame to it (temporal weight).
    variants = args.blends if instant else args.temporal_weights
    for weight in variants:
        settings = (
            VideoSettings(blend=weight)
            if instant
            else VideoSettings(temporal_weight=weight, later_iterations=args.later_iterations)
        )
        label = f"video blend={weight:g}" if instant else f"video w={weight:g}"
        stylizer = VideoStylizer(engine, style, options, settings)
        # The video's first frame is this same full-preset run: reuse it, don't repeat it.
        stylizer.prime(frames[0], first.image, 1)
        with CpuClock() as clock:
            later = list(stylizer.stream(frames[1:]))
        later_s = statistics.fmean(r.seconds for r in later)
        runs[label] = {
            "blend" if instant else "temporal_weight": weight,
            "later_iterations": None if instant else args.later_iterations,
            **flicker(contents, [np.asarray(first.image)] + [np.asarray(r.image) for r in later]),
            "first_s": first.seconds,
            "later_s": later_s,
            "later_over_first": later_s / first.seconds,
            "per_frame_s": (first.seconds + later_s * len(later)) / len(frames),
            "cpu_util": clock.util,
        }
        print(f"{name} {label}: {runs[label]}", file=sys.stderr)
    h, w = contents[0].shape[:2]
    return {"clip": name, "frames": len(contents), "size": [w, h], "runs": runs}


def table(clips: Sequence[dict[str, Any]]) -> str:
    lines = [
        "| clip | frames | size | run | warping error | vs independent | first frame s "
        "| later frame s | later / first | CPU util |",
        "|---|---:|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for clip in clips:
        base = clip["runs"]["independent"]["warping_error"]
        for run, r in clip["runs"].items():
            change = (
                ""
                if base is None or run == "independent"
                else (f"{(r['warping_error'] / base - 1) * 100:+.0f}%")
            )
            first = r.get("first_s", r["per_frame_s"])
            later = r.get("later_s", r["per_frame_s"])
            ratio = f"{r['later_over_first']:.2f}" if "later_over_first" in r else "1"
            lines.append(
                f"| {clip['clip']} | {clip['frames']} | {clip['size'][0]}x{clip['size'][1]} "
                f"| {run} | {r['warping_error']:.4f} | {change} | {first:.1f} | {later:.1f} "
                f"| {ratio} | {r['cpu_util']:.2f} |"
            )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="4 frames at 128 px, one clip")
    p.add_argument("--frames", type=int, default=10, help="frames per clip (default 10)")
    p.add_argument("--size", type=int, default=360, help="long side in pixels (default 360)")
    p.add_argument(
        "--preset", default="fast", help="preset for both ways (default fast; or instant)"
    )
    p.add_argument("--style", default="vangogh_starry_night.jpg", help="style image file name")
    p.add_argument("--clips", default=",".join(CLIPS), help="comma-separated clip names")
    p.add_argument(
        "--temporal-weights", type=lambda s: [float(x) for x in s.split(",")],
        default=[VideoSettings().temporal_weight], help="one video run per weight",
    )  # fmt: skip
    p.add_argument("--later-iterations", type=int, default=VideoSettings().later_iterations)
    p.add_argument(
        "--blends", type=lambda s: [float(x) for x in s.split(",")],
        default=[VideoSettings().blend], help="with --preset instant: one video run per blend",
    )  # fmt: skip
    p.add_argument("--images", type=Path, default=default_images_dir())
    p.add_argument("--device", default="auto")
    p.add_argument("--out", type=Path, default=None, help="default bench/video_results.json")
    args = p.parse_args(argv)
    if args.quick:
        args.frames, args.size, args.clips = 4, 128, "sintel_market"
    if args.out is None:
        args.out = REPO / "bench" / ("video_results-quick.json" if args.quick else
                                     "video_results.json")  # fmt: skip
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    engine = StyleTransfer(device=args.device)
    style = Image.open(args.images / "style" / args.style).convert("RGB")
    clips = [run_clip(name, engine, style, args) for name in args.clips.split(",")]
    print(table(clips))
    report = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "bench/video.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": {
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "device": str(engine.device),
            "isa": torch.backends.cpu.get_cpu_capability(),
            "onednn_cap": os.environ.get("ONEDNN_MAX_CPU_ISA"),
        },
        "preset": args.preset,
        "style": args.style,
        "clips": clips,
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
