"""`styleshift train`: a decoder for the feed-forward methods, checkpointed and resumable."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

from ..core.results import clock
from .arguments import EXIT_INTERRUPTED, add_settings_arguments


def add_parser(commands: Any) -> None:
    from ..feedforward.train import TrainSettings

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
    add_settings_arguments({"": group}, TrainSettings, lambda f: "")
    train.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..feedforward.train import TrainingInterrupted, TrainProgress, TrainSettings, train

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
