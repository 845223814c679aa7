"""Tiles with a margin of context: work on an image too large for memory, piece by piece.

A tile's interior is the part of the image it answers for; it is computed from a crop
that adds a margin on every side, so that what a network computes inside the interior
is what it would compute on the whole image. Used by the optimisation (its objective in
tiles) and by the feed-forward methods (their encoder and decoder in tiles).
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass

import torch
from torch import Tensor

from .vgg import stride

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
