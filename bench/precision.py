"""Benchmark: one network evaluation (VGG-19 forward and backward) in each precision.

What a step of the optimisation costs in float32 and in bfloat16 (autocast, channels-last,
as the engine runs it), on the engine's own feature extractor and default layers, with the
style and content terms' Gram matrices in float32 as the engine computes them.

    .venv/bin/python bench/precision.py                  # 512 x 384, 7 repeats
    .venv/bin/python bench/precision.py --size 1024x768 --repeats 3
    .venv/bin/python bench/precision.py --compile        # also under torch.compile

Prints a Markdown table: the median seconds per evaluation and the ratio to float32. With
--compile, each precision is timed again with the network under torch.compile, and the
seconds its first two evaluations took (compilation included; TorchInductor's on-disk
cache makes a second run of the script far faster) are shown as well.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence

import torch

from styleshift import Options
from styleshift.core.device import fast_bfloat16_unit
from styleshift.core.losses import gram_matrix
from styleshift.core.vgg import VGGFeatures
from styleshift.core.weights import ensure_weights, load_state_dict

PRECISIONS = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def seconds_per_evaluation(
    model: Callable[[torch.Tensor], dict[str, torch.Tensor]], height: int, width: int, repeats: int
) -> float:
    image = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(0))
    image.requires_grad_(True)
    times = []
    for _ in range(repeats + 1):  # the first warms up the kernels and is not counted
        start = time.perf_counter()
        feats = model(image)
        loss = sum((gram_matrix(f).square().sum() for f in feats.values()), torch.zeros(()))
        loss.backward()  # type: ignore[no-untyped-call]
        image.grad = None
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--size", default="512x384", help="WIDTHxHEIGHT of the image")
    p.add_argument("--repeats", type=int, default=7, help="timed evaluations per precision")
    p.add_argument("--compile", action="store_true", help="also time torch.compile's network")
    args = p.parse_args(argv)
    width, height = (int(v) for v in args.size.split("x"))
    options = Options()
    state = load_state_dict(ensure_weights())
    layers = (*options.content_layers, *options.style_layers)
    print(
        f"VGG-19 forward + backward at {width} x {height}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, "
        f"fast bfloat16: {fast_bfloat16_unit(torch.device('cpu'))}\n"
    )
    print(
        "| precision | s / evaluation (median) | vs float32 | first two evaluations |\n"
        "|---|---:|---:|---:|"
    )
    base = None
    for name, dtype in PRECISIONS.items():
        model = VGGFeatures(state, layers, options.pooling, dtype)
        seconds = seconds_per_evaluation(model, height, width, args.repeats)
        base = base or seconds
        print(f"| {name} | {seconds:.3f} | {seconds / base:.2f} | - |", flush=True)
        if args.compile:
            compiled = torch.compile(model)
            start = time.perf_counter()
            seconds_per_evaluation(compiled, height, width, 1)
            first = time.perf_counter() - start
            seconds = seconds_per_evaluation(compiled, height, width, args.repeats)
            print(
                f"| {name}, compiled | {seconds:.3f} | {seconds / base:.2f} | {first:.1f} s |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
