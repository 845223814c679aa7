"""Tiles with a margin of context: work on an image too large for memory, piece by piece.

A tile's interior is the part of the image it answers for; it is computed from a crop
that adds a margin on every side, so that what a network computes inside the interior
is what it would compute on the whole image. Used by the optimisation (its objective in
tiles) and by the feed-forward methods (their encoder and decoder in tiles).
"""

from __future__ import annotations

import itertools
import math
import os
from dataclasses import dataclass

import torch
from torch import Tensor

from .errors import OptionError
from .vgg import LAYERS, stride

# The share of a memory budget that a plan fills. The rest is for what the estimates leave
# out: the interpreter and weights, and what the heap holds between two releases (see
# memory). A 2048 px optimisation planned at 3.7 GiB peaked at 3.6 GiB (docs/performance.md).
HEADROOM = 0.65


@dataclass(frozen=True)
class Tile:
    """A tile's interior (the positions it is scored on) and the crop it is run on."""

    top: int
    bottom: int
    left: int
    right: int
    crop: tuple[int, int, int, int]  # top, bottom, left, right

    def crop_of(self, image: Tensor) -> Tensor:
        top, bottom, left, right = self.crop
        return image[..., top:bottom, left:right]

    def interior(self, features: Tensor, layer: str) -> Tensor:
        """The part of a crop's feature map that lies in this tile's interior."""
        s = stride(layer)
        top, left = self.crop[0] // s, self.crop[2] // s
        return features[
            ...,
            self.top // s - top : self.bottom // s - top,
            self.left // s - left : self.right // s - left,
        ]

    def region(self, layer: str) -> tuple[slice, slice]:
        """This tile's interior in the whole image's feature map of `layer`."""
        s = stride(layer)
        return slice(self.top // s, self.bottom // s), slice(self.left // s, self.right // s)


def _cuts(length: int, tile: int, offset: int) -> list[int]:
    inner = range(offset % tile or tile, length, tile)
    return [0, *inner, length]


def grid(
    height: int,
    width: int,
    tile: int,
    *,
    margin: int,
    offset: tuple[int, int] = (0, 0),
    align: int = 1,
) -> list[Tile]:
    """Tiles of `tile` positions covering a height x width grid (pixels or feature
    positions), each run on a crop with `margin` more on every side where there is more;
    `offset` shifts the grid. All four must be multiples of `align`."""
    if tile % align or margin % align or offset[0] % align or offset[1] % align:
        raise ValueError(f"tile, margin and offset must be multiples of {align}")
    rows, cols = _cuts(height, tile, offset[0]), _cuts(width, tile, offset[1])
    tiles = []
    for top, bottom in itertools.pairwise(rows):
        for left, right in itertools.pairwise(cols):
            crop = (
                max(0, top - margin),
                min(height, bottom + margin),
                max(0, left - margin),
                min(width, right + margin),
            )
            tiles.append(Tile(top, bottom, left, right, crop))
    return tiles


def available_memory(device: torch.device) -> int:
    """Bytes a run may reasonably count on: free device memory, or available RAM."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type == "mps":
        return int(torch.mps.recommended_max_memory())
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def vgg_margin(layer: str) -> int:
    """Pixels of context a crop needs around its interior so that VGG-19's features at
    `layer` inside it are the whole image's: how far the layers up to it reach (a 3x3
    convolution or a 2x2 pooling, one step of its grid on each side), rounded up to whole
    positions of the layer, and one more for the pooling windows."""
    reach, step = 0, 1
    for name in LAYERS[: LAYERS.index(layer) + 1]:
        if name.startswith(("conv", "pool")):
            reach += step
        if name.startswith("pool"):
            step *= 2
    s = stride(layer)
    return (math.ceil(reach / s) + 1) * s


def roomy_budget(least: int, available: int, fraction: float) -> int:
    """`fraction` of the available memory, or more (up to three quarters of it) where the
    work would otherwise need tiles too small to be efficient; `least` is the budget
    that gives it efficient ones."""
    return max(int(fraction * available), min(least, available * 3 // 4))


def too_small(budget: int, width: int, height: int, least: int, what: str) -> OptionError:
    """The refusal of a budget that cannot hold a `what` of width x height even in the
    smallest tiles, with `least`, the budget that would."""
    return OptionError(
        f"a memory budget of {budget / 2**30:.2f} GiB is too small for a {width}x{height} "
        f"{what}; allow at least {math.ceil(least / 2**28) / 4:.2f} GiB (--max-memory) "
        "or choose a smaller size"
    )
