"""Benchmark: one pair, several configurations, the loss along the finest scale.

For trying schedules, precisions and weights one after the other in one process: each
configuration is a JSON object of `Options` fields (size 512 unless given). Prints, per
run, the wall time, the engine's loss every 10 evaluations of the finest scale with the
seconds since the start, and the referee's score of the saved picture (the benchmark's
referee: the default objective at 512 px, float32, on the clipped 8-bit image).

    .venv/bin/python bench/schedule.py '{"iterations": [20, 20, 20, 20, 150]}'
    .venv/bin/python bench/schedule.py --pair 1 \\
        '{"multiscale": false, "iterations": [60], "precision": "float32"}' \\
        '{"multiscale": false, "iterations": [60], "precision": "bfloat16"}'
    .venv/bin/python bench/schedule.py --target 0.1259 '{"iterations": [10, 10, 160]}'
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence

from run import PAIRS, Referee, default_images_dir, find_image, load_rgb
from styleshift import Options, Progress, StyleTransfer
from styleshift.core.weights import ensure_weights, load_state_dict
from styleshift.io.image import to_tensor


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("configs", nargs="+", help="JSON objects of Options fields")
    p.add_argument("--pair", type=int, default=0, help=f"0..{len(PAIRS) - 1} of bench/run.py's")
    p.add_argument("--every", type=int, default=10, help="report every N evaluations")
    p.add_argument(
        "--target",
        type=float,
        help="also report when the engine's loss at the finest scale (unclipped, in the "
        "run's precision; the referee scores only the end) first reached this, e.g. the "
        "baseline's final loss from bench/run.py",
    )
    args = p.parse_args(argv)
    images = default_images_dir()
    content = find_image(images, PAIRS[args.pair][0], "content")
    style = find_image(images, PAIRS[args.pair][1], "style")
    engine = StyleTransfer(device="cpu")
    referee = Referee(
        load_state_dict(ensure_weights()), load_rgb(content), load_rgb(style), size=512
    )
    print(f"{content.name} x {style.name}")
    for config in args.configs:
        options = Options.from_kwargs(**{"size": 512, **json.loads(config)})
        trace: list[Progress] = []
        start = time.perf_counter()
        result = engine.run(content, style, options, callback=trace.append)
        wall = time.perf_counter() - start
        final = referee.terms(to_tensor(result.image))["total"]
        last = [t for t in trace if t.scale == t.scales]
        marks = " · ".join(
            f"{t.step}: {t.elapsed:.0f} s, {t.loss:.4f}" for t in last if t.step % args.every == 0
        )
        print(f"\n{config}\n  wall {wall:.1f} s, referee {final:.4f}, engine {result.loss:.4f}")
        print(f"  finest scale: {marks}", flush=True)
        if args.target is not None:
            reached = next((t for t in last if t.loss <= args.target), None)
            print(
                f"  reached {args.target:g} at evaluation {reached.step}, {reached.elapsed:.1f} s"
                if reached
                else f"  never reached {args.target:g}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
