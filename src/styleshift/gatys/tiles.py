"""The objective of an image too large for memory, evaluated in overlapping tiles.

Memory then follows the tile, not the image, while the objective stays the whole
image's: every position's features are computed once, in the tile whose interior holds
it, from a crop with a margin of context around that interior. The style loss depends on
Gram matrices of the whole image, which are sums over positions, so an evaluation takes
two passes: the first (without gradients) sums every tile's share of the Gram matrices;
the second backpropagates each tile with the loss's gradient with respect to those
global Gram matrices, which gives each tile exactly its share of the whole image's
gradient. Every tile is therefore pulled towards the same global style.

Tile borders lie on multiples of `ALIGN`, VGG-19's total downsampling, so a tile's
interior maps onto whole positions of every layer, and the grid is shifted between
evaluations so that no border stays in one place long enough to leave a seam.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core import memory, tiling
from ..core.tiling import HEADROOM, Tile
from ..core.vgg import VGGFeatures, stride

ALIGN = 16
MARGIN = 64  # context on each side of a tile's interior, in pixels (a multiple of ALIGN)
MIN_TILE = 64
# Peak memory of one forward and backward pass through VGG-19 to relu5_1, per input pixel
# (measured on CPU at 256-768 px: 2.6-4.3 KB, falling with size; see docs/performance.md).
PASS_BYTES_PER_PIXEL = 2900
# What each pixel costs for the whole scale: the image, its gradient, the best image so
# far, the content image, L-BFGS's and its line search's working vectors and a tiled
# evaluation's gradients (3 float32 values each), plus the content target at relu4_2
# (512 channels at 1/64 of the pixels).
_VECTOR_BYTES = 3 * 4
_STEADY_VECTORS = 14
_CONTENT_BYTES = 512 * 4 // 64
# In reduced precision a pass also holds copies of the network's weights in that precision,
# whatever the crop's size: autocast's (kept for backward) and, with AMX, oneDNN's
# reorders for the forward and the backward kernels. A 512 px run in 64 px tiles used
# 0.224-0.252 GiB in bfloat16 with AMX against 0.15-0.18 in float32 without it: about
# three copies of the weights' 25 MiB (docs/performance.md).
REDUCED_WEIGHT_COPIES = 3
HISTORY = 50  # L-BFGS curvature pairs kept when memory allows
MIN_HISTORY = 5


def grid(
    height: int, width: int, tile: int, offset: tuple[int, int] = (0, 0), margin: int = MARGIN
) -> list[Tile]:
    """Tiles covering the image; `offset` (multiples of ALIGN) shifts the grid."""
    return tiling.grid(height, width, tile, margin=margin, offset=offset, align=ALIGN)


def shifted_grid(height: int, width: int, tile: int, generator: torch.Generator) -> list[Tile]:
    """A grid at a random offset, drawn from `generator` so runs stay reproducible."""
    steps = tile // ALIGN
    dy, dx = (int(v) * ALIGN for v in torch.randint(steps, (2,), generator=generator))
    return grid(height, width, tile, (dy, dx))


# -- how much memory a scale needs -----------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """How a scale is run within a memory budget: tile size (None: whole) and history."""

    tile: int | None
    history: int


def pass_overhead(model: VGGFeatures) -> int:
    """Bytes a pass of `model` holds beyond its share per pixel: none in float32, where
    the kernels use the weights themselves (already resident)."""
    if model.dtype == torch.float32:
        return 0
    parameters = sum(p.numel() for p in model.parameters())
    return REDUCED_WEIGHT_COPIES * parameters * model.dtype.itemsize


def plan(height: int, width: int, budget: int, *, optimise: bool = True, overhead: int = 0) -> Plan:
    """The largest tiles (or none) and L-BFGS history that keep a scale within `budget`
    bytes; raises OptionError if even the smallest tiles would not fit.

    With `optimise` False only a forward pass is planned (style targets). `overhead`:
    what every pass holds whatever its size (`pass_overhead`).
    """
    pixels = height * width
    usable = int(budget * HEADROOM) - overhead
    history = 0
    if optimise:
        per_pair = 2 * pixels * _VECTOR_BYTES
        history = max(MIN_HISTORY, min(HISTORY, usable // 4 // per_pair))
    while True:
        steady = 0
        if optimise:
            steady = pixels * (_VECTOR_BYTES * (_STEADY_VECTORS + 2 * history) + _CONTENT_BYTES)
        left = usable - steady
        if pixels * PASS_BYTES_PER_PIXEL <= left:
            return Plan(None, history)
        crop = math.isqrt(max(0, left) // PASS_BYTES_PER_PIXEL)
        tile = (crop - 2 * MARGIN) // ALIGN * ALIGN
        if tile >= MIN_TILE or not optimise or history == MIN_HISTORY:
            break
        history = MIN_HISTORY  # the curvature pairs give way before the tiles do
    if tile < MIN_TILE:
        least = least_budget(height, width, overhead=overhead)
        raise tiling.too_small(budget, width, height, least, "image")
    return Plan(tile, history)


def least_budget(height: int, width: int, tile: int = MIN_TILE, overhead: int = 0) -> int:
    """About the smallest budget that `plan` fits tiles of `tile` pixels into."""
    steady = height * width * (_VECTOR_BYTES * (_STEADY_VECTORS + 2 * MIN_HISTORY) + _CONTENT_BYTES)
    crop = (tile + 2 * MARGIN) ** 2 * PASS_BYTES_PER_PIXEL
    return math.ceil((crop + steady + overhead) / HEADROOM)


def default_budget(
    height: int, width: int, available: int, fraction: float, overhead: int = 0
) -> int:
    """`fraction` of the available memory, or more (up to three quarters of it) where the
    image would otherwise need tiles too small to be efficient."""
    return tiling.roomy_budget(least_budget(height, width, 512, overhead), available, fraction)


# -- the two passes ----------------------------------------------------------------------


def _interiors(
    model: nn.Module, image: Tensor, layers: Sequence[str], tiles: Iterable[Tile]
) -> Iterator[tuple[Tile, str, Tensor]]:
    """Each tile's interior features of each layer, computed without gradients."""
    with torch.no_grad():
        for tile in tiles:
            feats = model(tile.crop_of(image))
            for name in layers:
                yield tile, name, tile.interior(feats[name], name)
            del feats
            memory.release(image.device)  # crops differ in size: see memory


