"""Benchmark: the presets against the textbook Gatys baseline, scored by one fixed objective.

Every configuration (the baseline and each preset) repaints the same content x style pairs.
A referee, the package's default objective evaluated at the benchmark size, scores each
run's final image and snapshots taken during the run, so runs that optimise at coarser
scales are judged on the same footing as the single-scale baseline. Each configuration
runs in a fresh subprocess so that its peak resident memory is its own.

    .venv/bin/python bench/run.py              # the full benchmark (long: ~45 min on 2 cores)
    .venv/bin/python bench/run.py --quick      # a ~1 minute smoke check of the harness

Prints Markdown tables (one per pair as it finishes, then a summary) and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from styleshift import Options, Progress, StyleTransfer
from styleshift.core.losses import ContentLoss, StyleLoss, TVLoss, gram_matrix
from styleshift.core.options import resolve_options
from styleshift.core.vgg import VGGFeatures
from styleshift.core.weights import ensure_weights, load_state_dict
from styleshift.gatys.objective import adaptive_factor
from styleshift.gatys.schedule import iterations_for, scale_sizes
from styleshift.io.image import load_image, resize_long_side, split_alpha, to_tensor

REPO = Path(__file__).resolve().parents[1]
BASELINE = "baseline"
OPTIMISED = ("fast", "balanced", "high")  # the feed-forward preset: bench/instant.py

# (content, style): varied subjects and styles, all in the shared test images.
PAIRS: tuple[tuple[str, str], ...] = (
    ("tubingen.jpg", "vangogh_starry_night.jpg"),
    ("kodim21_lighthouse.png", "hokusai_great_wave.jpg"),
    ("kodim23_parrots.png", "kandinsky_composition_vii.jpg"),
    ("rocket.jpg", "munch_the_scream.jpg"),
)

# The issue's targets.
TTB_TARGET = 1 / 5  # balanced reaches the baseline's final loss in <= 1/5 of its wall time
TTB_STRETCH = 1 / 10
FAST_LIMIT_S = 60.0
MEMORY_LIMIT_MB = 3000.0  # 3 GB, decimal megabytes as reported below
PRECISIONS = ("", "float32", "bfloat16")  # after PRESET@; empty: the engine's choice


# -- settings -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunSpec:
    """One configuration on one pair: what the parent hands a `--one` subprocess."""

    name: str  # BASELINE or a preset
    content: str
    style: str
    size: int
    baseline_evals: int
    device: str
    snapshots: int
    result_path: str
    save_image: str | None = None


def default_images_dir() -> Path:
    # Same convention as tests/conftest.py: $STYLESHIFT_SHARED/images, else ../shared/images.
    shared = os.environ.get("STYLESHIFT_SHARED")
    return (Path(shared) if shared else REPO.parent / "shared") / "images"


def find_image(images: Path, name: str, kind: str) -> Path:
    """The shared images live in content/ and style/; a flat folder works too."""
    for candidate in (images / kind / name, images / name):
        if candidate.is_file():
            return candidate
    raise SystemExit(f"{kind} image {name} not found under {images}; use --images DIR")


def options_for(spec: RunSpec) -> Options:
    if spec.name == BASELINE:
        # The textbook method: one scale, content start, L-BFGS, a fixed number of
        # evaluations (the engine's iterations are exact counts of network passes), in
        # float32 and with nothing but the referee's terms.
        return Options(
            size=spec.size,
            multiscale=False,
            iterations=(spec.baseline_evals,),
            optimizer="lbfgs",
            init="content",
            range_weight=0.0,
            precision="float32",
            device=spec.device,  # type: ignore[arg-type]
        )
    name, _, precision = spec.name.partition("@")
    name, _, seconds = name.partition("~")
    preset, _, start = name.partition("+")
    return Options(
        preset=preset,  # type: ignore[arg-type]
        size=spec.size,
        device=spec.device,  # type: ignore[arg-type]
        precision=precision or "auto",  # type: ignore[arg-type]
        init=start or "content",
        time=float(seconds) if seconds else None,
    )


# -- the referee ----------------------------------------------------------------------------


def load_rgb(path: str | Path) -> Image.Image:
    # As the engine does: alpha is set aside, the optimisation only sees RGB.
    return split_alpha(load_image(path))[0]


class Referee:
    """The package's default objective at one fixed size: the yardstick for every run.

    Built from the package's own pieces with `balanced`'s options (layers, weights,
    pooling, equal style-layer weights, style at the content's long side), so its value
    is exactly what the engine minimises in a single-scale run at that size.
    """

    def __init__(
        self,
        state: dict[str, Tensor],
        content: Image.Image,
        style: Image.Image,
        size: int,
        device: str | torch.device = "cpu",
    ) -> None:
        # balanced's objective, whose weights the optimisation presets share but for
        # the content weight, which each preset sets.
        o = resolve_options(Options(), torch.device("cpu"))
        self.options = o
        assert o.content_weight is not None  # the preset's, filled in by resolve_options
        self.content_weight = o.content_weight
        self.device = torch.device(device)
        state = {k: v.to(self.device) for k, v in state.items()}
        self.model = VGGFeatures(state, (*o.content_layers, *o.style_layers), o.pooling)
        self.content = to_tensor(resize_long_side(content, size)).to(self.device)
        style_t = to_tensor(resize_long_side(style, size)).to(self.device)  # style_scale = 1
        with torch.no_grad():
            cf = self.model(self.content)
            sf = self.model(style_t)
        self.content_losses = {n: ContentLoss(cf[n]) for n in o.content_layers}
        self.style_losses = {n: StyleLoss(gram_matrix(sf[n])) for n in o.style_layers}
        self.tv = TVLoss()
        # The style weight adapts to the pair as the engine's does at this size.
        self.style_weight = o.style_weight
        if o.adaptive_weight:
            self.style_weight *= adaptive_factor(self._style(cf))

    def _style(self, feats: dict[str, Tensor]) -> float:
        # Equal style-layer weights: the engine's default.
        return sum(float(loss(feats[n])) for n, loss in self.style_losses.items()) / len(
            self.style_losses
        )

    def at_size(self, image: Tensor) -> Tensor:
        """Bring an image from any scale to the referee's size, as the engine upsamples."""
        if image.shape[-2:] == self.content.shape[-2:]:
            return image
        resized = F.interpolate(
            image, size=self.content.shape[-2:], mode="bicubic", align_corners=False
        )
        return resized.clamp(0, 1)

    @torch.no_grad()
    def terms(self, image: Tensor) -> dict[str, float]:
        o = self.options
        x = self.at_size(image.to(self.device))
        feats = self.model(x)
        # Mean over content layers, as the engine.
        content = sum(float(loss(feats[n])) for n, loss in self.content_losses.items())
        content /= len(self.content_losses)
        out = {
            "content": self.content_weight * content,
            "style": self.style_weight * self._style(feats),
            "tv": o.tv_weight * float(self.tv(x)),
        }
        out["total"] = out["content"] + out["style"] + out["tv"]
        return out


# -- one run (the `--one` subprocess) -------------------------------------------------------


def snapshot_steps(options: Options, device: torch.device, count: int) -> set[int]:
    """Global step numbers at which to keep the image: ~evenly spaced in expected time.

    A step costs about its pixel count (the engine's own ETA model), so snapshots are
    spaced by cumulative pixel-work; the last step of every scale is always kept.
    """
    resolved = resolve_options(options, device)
    assert resolved.size is not None and resolved.start_size is not None
    assert resolved.iterations is not None
    sizes = scale_sizes(resolved.size, resolved.start_size, resolved.multiscale)
    steps = iterations_for(resolved.iterations, len(sizes))
    work = [s * s for s, n in zip(sizes, steps, strict=True) for _ in range(n)]
    total = float(sum(work))
    keep: set[int] = set()
    done, next_mark = 0.0, 1
    for step, w in enumerate(work, start=1):
        done += w
        while next_mark <= count and done >= total * next_mark / count - 1e-9:
            keep.add(step)
            next_mark += 1
    ends = np.cumsum(steps)
    keep.update(int(e) for e in ends)
    return keep


@dataclass
class Recorder:
    """The progress callback: keeps the engine's loss per step and spaced snapshots.

    Snapshots go to disk as 8-bit arrays (the image as a user would get it) so that they
    neither weigh on the run's resident memory nor cost scoring time during the run.
    """

    folder: Path
    keep: set[int]
    snapshots: list[tuple[float, int, Path]] = field(default_factory=list)
    trace: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, p: Progress) -> None:
        self.trace.append(
            {"t": p.elapsed, "step": p.done_steps, "scale": p.scale, "w": p.size[0], "loss": p.loss}
        )
        if p.done_steps in self.keep:
            # Written to disk now, so snapshots add nothing to the run's resident memory.
            path = self.folder / f"{p.done_steps:05d}.npy"
            np.save(path, np.asarray(p.image()))
            self.snapshots.append((p.elapsed, p.done_steps, path))


