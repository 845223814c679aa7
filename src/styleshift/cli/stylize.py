"""`styleshift stylize`: one photo repainted, with a progress bar, saved atomically."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path
from typing import Any

from ..core.device import resolve_device
from ..core.errors import OutputError, StyleshiftError
from ..core.options import INIT_STARTS, resolve_options
from ..core.regions import check_masks
from ..core.results import Interrupted, Progress, Result, clock
from ..io.files import provenance, refuse_inputs
from ..io.image import as_image, check_output_path, save_image, split_alpha
from .arguments import EXIT_INTERRUPTED, add_option_arguments, options_from_args
from .network import load_engine
from .progress import Reporter, note


def add_parser(commands: Any) -> None:
    stylize = commands.add_parser(
        "stylize",
        help="repaint a content image in the manner of one or more style images",
        description="Repaint CONTENT in the manner of STYLE (several styles are blended).",
    )
    stylize.add_argument("content", metavar="CONTENT", help="the photo to repaint")
    stylize.add_argument("styles", metavar="STYLE", nargs="+", help="painting(s) to imitate")
    stylize.add_argument(
        "-o", "--output", required=True, type=Path,
        help="output image; the format follows the extension (.png, .jpg, .webp, .tif, .bmp)",
    )  # fmt: skip
    stylize.add_argument("--overwrite", action="store_true", help="replace an existing output")
    stylize.add_argument(
        "--save-every", type=int, default=0, metavar="N",
        help="also write the image every N steps, as OUTPUT_s<scale>_<step>.<ext> (default: off)",
    )  # fmt: skip
    stylize.add_argument("-q", "--quiet", action="store_true", help="no progress bar or notes")
    stylize.add_argument(
        "--json", action="store_true", help="print one JSON object describing the run at the end"
    )
    add_option_arguments(stylize)
    stylize.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    options = options_from_args(args)
    output = check_output_path(args.output, overwrite=args.overwrite)
    if args.save_every < 0:
        raise StyleshiftError(f"--save-every must be zero or more, got {args.save_every}")
    # Every mistake is reported before the weights are fetched and the network loaded.
    device = resolve_device(options.device)
    options = resolve_options(options, device, len(args.styles))
    content = as_image(args.content, what="content image")
    styles = [as_image(s, what="style image") for s in args.styles]
    if options.init not in INIT_STARTS:
        as_image(options.init, what="init image")
    check_masks(options.mask or ())
    check_masks(options.style_mask or (), "painting mask")
    refuse_inputs(output, [args.content, *args.styles, *options.input_files()])
    reporter = Reporter(enabled=not args.quiet and sys.stderr.isatty())
    try:
        engine = load_engine(args, str(device), reporter)
        saving = [args.save_every > 0]
        estimated = [False]

        def on_step(p: Progress) -> None:
            reporter.step(p)
            if not estimated[0] and p.eta is not None and not args.quiet:
                # The first steps measured this machine: say what the whole run will take.
                estimated[0] = True
                reporter.note(f"about {clock(p.elapsed + p.eta)} in all on this machine")
            if saving[0] and p.step % args.save_every == 0:
                try:
                    save_image(p.image(), _intermediate_path(output, p), overwrite=args.overwrite)
                except OutputError as e:
                    saving[0] = False
                    note(args, f"stopped saving intermediate images: {e}")

        try:
            result = engine.run(content, styles, options, callback=on_step)
        except Interrupted as stop:
            reporter.close()
            result = stop.result
            _save(result, args, output)
            note(args, f"interrupted; saved the best image so far to {output}")
            _emit_json(args, result, output)
            return EXIT_INTERRUPTED
    finally:
        reporter.close()
    for line in result.notes:
        note(args, line)
    _save(result, args, output)
    note(args, f"wrote {output} in {result.seconds:.1f} s")
    _emit_json(args, result, output)
    return 0


def _save(result: Result, args: argparse.Namespace, path: Path) -> Path:
    rgb, alpha = split_alpha(result.image)
    meta = provenance(str(args.content), [str(s) for s in args.styles], result.options.to_dict())
    return save_image(rgb, path, overwrite=args.overwrite, metadata=meta, alpha=alpha)


def _intermediate_path(output: Path, p: Progress) -> Path:
    return output.with_name(f"{output.stem}_s{p.scale}_{p.step:04d}{output.suffix}")


def _emit_json(args: argparse.Namespace, result: Result, output: Path) -> None:
    if not args.json:
        return
    report = {
        "output": str(output),
        "interrupted": result.interrupted,
        "device": result.device,
        "seconds": round(result.seconds, 3),
        "loss": result.loss if math.isfinite(result.loss) else None,
        "losses": result.losses,
        "scales": [dataclasses.asdict(s) for s in result.scales],
        "options": result.options.to_dict(),
    }
    print(json.dumps(report, indent=2))
