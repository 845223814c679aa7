"""`styleshift batch`: folders and manifests, resumably, on local workers or Ray."""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path
from typing import Any

from ..core.device import resolve_device
from ..core.errors import StyleshiftError
from ..core.options import resolve_options
from .arguments import add_option_arguments, options_from_args
from .progress import note


def add_parser(commands: Any) -> None:
    batch = commands.add_parser(
        "batch",
        help="stylise folders of pictures and clips, resumably, on local workers or Ray",
        description="Stylise every picture and video in INPUTS with every --style, into "
        "OUT_DIR as CONTENT__STYLE.png (or .mp4; subfolders are kept). INPUTS are files, "
        "folders (searched recursively) or manifests (.csv or .jsonl with content, styles, "
        "options and output per row). Each result is recorded in OUT_DIR/batch-results.jsonl "
        "as it finishes; the same command after a crash or Ctrl-C does only what is left. "
        "A bad file fails alone; the exit code is the number of failures (at most 125).",
    )
    batch.add_argument("inputs", nargs="+", type=Path, metavar="INPUT",
                       help="pictures, videos, folders or manifests")  # fmt: skip
    batch.add_argument(
        "--style", dest="styles", action="append", type=Path, default=[], metavar="PAINTING",
        help="a painting; every content is paired with every one (repeat for several)",
    )  # fmt: skip
    batch.add_argument("-o", "--output", required=True, type=Path, metavar="OUT_DIR",
                       help="the folder for the results and their manifest")  # fmt: skip
    batch.add_argument(
        "--workers", type=int, default=None, metavar="N",
        help="worker processes (or Ray actors), each loading the network once "
        "(default: one per core, as many as the memory holds; with Ray, one per CPU of "
        "the cluster)",
    )  # fmt: skip
    batch.add_argument("--ray", action="store_true",
                       help="run on Ray: a local cluster started for the run, or --ray-address; "
                       "pip install 'styleshift[ray]'")  # fmt: skip
    batch.add_argument("--ray-address", metavar="HOST:PORT", default=None,
                       help="an existing Ray cluster (implies --ray); a Ray cluster has no "
                       "authentication and runs the code it is sent: join only one on a "
                       "network you trust")  # fmt: skip
    batch.add_argument("--overwrite", action="store_true",
                       help="replace outputs that exist but this batch did not make")  # fmt: skip
    batch.add_argument("-q", "--quiet", action="store_true", help="no progress bar or notes")
    batch.add_argument("--json", action="store_true", help="print a JSON summary at the end")
    add_option_arguments(batch)
    batch.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..apps import batch

    options = options_from_args(args)
    if args.workers is not None and args.workers < 1:
        raise StyleshiftError(f"--workers must be 1 or more, got {args.workers}")
    resolve_options(options, resolve_device(options.device), 1)  # refusals before any work
    jobs = batch.plan(args.inputs, args.styles, options, args.output)
    if not jobs:
        raise StyleshiftError("no pictures or videos found in the inputs")
    bar = tqdm(total=len(jobs), unit="item", file=sys.stderr,
               disable=args.quiet or not sys.stderr.isatty())  # fmt: skip
    counts = collections.Counter[str]()
    start = time.monotonic()
    results = []
    try:
        for result in batch.run_batch(
            jobs, args.output, workers=args.workers, device=options.device,
            overwrite=args.overwrite, ray=args.ray or args.ray_address is not None,
            ray_address=args.ray_address,
        ):  # fmt: skip
            counts[result.status] += 1
            results.append(result)
            if result.status == "failed" and not args.quiet:
                what = "" if result.job.error else f"{result.job.content} -> {result.job.output}: "
                bar.write(f"styleshift: failed: {what}{result.error}", file=sys.stderr)
            made = counts["done"] + counts["failed"]
            rate = made / max(time.monotonic() - start, 1e-9) * 60
            bar.set_postfix_str(f"done {counts['done']}, failed {counts['failed']}, skipped "
                                f"{counts['skipped']}, {rate:.1f}/min", refresh=False)  # fmt: skip
            bar.update(1)
    finally:
        bar.close()
    note(args, f"{counts['done']} done, {counts['failed']} failed, {counts['skipped']} "
               f"skipped; results in {args.output / batch.RESULTS}")  # fmt: skip
    if args.json:
        print(json.dumps({
            **{k: counts[k] for k in ("done", "failed", "skipped")},
            "results": [{"content": str(r.job.content), "output": str(r.job.output),
                         "status": r.status, "seconds": round(r.seconds, 3),
                         "device": r.device, "error": r.error} for r in results],
        }, indent=2))  # fmt: skip
    return min(counts["failed"], 125)