def array_to_tensor(arr: np.ndarray[Any, Any]) -> Tensor:
    return torch.from_numpy(arr.transpose(2, 0, 1).copy()).unsqueeze(0).float().div(255.0)


def run_one(spec: RunSpec) -> dict[str, Any]:
    engine = StyleTransfer(device=spec.device)
    options = options_for(spec)
    keep = snapshot_steps(options, engine.device, spec.snapshots)
    with tempfile.TemporaryDirectory(prefix="styleshift-bench-") as tmp:
        recorder = Recorder(Path(tmp), keep)
        load_before = os.getloadavg()[0]
        start, cpu_start = time.perf_counter(), time.process_time()
        result = engine.run(spec.content, spec.style, options, callback=recorder)
        wall = time.perf_counter() - start
        # CPU seconds per wall second per thread: well under 1 means something else
        # competed for the cores and the times are inflated.
        cpu_util = (time.process_time() - cpu_start) / wall / torch.get_num_threads()
        load_after = os.getloadavg()[0]
        # Read before scoring, which allocates on its own account.
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        gpu_peak = torch.cuda.max_memory_allocated() if engine.device.type == "cuda" else None
        referee = Referee(
            load_state_dict(ensure_weights()),
            load_rgb(spec.content),
            load_rgb(spec.style),
            spec.size,
        )
        trajectory: list[dict[str, Any]] = [
            {"t": t, "step": step, "loss": referee.terms(array_to_tensor(np.load(path)))["total"]}
            for t, step, path in recorder.snapshots
        ]
    final = referee.terms(to_tensor(result.image))
    trajectory.append({"t": wall, "step": None, "loss": final["total"]})
    if spec.save_image:
        result.image.save(spec.save_image)
    return {
        "name": spec.name,
        "wall_s": wall,
        "final_loss": final["total"],
        "final_terms": final,
        "engine_loss": result.loss,  # the engine's own best loss at its last scale
        "peak_rss_mb": peak_kb * 1024 / 1e6,  # ru_maxrss is in KiB on Linux
        "gpu_peak_mb": gpu_peak / 1e6 if gpu_peak is not None else None,
        "scales": [asdict(s) for s in result.scales],
        "options": {k: v for k, v in result.options.to_dict().items()},
        "threads": torch.get_num_threads(),
        "cpu_util": cpu_util,
        "loadavg_1min": [load_before, load_after],
        "trajectory": trajectory,
        "engine_trace": recorder.trace,
    }


