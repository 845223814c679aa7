#!/usr/bin/env python3
"""Print the training record of decoder checkpoints as Markdown, for docs/model-card.md.

    .venv/bin/python scripts/model_card.py training-runs/relu4_1.safetensors.ckpt ...

Per checkpoint: its settings, steps, training time, and the loss (mean over windows of
steps) and validation PSNR along the way. Checkpoints are read with weights_only=True.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import torch


def card(path: Path, windows: int = 10) -> str:
    state = torch.load(path, map_location="cpu", weights_only=True)
    settings, history = state["settings"], state["history"]
    lines = [
        f"### {settings['level']} decoder ({path.name})",
        "",
        f"- steps: {state['step']}, training time: {state['seconds'] / 3600:.2f} h",
        "- settings: "
        + ", ".join(
            f"{k}={settings[k]}"
            for k in (
                "batch_size",
                "crop",
                "learning_rate",
                "lr_decay",
                "pixel_weight",
                "feature_weight",
                "pooling",
                "precision",
                "seed",
            )
        ),
        "",
        "| steps | loss (mean) | pixel MSE | feature error | validation PSNR dB |",
        "|---|---:|---:|---:|---:|",
    ]
    size = max(1, len(history) // windows)
    for start in range(0, len(history), size):
        chunk = history[start : start + size]
        psnrs = [h["psnr"] for h in chunk if "psnr" in h]
        lines.append(
            f"| {chunk[0]['step']:.0f}–{chunk[-1]['step']:.0f} "
            f"| {statistics.fmean(h['loss'] for h in chunk):.3f} "
            f"| {statistics.fmean(h['pixel'] for h in chunk):.4f} "
            f"| {statistics.fmean(h['feature'] for h in chunk):.3f} "
            f"| {f'{psnrs[-1]:.2f}' if psnrs else '–'} |"
        )
    return "\n".join(lines)


def main() -> int:
    for arg in sys.argv[1:]:
        print(card(Path(arg)))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
