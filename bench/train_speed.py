"""Training throughput: images per second of `styleshift train` on 1 and on 2 processes.

    .venv/bin/python bench/train_speed.py [--steps 30] [--level relu4_1]

Runs the real command on ../shared/images/content (a few photos) into a temporary
folder: once as one process with all threads, once under torchrun as two processes of
one thread each (DistributedDataParallel over gloo, each process a batch of its own).
Images per second counts every process's crops, from the wall time of the steps after
the first few (loading the photos and the network is not counted). Prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("STYLESHIFT_SHARED", REPO.parent / "shared")) / "images"

SCRIPT = """
import json, os, sys, time
from styleshift.feedforward.train import TrainSettings, train
marks = {}
def on_step(p):
    marks[p.step] = time.perf_counter()
settings = TrainSettings(level=sys.argv[3], steps=int(sys.argv[4]), validate_every=10**9)
result = train([sys.argv[1]], sys.argv[2], settings, callback=on_step)
if int(os.environ.get("RANK", "0")) == 0:
    skip = 5
    last = max(marks)
    rate = (last - skip) * settings.batch_size * result.world_size / (marks[last] - marks[skip])
    print(json.dumps({"processes": result.world_size, "images_per_second": rate}))
"""


def run(processes: int, args: argparse.Namespace, tmp: Path) -> dict[str, float]:
    script = tmp / "speed.py"
    script.write_text(SCRIPT)
    out = tmp / f"p{processes}.safetensors"
    command = [str(script), str(SHARED / "content"), str(out), args.level, str(args.steps)]
    env = dict(os.environ)
    if processes > 1:
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 2) // processes))
        command = [sys.executable, "-m", "torch.distributed.run",
                   "--nproc-per-node", str(processes), *command]  # fmt: skip
    else:
        command = [sys.executable, *command]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    line = next(x for x in proc.stdout.splitlines() if x.startswith("{"))
    report: dict[str, float] = json.loads(line)
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--level", default="relu4_1")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [run(n, args, Path(tmp)) for n in (1, 2)]
    print(f"| processes | images/s ({args.level}, batch 8 per process, 128 px crops) |")
    print("|---:|---:|")
    for row in rows:
        print(f"| {row['processes']:.0f} | {row['images_per_second']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