# -- the orchestration (parent process) -----------------------------------------------------


def run_in_subprocess(spec: RunSpec, spec_dir: Path) -> dict[str, Any]:
    spec_path = spec_dir / f"{spec.name}.json"
    spec_path.write_text(json.dumps(asdict(spec)))
    subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--one", str(spec_path)], check=True
    )
    out: dict[str, Any] = json.loads(Path(spec.result_path).read_text())
    return out


def time_to_loss(trajectory: Sequence[dict[str, Any]], target: float) -> float | None:
    """First time the loss is <= target, linearly interpolated between snapshots."""
    prev: dict[str, Any] | None = None
    for point in sorted(trajectory, key=lambda p: p["t"]):
        if point["loss"] <= target:
            if prev is None or prev["loss"] == point["loss"]:
                return float(point["t"])
            frac = (prev["loss"] - target) / (prev["loss"] - point["loss"])
            return float(prev["t"] + frac * (point["t"] - prev["t"]))
        prev = point
    return None


def ratio(a: float | None, b: float) -> float | None:
    return None if a is None else a / b


def add_comparisons(runs: dict[str, dict[str, Any]]) -> None:
    """Ratios against the baseline measured in the same pair."""
    base = runs[BASELINE]
    for run in runs.values():
        ttb = time_to_loss(run["trajectory"], base["final_loss"])
        run["time_to_baseline_s"] = ttb
        run["time_to_baseline_ratio"] = ratio(ttb, base["wall_s"])
        run["time_ratio"] = run["wall_s"] / base["wall_s"]
        run["final_loss_ratio"] = run["final_loss"] / base["final_loss"]


def run_pair(
    index: int, content: Path, style: Path, args: argparse.Namespace, work: Path
) -> dict[str, Any]:
    runs: dict[str, dict[str, Any]] = {}
    for name in (BASELINE, *args.presets):
        spec = RunSpec(
            name=name,
            content=str(content),
            style=str(style),
            size=args.size,
            baseline_evals=args.baseline_evals,
            device=args.device,
            snapshots=args.snapshots,
            result_path=str(work / f"{index}-{name}.result.json"),
            save_image=str(args.save_images / f"{content.stem}__{style.stem}__{name}.png")
            if args.save_images
            else None,
        )
        runs[name] = run_in_subprocess(spec, work)
    add_comparisons(runs)
    return {"content": content.name, "style": style.name, "runs": runs}


