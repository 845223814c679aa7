"""`styleshift serve`: the web page, with bounds on what one visitor may ask of it."""

from __future__ import annotations

import argparse
import ipaddress
import sys
import threading
from pathlib import Path
from typing import Any

from ..core.device import resolve_device
from ..core.errors import StyleshiftError
from .arguments import choice
from .network import load_engine
from .progress import Reporter


def add_parser(commands: Any) -> None:
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
    serve.add_argument("--device", type=choice(["auto", "cpu", "cuda", "mps"]),
                       default="auto", metavar="{auto,cpu,cuda,mps}",
                       help="where to compute (default: auto)")  # fmt: skip
    serve.set_defaults(run=run, quiet=False)  # its notes (device, weights) always show


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def run(args: argparse.Namespace) -> int:
    try:  # lazily: stylize should not pay for importing Gradio
        from ..apps import web
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
    engine = load_engine(args, str(device), Reporter(enabled=sys.stderr.isatty()))
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
