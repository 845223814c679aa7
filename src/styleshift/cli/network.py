"""The network a command runs on: the weights fetched (with a bar) and the device named."""

from __future__ import annotations

import argparse

from ..core import weights
from ..core.device import resolve_precision
from ..transfer import StyleTransfer
from .progress import Reporter, note


def load_engine(args: argparse.Namespace, device: str, reporter: Reporter) -> StyleTransfer:
    path = weights.ensure_weights(progress=reporter.download)
    reporter.close()
    engine = StyleTransfer(device=device, weights=path)
    precision = resolve_precision(getattr(args, "precision", "auto"), engine.device)
    note(args, f"using device {engine.device} ({precision})")
    return engine
