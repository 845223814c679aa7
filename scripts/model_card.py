#!/usr/bin/env python3
"""Print the training record of decoder checkpoints as Markdown, for docs/model-card.md.

    .venv/bin/python scripts/model_card.py training-runs/relu4_1.safetensors.ckpt ...
    .venv/bin/python scripts/model_card.py --psnr DECODER.safetensors ...

Per checkpoint: its settings, steps, training time, and the loss (mean over windows of
steps) and validation PSNR along the way. Checkpoints are read with weights_only=True.
With --psnr, per decoder file: its reconstruction PSNR in float32 on the held-out
training photos and on the shared content photos (never in the data), at 256 and 512 px.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from styleshift.core.vgg import VGGFeatures
from styleshift.core.weights import ensure_weights, load_state_dict
from styleshift.feedforward.data import image_files
from styleshift.feedforward.decoder import load_model
from styleshift.feedforward.train import Reconstruction, TrainSettings, psnr
from styleshift.io.image import as_image, resize_long_side, to_tensor

HELD_OUT = (Path("training-data/val"), Path("../shared/images/content"))


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
                "style_weight",
                "stylised_share",
            )
            if k in settings
        ),
        "",
    ]
    # A style-trained run also logs its stylised crops' content and style terms.
    styled = [name for name in ("content", "style") if any(name in h for h in history)]
    lines += [
        "| steps | loss (mean) | pixel MSE | feature error | "
        + "".join(f"{name} term | " for name in styled)
        + "validation PSNR dB |",
        "|---|" + "---:|" * (4 + len(styled)),
    ]
    size = max(1, len(history) // windows)
    for start in range(0, len(history), size):
        chunk = history[start : start + size]
        psnrs = [h["psnr"] for h in chunk if "psnr" in h]
        terms = "".join(
            f"| {statistics.fmean(h.get(name, 0.0) for h in chunk):.4f} " for name in styled
        )
        lines.append(
            f"| {chunk[0]['step']:.0f}–{chunk[-1]['step']:.0f} "
            f"| {statistics.fmean(h['loss'] for h in chunk):.3f} "
            f"| {statistics.fmean(h['pixel'] for h in chunk):.4f} "
            f"| {statistics.fmean(h['feature'] for h in chunk):.3f} "
            f"{terms}| {f'{psnrs[-1]:.2f}' if psnrs else '–'} |"
        )
    return "\n".join(lines)


def reconstruction(path: Path, sizes: tuple[int, ...] = (256, 512)) -> str:
    decoder, info = load_model(path)
    encoder = VGGFeatures(load_state_dict(ensure_weights()), (info.level,), info.pooling)
    # The training run's own score, in float32.
    model = Reconstruction(encoder, decoder.float(), TrainSettings(level=info.level), torch.float32)
    lines = [
        f"### {path.name}: {info.level}, step {info.steps}",
        "",
        "| images | " + " | ".join(f"at {s} px" for s in sizes) + " |",
        "|---|" + "---:|" * len(sizes),
    ]
    for folder in HELD_OUT:
        photos = [as_image(f).convert("RGB") for f in image_files([folder])]
        scores = [
            f"{psnr(model, [to_tensor(resize_long_side(p, size)) for p in photos]):.2f} dB"
            for size in sizes
        ]
        lines.append(f"| {len(photos)} in {folder} | " + " | ".join(scores) + " |")
    return "\n".join(lines)


def main() -> int:
    args = sys.argv[1:]
    show: Callable[[Path], str] = card
    if args[:1] == ["--psnr"]:
        args, show = args[1:], reconstruction
    for arg in args:
        print(show(Path(arg)))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
