"""`styleshift evaluate`: scores of a stylised picture or video from any tool."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from ..core import weights
from ..core.errors import OptionError
from ..core.metrics import Scorer
from ..core.regions import check_count, check_masks
from ..io.image import as_image
from .arguments import list_of
from .progress import Reporter


def add_parser(commands: Any) -> None:
    evaluate = commands.add_parser(
        "evaluate",
        help="score a stylised picture or video (from any tool) against its photo and paintings",
        description="Score OUTPUT: its content fidelity to the photo (VGG-19 features, SSIM, "
        "edges) and its match to each painting (Gram matrices, channel statistics, colours). "
        "A video (or folder of frames) is scored against the video it was made from, with its "
        "warping error along the content's motion. docs/evaluation.md explains each number.",
    )
    evaluate.add_argument("output", type=Path, metavar="OUTPUT", help="the picture or video")
    evaluate.add_argument(
        "--content", required=True, type=Path, metavar="PHOTO",
        help="the photo (or video) it was made from; resized to OUTPUT's size",
    )  # fmt: skip
    evaluate.add_argument(
        "--style", dest="styles", action="append", type=Path, default=[], metavar="PAINTING",
        help="a painting to match against (repeat for several)",
    )  # fmt: skip
    evaluate.add_argument(
        "--mask", type=list_of(str), default=(), metavar="LIST",
        help="the masks the picture or video was made with, one per --style (as stylize's "
        "and video's --mask): each painting is also scored inside its mask, and the photo "
        "outside them (in a video's worst frame)",
    )  # fmt: skip
    evaluate.add_argument("--json", action="store_true", help="print the scores as JSON")
    evaluate.add_argument("-q", "--quiet", action="store_true", help="no progress bar or notes")
    evaluate.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..apps import evaluate  # OpenCV and pytorch-msssim load only for this command

    for painting in args.styles:  # every mistake before the network loads
        as_image(painting, what="style image")
    if args.mask and not args.styles:
        raise OptionError("--mask scores each painting inside its mask; name them with --style")
    if evaluate.is_video(args.output):
        evaluate.check_video(args.output, args.content, len(args.styles), args.mask)
        scorer = Scorer(weights.load_state_dict(weights.ensure_weights()))
        reporter = Reporter(enabled=not args.quiet and sys.stderr.isatty())
        try:
            result: Any = evaluate.evaluate_video(
                scorer, args.output, args.content, args.styles, args.mask,
                on_frame=reporter.count,
            )  # fmt: skip
        finally:
            reporter.close()
    else:
        if args.mask:
            check_count(len(args.mask), len(args.styles))
            check_masks(args.mask)
        as_image(args.output, what="output")
        as_image(args.content, what="content image")
        scorer = Scorer(weights.load_state_dict(weights.ensure_weights()))
        result = evaluate.evaluate_image(scorer, args.output, args.content, args.styles, args.mask)
    print(
        json.dumps(dataclasses.asdict(result), indent=2) if args.json else evaluate.describe(result)
    )
    return 0
