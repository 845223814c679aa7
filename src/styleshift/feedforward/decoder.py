"""The decoder: VGG-19's layers up to a level, mirrored, turning features back into pixels.

A model file is safetensors: the decoder's weights plus metadata that says which
encoder level and pooling it inverts, so a file for another level is refused by name.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import torch
from torch import Tensor, nn

from ..core.errors import InputError, one_line
from ..core.vgg import LAYERS, LEVELS, Level, Pooling, check_level
from ..core.weights import read_safetensors, sha256_file
from ..io.files import atomic_path

MODEL_FORMAT = "styleshift-decoder-v1"


def _mirror(level: str) -> list[tuple[int, int, bool]]:
    """(in, out, upsample-after) per decoder conv: VGG's convs up to `level`, reversed."""
    channels = {1: 64, 2: 128, 3: 256, 4: 512, 5: 512}
    convs: list[tuple[int, int, bool]] = []
    previous = 3
    names = LAYERS[: LAYERS.index(level) + 1]
    for index, name in enumerate(names):
        if not name.startswith("conv"):
            continue
        out = channels[int(name[4])]
        pooled_before = index > 0 and names[index - 1].startswith("pool")
        convs.append((out, previous, pooled_before))
        previous = out
    return convs[::-1]


class Decoder(nn.Module):
    """Features at `level` (N, C, H/s, W/s) -> an RGB image (N, 3, H, W), roughly in 0..1.

    Reflection padding, as in the AdaIN and WCT decoders: zero padding leaves dark frames
    once the features have been moved towards a style.
    """

    def __init__(self, level: str = "relu4_1") -> None:
        super().__init__()
        self.level = check_level(level)
        layers: list[nn.Module] = []
        plan = _mirror(level)
        for index, (cin, cout, upsample) in enumerate(plan):
            layers += [nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3)]
            if index < len(plan) - 1:
                layers.append(nn.ReLU(inplace=True))
            if upsample:
                layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
        self.net = nn.Sequential(*layers)

    def forward(self, features: Tensor) -> Tensor:
        out: Tensor = self.net(features)
        return out


@dataclass(frozen=True)
class ModelInfo:
    """What a model file says about itself."""

    level: Level
    pooling: Pooling
    steps: int = 0
    extra: Mapping[str, str] = field(default_factory=dict)


def save_model(decoder: Decoder, info: ModelInfo, path: Path, *, half: bool = False) -> None:
    """Write the decoder atomically; float16 halves the file at no visible cost."""
    from safetensors.torch import save_file

    dtype = torch.float16 if half else torch.float32
    state = {k: v.detach().to("cpu", dtype).contiguous() for k, v in decoder.state_dict().items()}
    metadata = {
        "format": MODEL_FORMAT,
        "level": info.level,
        "pooling": info.pooling,
        "steps": str(info.steps),
        **{f"x.{k}": v for k, v in info.extra.items()},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, overwrite=True) as tmp:
        save_file(state, str(tmp), metadata=metadata)


def load_model(path: Path, *, sha256: str | None = None) -> tuple[Decoder, ModelInfo]:
    """A decoder from a model file; raises InputError, naming the file, when it is not one.

    Never unpickles: safetensors holds tensors and strings only.
    """
    from safetensors import SafetensorError

    name = os.fspath(path)
    if not path.is_file():
        raise InputError(f"model file '{name}' not found; check the path given to --model")
    if sha256 is not None and (got := sha256_file(path)) != sha256:
        raise InputError(
            f"model file '{name}' has sha256 {got}, expected {sha256}; reinstall styleshift"
        )
    try:
        state, metadata = read_safetensors(path)
    except (SafetensorError, OSError, ValueError) as e:
        raise InputError(
            f"cannot read model file '{name}': {one_line(e)}; give a .safetensors file "
            "written by `styleshift train`"
        ) from None
    if metadata.get("format") != MODEL_FORMAT:
        raise InputError(
            f"'{name}' is not a styleshift decoder (format {metadata.get('format')!r}); "
            "give a file written by `styleshift train`"
        )
    level = metadata.get("level", "")
    pooling = metadata.get("pooling", "")
    if level not in LEVELS or pooling not in ("avg", "max"):
        raise InputError(f"model file '{name}' names level {level!r} and pooling {pooling!r}")
    if not all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point()):
        raise InputError(
            f"model file '{name}' holds weights that are not finite (NaN or infinity); "
            "retrain it, or give another file"
        )
    decoder = Decoder(level)
    try:
        decoder.load_state_dict({k: v.float() for k, v in state.items()})
    except RuntimeError:
        raise InputError(
            f"model file '{name}' does not hold a {level} decoder of this architecture; "
            "retrain it with this version of `styleshift train`"
        ) from None
    decoder.requires_grad_(False).eval()
    extra = {k[2:]: v for k, v in metadata.items() if k.startswith("x.")}
    steps = metadata.get("steps", "0")
    info = ModelInfo(
        cast(Level, level), cast(Pooling, pooling), int(steps) if steps.isdigit() else 0, extra
    )
    return decoder, info


def padded_side(side: int, multiple: int, minimum: int = 0) -> int:
    """What `pad_to_multiple` makes of a side."""
    return max(minimum, side + -side % multiple)


def pad_to_multiple(image: Tensor, multiple: int, minimum: int = 0) -> Tensor:
    """Reflect-pad the bottom and right so both sides divide by `multiple` (the encoder's
    stride) and are at least `minimum`, so that the decoder gives back exactly the
    input's size after cropping."""
    h, w = image.shape[-2:]
    pad_h, pad_w = (padded_side(side, multiple, minimum) - side for side in (h, w))
    if not pad_h and not pad_w:
        return image
    mode = "reflect" if pad_h < h and pad_w < w else "replicate"
    return nn.functional.pad(image, (0, pad_w, 0, pad_h), mode=mode)