def median_or_none(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def summarise(pairs: Sequence[dict[str, Any]], presets: Sequence[str]) -> dict[str, Any]:
    per_config: dict[str, Any] = {}
    for name in (BASELINE, *presets):
        runs = [p["runs"][name] for p in pairs]
        ttb = [r["time_to_baseline_ratio"] for r in runs]
        per_config[name] = {
            "median_wall_s": statistics.median(r["wall_s"] for r in runs),
            "median_time_ratio": statistics.median(r["time_ratio"] for r in runs),
            # Over the pairs where the baseline's loss was reached at all.
            "median_time_to_baseline_ratio": median_or_none(ttb),
            "reached_baseline": sum(v is not None for v in ttb),
            "median_final_loss_ratio": statistics.median(r["final_loss_ratio"] for r in runs),
            "max_peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
        }
    checks: dict[str, Any] = {}
    if "balanced" in per_config:
        b = per_config["balanced"]
        ttb = b["median_time_to_baseline_ratio"]
        all_reached = b["reached_baseline"] == len(pairs)
        checks["balanced_target_1_5"] = all_reached and ttb is not None and ttb <= TTB_TARGET
        checks["balanced_stretch_1_10"] = all_reached and ttb is not None and ttb <= TTB_STRETCH
    if "fast" in per_config:
        worst = max(p["runs"]["fast"]["wall_s"] for p in pairs)
        checks["fast_max_wall_s"] = worst
        checks["fast_under_60s"] = worst < FAST_LIMIT_S
    peak = max(r["peak_rss_mb"] for p in pairs for r in p["runs"].values())
    checks["max_peak_rss_mb"] = peak
    checks["memory_under_3gb"] = peak < MEMORY_LIMIT_MB
    return {"per_config": per_config, "checks": checks}


# -- reporting ------------------------------------------------------------------------------


def fmt(value: float | None, spec: str = ".3g") -> str:
    return "never" if value is None else format(value, spec)


def pair_table(pair: dict[str, Any]) -> str:
    lines = [
        f"### {pair['content']} × {pair['style']}",
        "",
        "| config | wall s | referee loss | loss / base | time / base "
        "| t→base loss s | t→base / base wall | peak RSS MB | CPU util |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in pair["runs"].items():
        lines.append(
            f"| {name} | {r['wall_s']:.1f} | {r['final_loss']:.4g} | {r['final_loss_ratio']:.3f} "
            f"| {r['time_ratio']:.3f} | {fmt(r['time_to_baseline_s'], '.1f')} "
            f"| {fmt(r['time_to_baseline_ratio'], '.3f')} | {r['peak_rss_mb']:.0f} "
            f"| {r['cpu_util']:.2f} |"
        )
    lines.append(
        "\nCPU util: CPU seconds / wall seconds / torch threads during the run; "
        "well below 1 means other processes competed for the cores."
    )
    return "\n".join(lines) + "\n"


def summary_table(summary: dict[str, Any], pairs: int, size: int) -> str:
    lines = [
        f"### Medians over {pairs} pair(s), referee at {size} px",
        "",
        "| config | wall s | time / base | t→base / base wall (reached) "
        "| loss / base | max peak RSS MB |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, s in summary["per_config"].items():
        lines.append(
            f"| {name} | {s['median_wall_s']:.1f} | {s['median_time_ratio']:.3f} "
            f"| {fmt(s['median_time_to_baseline_ratio'], '.3f')} ({s['reached_baseline']}/{pairs}) "
            f"| {s['median_final_loss_ratio']:.3f} | {s['max_peak_rss_mb']:.0f} |"
        )
    c = summary["checks"]
    lines.append("")
    if "balanced_target_1_5" in c:
        lines.append(
            f"- balanced reaches the baseline's loss in ≤ 1/5 of its wall time: "
            f"{_yes(c['balanced_target_1_5'])}; stretch ≤ 1/10: {_yes(c['balanced_stretch_1_10'])}"
        )
    if "fast_under_60s" in c:
        lines.append(
            f"- fast finishes under {FAST_LIMIT_S:.0f} s (at {size} px): "
            f"{_yes(c['fast_under_60s'])} (slowest {c['fast_max_wall_s']:.1f} s)"
        )
    lines.append(
        f"- peak memory < 3 GB in every run: {_yes(c['memory_under_3gb'])} "
        f"(max {c['max_peak_rss_mb']:.0f} MB)"
    )
    return "\n".join(lines) + "\n"


def _yes(flag: bool) -> str:
    return "yes" if flag else "NO"


def machine_info(device: str) -> dict[str, Any]:
    cpu_model = None
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    return {
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model,
        "isa": torch.backends.cpu.get_cpu_capability(),
        "onednn_cap": os.environ.get("ONEDNN_MAX_CPU_ISA"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": device,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


# -- command line ---------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--pairs", type=int, default=len(PAIRS), help="how many of the pairs to run")
    p.add_argument(
        "--presets",
        default=",".join(OPTIMISED),
        help="comma-separated presets; PRESET+instant starts from the feed-forward picture; "
        "PRESET~SECONDS runs it with --time SECONDS; PRESET@float32 or @bfloat16 fixes the "
        "precision",
    )
    p.add_argument("--baseline-evals", type=int, default=300, help="baseline L-BFGS evaluations")
    p.add_argument("--size", type=int, default=512, help="long side of every run and the referee")
    p.add_argument("--snapshots", type=int, default=40, help="snapshots per run to score")
    p.add_argument("--images", type=Path, default=None, help="folder of the shared images")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    p.add_argument(
        "--out", type=Path, default=None, help="JSON output (default bench/results.json)"
    )
    p.add_argument("--save-images", type=Path, default=None, help="folder for the final images")
    p.add_argument("--quick", action="store_true", help="smoke check: 1 pair, 128 px, fast only")
    p.add_argument("--one", type=Path, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.pairs, args.size, args.baseline_evals, args.presets = 1, 128, 20, "fast"
    args.presets = [s.strip() for s in args.presets.split(",") if s.strip()]
    unknown = [
        s
        for s in args.presets
        if s.partition("@")[0].partition("~")[0].removesuffix("+instant") not in OPTIMISED
        or s.partition("@")[2] not in PRECISIONS
    ]
    if unknown:
        p.error(
            f"unknown preset(s) {', '.join(unknown)}; use {', '.join(OPTIMISED)}, optionally "
            "with +instant and @float32 or @bfloat16 (instant itself: bench/instant.py)"
        )
    if not 1 <= args.pairs <= len(PAIRS):
        p.error(f"--pairs must be between 1 and {len(PAIRS)}")
    if args.out is None:
        args.out = REPO / "bench" / ("results-quick.json" if args.quick else "results.json")
    args.images = args.images or default_images_dir()
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.one is not None:
        spec = RunSpec(**json.loads(args.one.read_text()))
        result = run_one(spec)
        Path(spec.result_path).write_text(json.dumps(result))
        print(
            f"  {Path(spec.content).name} × {Path(spec.style).name} {spec.name}: "
            f"{result['wall_s']:.1f} s, referee loss {result['final_loss']:.4g}, "
            f"peak {result['peak_rss_mb']:.0f} MB, CPU util {result['cpu_util']:.2f}",
            file=sys.stderr,
            flush=True,
        )
        return 0

    pairs_spec = [
        (find_image(args.images, c, "content"), find_image(args.images, s, "style"))
        for c, s in PAIRS[: args.pairs]
    ]
    if args.save_images:
        args.save_images.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "command": [sys.executable, *sys.argv],
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(args.device),
        "settings": {
            "size": args.size,
            "baseline_evals": args.baseline_evals,
            "presets": args.presets,
            "snapshots": args.snapshots,
            "referee": {
                k: v
                for k, v in resolve_options(Options(), torch.device("cpu")).to_dict().items()
                if k in _REFEREE_FIELDS
            },
        },
        "pairs": [],
    }
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="styleshift-bench-") as tmp:
        for index, (content, style) in enumerate(pairs_spec):
            pair = run_pair(index, content, style, args, Path(tmp))
            report["pairs"].append(pair)
            print(pair_table(pair), flush=True)
            # Written after every pair so that a long run leaves usable partial results.
            write_json(args.out, report)
    report["summary"] = summarise(report["pairs"], args.presets)
    report["total_s"] = time.perf_counter() - started
    write_json(args.out, report)
    print(summary_table(report["summary"], len(report["pairs"]), args.size), flush=True)
    print(f"JSON written to {args.out}", flush=True)
    return 0


_REFEREE_FIELDS = (
    "content_layers",
    "style_layers",
    "content_weight",
    "style_weight",
    "tv_weight",
    "pooling",
    "adaptive_weight",
)


def write_json(path: Path, report: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(report, indent=1, default=_jsonable))
    tmp.replace(path)


def _jsonable(value: Any) -> Any:
    if isinstance(value, (tuple, set)):
        return list(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)


if __name__ == "__main__":
    sys.exit(main())
