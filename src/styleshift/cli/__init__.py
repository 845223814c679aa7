"""The `styleshift` command: one module per subcommand, each adding its parser and its `run`.

A command turns its arguments into the library's calls and shows their progress; what
it computes lives below, in the library.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence

from ..core.errors import StyleshiftError
from ..core.version import __version__
from . import batch, compare, evaluate, serve, stylize, train, video, weights
from .arguments import EXIT_INTERRUPTED, EXIT_USER_ERROR, Parser

COMMANDS = (stylize, serve, video, train, evaluate, compare, batch, weights)


def build_parser() -> Parser:
    parser = Parser(prog="styleshift", description="Neural style transfer on VGG-19.")
    parser.add_argument("--version", action="version", version=f"styleshift {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for command in COMMANDS:
        command.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.command_line = shlex.join(["styleshift", *(sys.argv[1:] if argv is None else argv)])
    try:
        code: int = args.run(args)
        return code
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
