"""What a user waits for: the whole `styleshift stylize` command, per preset, on this CPU.

    .venv/bin/python bench/commands.py                      # instant, fast, balanced, high
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 \\
        .venv/bin/python bench/commands.py --out bench/commands_avx2.json

Runs `make demo`'s pair (tubingen x The Starry Night) through the command line with
each preset at its own size, --repeats times, and reports the median wall time of the
whole process: Python and PyTorch start-up, the hash checks, the picture and the write.
The second form limits PyTorch, oneDNN and MKL to AVX2 on a CPU that has more, so that
it runs what most CPUs (without AMX or AVX-512) run: float32 on AVX2 instructions.

Prints a Markdown table and writes bench/commands.json (--out). Rows of presets not run
this time are kept from --out when it was measured on the same kind of CPU, so one
preset can be added or measured again on its own (`--presets high`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from instant import REPO, SHARED, cpu_facts  # bench/ is on the path when run as a script

CONTENT = SHARED / "content" / "tubingen.jpg"
STYLE = SHARED / "style" / "vangogh_starry_night.jpg"


def time_command(preset: str, out: Path) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "styleshift", "stylize", str(CONTENT), str(STYLE), "-o", str(out),
         "--preset", preset, "--overwrite", "-q"],
        check=True,
    )  # fmt: skip
    return time.perf_counter() - start


def earlier_rows(out: Path, facts: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows already in `out`, if they were measured on the same kind of CPU."""
    if not out.is_file():
        return []
    earlier = json.loads(out.read_text())
    same = ("cpu", "amx", "isa", "onednn_cap", "threads", "torch")
    if any(earlier["machine"].get(k) != facts.get(k) for k in same):
        return []
    return list(earlier["rows"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", default="instant,fast,balanced,high")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each preset")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "commands.json")
    args = parser.parse_args(argv)
    facts = cpu_facts()
    rows = earlier_rows(args.out, facts)
    with tempfile.TemporaryDirectory() as tmp:
        for preset in args.presets.split(","):
            load = os.getloadavg()[0]  # the rows kept from earlier runs keep their own
            runs = [time_command(preset, Path(tmp) / f"{preset}.png") for _ in range(args.repeats)]
            row = {
                "preset": preset,
                "median_s": statistics.median(runs),
                "runs": runs,
                "load_average_at_start": load,
            }
            kept = [r["preset"] for r in rows]
            if preset in kept:
                rows[kept.index(preset)] = row
            else:
                rows.append(row)
    print(
        f"`styleshift stylize` on {CONTENT.name} x {STYLE.name}, {facts['cpu']} "
        f"({facts['threads']} threads, ISA: {facts['isa']}, "
        f"fast bfloat16: {facts.get('bfloat16_unit')})\n\n"
        "| preset | s (median) | runs |\n|---|---:|---|"
    )
    for r in rows:
        times = ", ".join(f"{t:.1f}" for t in r["runs"])
        print(f"| {r['preset']} | {r['median_s']:.1f} | {times} |")
    args.out.write_text(json.dumps({"machine": facts, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
