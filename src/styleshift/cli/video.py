"""`styleshift video`: a clip or a folder of frames stylised without flicker, resumably."""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from ..core.device import resolve_device
from ..core.errors import StyleshiftError
from ..core.options import resolve_options
from .arguments import EXIT_INTERRUPTED, add_option_arguments, options_from_args
from .network import load_engine
from .progress import Reporter, note


def add_parser(commands: Any) -> None:
    video = commands.add_parser(
        "video",
        help="stylise a video without flicker, keeping its frame rate and sound",
        description="Stylise INPUT (a video file or a folder of numbered frames) in the manner "
        "of STYLE. Each frame after the first starts from the previous result moved along the "
        "optical flow and is tied to it, so the result does not flicker; with --preset instant "
        "each frame is one pass, mixed with that moved previous result. Finished frames are "
        "kept in a work folder; running the same command again resumes an interrupted run.",
    )
    video.add_argument(
        "input", metavar="INPUT",
        help="video file (MP4, MOV, WebM, MKV, GIF) or folder of numbered frames",
    )  # fmt: skip
    video.add_argument("styles", metavar="STYLE", nargs="+", help="painting(s) to imitate")
    video.add_argument(
        "-o", "--output", required=True, type=Path,
        help="output video (.mp4, .m4v, .mov, .mkv, .webm, .gif), or a folder name without "
        "extension for PNG frames",
    )  # fmt: skip
    video.add_argument(
        "--overwrite", action="store_true",
        help="replace an existing output; discard a work folder of another run",
    )  # fmt: skip
    video.add_argument("--start", type=float, default=0.0, metavar="SECONDS",
                       help="where the section to stylise begins (default: 0)")  # fmt: skip
    video.add_argument("--duration", type=float, default=None, metavar="SECONDS",
                       help="length of the section (default: to the end)")  # fmt: skip
    video.add_argument(
        "--fps", type=float, default=None, metavar="N",
        help="frame rate of a folder of frames (default: 24); for a video, "
        "plays its frames evenly at N fps (accepts variable-rate input)",
    )  # fmt: skip
    defaults = _settings_defaults()
    video.add_argument(
        "--temporal-weight", type=float, default=None, metavar="X",
        help=f"how firmly each frame follows the previous one{defaults['temporal_weight']}",
    )  # fmt: skip
    video.add_argument(
        "--later-iterations", type=int, default=None, metavar="N",
        help=f"network evaluations for each frame after the first{defaults['later_iterations']}",
    )  # fmt: skip
    video.add_argument(
        "--blend", type=float, default=None, metavar="X",
        help="feed-forward methods (preset instant): share of the previous stylised frame, "
        f"moved along the flow, kept in each new one, 0..1{defaults['blend']}",
    )  # fmt: skip
    video.add_argument("--work-dir", type=Path, default=None, metavar="DIR",
                       help="where finished frames are kept (default: OUTPUT.parts)")  # fmt: skip
    video.add_argument("--resume", action="store_true",
                       help="require an interrupted run to resume (it resumes anyway when "
                       "the work folder matches)")  # fmt: skip
    video.add_argument("--keep-work", action="store_true",
                       help="keep the work folder of frames after writing the output")  # fmt: skip
    video.add_argument("-q", "--quiet", action="store_true", help="no progress bar or notes")
    video.add_argument(
        "--json", action="store_true", help="print one JSON object describing the run at the end"
    )
    add_option_arguments(video)
    video.set_defaults(run=run)


def _settings_defaults() -> dict[str, str]:
    """' (default: X)' for each VideoSettings field; the video module needs PyAV and
    OpenCV, and help must work without them."""
    try:
        from ..apps.video import VideoSettings
    except ImportError:
        return collections.defaultdict(str)
    return {k: f" (default: {v:g})" for k, v in dataclasses.asdict(VideoSettings()).items()}


def run(args: argparse.Namespace) -> int:
    try:
        from ..apps import video
    except ImportError as e:
        raise StyleshiftError(
            f"the video command needs PyAV and OpenCV ({e.name or e} is missing); "
            "install them with: pip install 'styleshift[video]'"
        ) from None
    options = options_from_args(args)
    given = {
        "temporal_weight": args.temporal_weight,
        "later_iterations": args.later_iterations,
        "blend": args.blend,
    }
    options = resolve_options(options, resolve_device(options.device), len(args.styles))
    feedforward = options.feedforward
    video.check_options(options)
    for name in ("blend",) if not feedforward else ("temporal_weight", "later_iterations"):
        if given[name] is not None:
            method = "a feed-forward method" if feedforward else "the optimisation method"
            flag = "--" + name.replace("_", "-")
            raise StyleshiftError(f"{flag} does not apply to {method}; leave it out")
    settings = dataclasses.replace(
        video.VideoSettings(), **{k: v for k, v in given.items() if v is not None}
    )
    reporter = Reporter(enabled=not args.quiet and sys.stderr.isatty())
    work = args.work_dir or video.default_work_dir(args.output)
    try:
        report = video.stylize_video(
            args.input,
            args.styles,
            args.output,
            options,
            settings,
            engine=lambda: load_engine(args, options.device, reporter),
            start=args.start,
            duration=args.duration,
            fps=args.fps,
            work_dir=args.work_dir,
            resume=args.resume,
            overwrite=args.overwrite,
            keep_work=args.keep_work,
            callback=reporter.frame,
        )
    except KeyboardInterrupt:
        reporter.close()
        note(args, f"interrupted; finished frames are kept in {work}; run the same command "
                   "again to resume")  # fmt: skip
        return EXIT_INTERRUPTED
    finally:
        reporter.close()
    for line in report.notes:
        note(args, line)
    if report.resumed_from:
        note(args, f"resumed after frame {report.resumed_from}")
    note(
        args,
        f"wrote {report.output}: {report.frames} frames, {report.size[0]}x{report.size[1]}"
        f", {report.fps:g} fps, in {report.seconds:.1f} s",
    )
    if args.json:
        fields = {
            k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(report).items()
        }
        fields["options"] = options.to_dict()
        print(json.dumps(fields, indent=2))
    return 0
