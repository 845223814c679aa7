"""`styleshift compare`: presets and sweeps run on one photo, scored, in an offline report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..core import weights
from ..core.device import resolve_device
from ..core.errors import StyleshiftError
from ..core.metrics import Scorer
from ..core.options import PRESETS, resolve_options
from ..io.image import as_image
from .arguments import (
    EXIT_INTERRUPTED,
    add_option_arguments,
    choice,
    list_of,
    options_from_args,
)
from .network import load_engine
from .progress import Reporter, note


def add_parser(commands: Any) -> None:
    compare = commands.add_parser(
        "compare",
        help="run several presets or settings on one photo and compare them in a report",
        description="Run each configuration (every preset of --presets, times every value "
        "of each --sweep) on PHOTO with each PAINTING, score the results as `evaluate` "
        "does, and write REPORT_DIR/index.html: the pictures, a table of time, memory and "
        "scores with the best of each column marked, a loss-over-time plot and a "
        "style-against-content plot. The page works offline.",
    )
    compare.add_argument("content", metavar="PHOTO", type=Path, help="the photo to repaint")
    compare.add_argument(
        "styles", metavar="PAINTING", nargs="+", type=Path,
        help="paintings; each configuration runs once per painting",
    )  # fmt: skip
    compare.add_argument("-o", "--output", required=True, type=Path, metavar="REPORT_DIR",
                         help="the report's folder (new or empty)")  # fmt: skip
    compare.add_argument(
        "--presets", type=list_of(choice(PRESETS)), default=("instant", "fast", "balanced"),
        metavar="LIST", help="presets to run (default: instant,fast,balanced)",
    )  # fmt: skip
    compare.add_argument(
        "--sweep", action="append", default=[], metavar="OPTION=V1,V2",
        help="run each preset with each value of a stylize option (repeat for a grid); a "
        "list-valued option's values are separated by ';' (iterations=100,200;300,400); "
        "presets of a method the option does not apply to run once, without it",
    )  # fmt: skip
    compare.add_argument(
        "--outputs", nargs="+", type=Path, default=[], metavar="FILE",
        help="also score pictures made elsewhere (by another tool, say) against each painting",
    )  # fmt: skip
    compare.add_argument("--overwrite", action="store_true", help="reuse a non-empty REPORT_DIR")
    compare.add_argument("-q", "--quiet", action="store_true", help="no progress bar or notes")
    add_option_arguments(compare, exclude=("preset",))
    compare.set_defaults(run=run, preset="balanced")


def run(args: argparse.Namespace) -> int:
    from ..apps import compare, report  # matplotlib, OpenCV, pytorch-msssim: only for this command

    configs = compare.configurations(args.presets, args.sweep, options_from_args(args))
    device = resolve_device(args.device)
    for config in configs:  # every refusal before the first run
        resolve_options(config.options, device, 1)
    pictures = [args.content, *args.styles, *args.outputs]
    for path in pictures:
        as_image(path, what="input")
    masks = [name for config in configs for name in config.options.input_files()]
    created = not args.output.exists()
    compare.prepare_folder(args.output, overwrite=args.overwrite, inputs=[*pictures, *masks])
    reporter = Reporter(enabled=not args.quiet and sys.stderr.isatty())
    engine = load_engine(args, str(device), reporter)
    scorer = Scorer(weights.load_state_dict(weights.ensure_weights()))

    def on_run(done: int, total: int, label: str) -> None:
        reporter.close()
        note(args, f"run {done + 1}/{total}: {label}")

    try:
        result = compare.compare(
            engine, scorer, args.content, args.styles, configs, args.output,
            outputs=args.outputs, on_run=on_run, callback=reporter.step,
        )  # fmt: skip
    finally:
        reporter.close()
    if result.error is not None and not result.runs:
        if created:  # nothing to show: the same command may be run again as it is
            compare.remove_folder(args.output, result)
        raise StyleshiftError(result.error)
    page = report.write_report(result, args.output, command=args.command_line)
    if result.error is not None:
        runs = f"{len(result.runs)} run{'s' if len(result.runs) > 1 else ''}"
        raise StyleshiftError(f"{result.error} (the report of the {runs} before it: {page})")
    print(f"styleshift: wrote {page}", file=sys.stderr)
    return EXIT_INTERRUPTED if result.interrupted else 0