def features(
    model: nn.Module, image: Tensor, layers: Sequence[str], tiles: Iterable[Tile]
) -> dict[str, Tensor]:
    """The whole image's feature maps of `layers`, assembled from the tiles' interiors."""
    h, w = image.shape[-2:]
    out: dict[str, Tensor] = {}
    for tile, name, part in _interiors(model, image, layers, tiles):
        if name not in out:
            s = stride(name)
            out[name] = part.new_zeros(part.shape[0], part.shape[1], h // s, w // s)
        rows, cols = tile.region(name)
        out[name][..., rows, cols] = part
    return out


def positions(height: int, width: int, layer: str) -> int:
    s = stride(layer)
    return (height // s) * (width // s)


def gram_share(
    part: Tensor,
    tile: Tile,
    layer: str,
    height: int,
    width: int,
    weight: Mapping[str, Tensor] | None = None,
) -> Tensor:
    """One tile's share of the whole image's Gram matrix of `layer` (see
    losses.gram_matrix), or of a region's, with the region's `weight` per layer."""
    flat = part.reshape(part.shape[0], part.shape[1], -1)
    if weight is None:
        return flat @ flat.transpose(1, 2) / positions(height, width, layer)
    rows, cols = tile.region(layer)
    local = weight[layer][..., rows, cols].reshape(1, 1, -1).to(flat.dtype)
    return (flat * local) @ flat.transpose(1, 2) / weight[layer].sum().clamp_min(1e-30)


def grams(
    model: nn.Module,
    image: Tensor,
    layers: Sequence[str],
    tiles: Iterable[Tile],
    weights: Sequence[Mapping[str, Tensor] | None],
) -> list[dict[str, Tensor]]:
    """The whole image's Gram matrices of `layers`, summed over the tiles (no gradients),
    once per region `weights` (None: the whole picture)."""
    h, w = image.shape[-2:]
    out: list[dict[str, Tensor]] = [{} for _ in weights]
    for tile, name, part in _interiors(model, image, layers, tiles):
        for found, weight in zip(out, weights, strict=True):
            share = gram_share(part, tile, name, h, w, weight)
            found[name] = found[name] + share if name in found else share
    return out


TileLoss = Callable[[dict[str, Tensor], Tile], Tensor]


def backward(model: nn.Module, image: Tensor, tiles: Iterable[Tile], loss: TileLoss) -> Tensor:
    """Backpropagate `loss` tile by tile and return the gradient for the whole image.
    `loss` gets a tile's features (of its whole crop) and the tile."""
    grad = torch.zeros_like(image)
    for tile in tiles:
        crop = tile.crop_of(image).detach().requires_grad_(True)
        loss(model(crop), tile).backward()  # type: ignore[no-untyped-call]
        top, bottom, left, right = tile.crop
        assert crop.grad is not None
        grad[..., top:bottom, left:right] += crop.grad
        del crop
        memory.release(image.device)
    return grad


# -- seams -------------------------------------------------------------------------------


def seam_ratio(image: Tensor, tiles: Sequence[Tile], near: int = 8, along: int = 8) -> float:
    """Mean gradient magnitude across the tiles' inner borders over the same mean on the
    lines parallel to them within `near` pixels: about 1 without seams, above 1 with them.

    Comparing with nearby lines keeps the picture's own content from reading as a seam,
    and averaging `along` pixels along each line before differencing lets the texture of
    brush strokes cancel while a step between tiles, which runs the whole border, stays.
    """
    rows = F.avg_pool2d(image, (1, along), ceil_mode=True)
    cols = F.avg_pool2d(image, (along, 1), ceil_mode=True)
    dy = (rows[..., 1:, :] - rows[..., :-1, :]).abs().mean(dim=(0, 1, 3))
    dx = (cols[..., :, 1:] - cols[..., :, :-1]).abs().mean(dim=(0, 1, 2))
    border, around = [], []
    for steps, cuts in ((dy, {t.top for t in tiles}), (dx, {t.left for t in tiles})):
        for cut in sorted(cuts - {0}):
            line = cut - 1  # the step between pixel cut - 1 and pixel cut
            others = [line + d for d in range(-near, near + 1) if d and 0 <= line + d < len(steps)]
            border.append(steps[line])
            around.append(steps[others].mean())
    if not border:
        raise ValueError("the tiles have no inner borders")
    return float(torch.stack(border).mean() / torch.stack(around).mean().clamp_min(1e-12))
