"""Instant pictures larger than memory: the encoder and the decoder in overlapping tiles.

A transform needs the whole picture's features at once (their statistics), but those are
small: at relu4_1, 512 channels at 1/64 of the pixels. What grows with the picture is a
pass through a network, which holds up to 128 channels at full size. So each network
runs tile by tile, on crops whose margin covers everything that reaches the tile's
interior, and only the features are held whole: every position comes out as the whole
picture would give it, and memory follows the tile.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..core.options import MEMORY_FRACTION
from ..core.tiling import HEADROOM, available_memory, grid, roomy_budget, too_small, vgg_margin
from ..core.vgg import stride
from .decoder import Decoder

# Peak memory of one pass per pixel of its input (encoder) or output (decoder): the growth
# of the resident set over a pass on CPU at 512-1536 px, 2026-12-07: the encoder to
# relu4_1 770-820 bytes in float32 and 240-290 in bfloat16, the decoder 770-900 in both
# (under autocast it keeps float32 copies). The largest, for every level and precision.
PASS_BYTES_PER_PIXEL = 900
# Held for the whole picture between the passes, per pixel: the photo, its padded copy,
# the picture and its clamped copy (12 bytes each in float32), and copies of the features
# (the photo's, the transformed ones and the transform's temporaries): WCT's float64
# temporaries come to about eight (measured at 4096 px), AdaIN's to about five.
_IMAGE_BYTES = 4 * 12
_FEATURE_COPIES = 8
ALIGN = 16  # tile borders: VGG-19's downsampling at its deepest level
MIN_TILE = 128  # the least tile interior in pixels; smaller tiles are mostly margin


def decoder_margin(decoder: Decoder) -> int:
    """Feature positions of context a crop of features needs so that the decoder's
    output inside it is the whole picture's: its 3x3 convolutions each reach one pixel
    of their resolution, which is a fraction of a position after the upsamplings."""
    reach, position = 0.0, 1.0
    for module in decoder.net:
        if isinstance(module, nn.Conv2d):
            reach += position
        elif isinstance(module, nn.Upsample):
            position /= 2
    return math.ceil(reach) + 1


def _steady_bytes(pixels: int, decoder: Decoder) -> int:
    first = next(m for m in decoder.net if isinstance(m, nn.Conv2d))
    features = first.in_channels * 4 / stride(decoder.level) ** 2  # float32, per pixel
    return int(pixels * (_IMAGE_BYTES + _FEATURE_COPIES * features))


def _margin(decoder: Decoder) -> int:
    """The context of a tile in pixels: enough for both networks."""
    return max(vgg_margin(decoder.level), decoder_margin(decoder) * stride(decoder.level))


def plan(height: int, width: int, decoder: Decoder, budget: int) -> int | None:
    """The interior side in pixels of the tiles (None: the whole picture at once) that
    keep the passes over a picture of height x width pixels (padded to the level's
    stride) within `budget` bytes; raises OptionError where even the smallest would not
    fit."""
    left = int(budget * HEADROOM) - _steady_bytes(height * width, decoder)
    if height * width * PASS_BYTES_PER_PIXEL <= left:
        return None
    crop = math.isqrt(max(0, left) // PASS_BYTES_PER_PIXEL)
    tile = (crop - 2 * _margin(decoder)) // ALIGN * ALIGN
    if tile < MIN_TILE:
        raise too_small(budget, width, height, least_budget(height, width, decoder), "picture")
    return tile


def least_budget(height: int, width: int, decoder: Decoder, tile: int = MIN_TILE) -> int:
    """About the smallest budget that `plan` fits tiles of `tile` pixels into."""
    crop = (tile + 2 * _margin(decoder)) ** 2 * PASS_BYTES_PER_PIXEL
    return math.ceil((crop + _steady_bytes(height * width, decoder)) / HEADROOM)


def default_budget(height: int, width: int, decoder: Decoder, device: torch.device) -> int:
    """The optimisation's rule: a share of the available memory, or more (up to three
    quarters of it) where the picture would otherwise need tiles too small to be
    efficient."""
    least = least_budget(height, width, decoder, 512)
    return roomy_budget(least, available_memory(device), MEMORY_FRACTION)


def encode(encoder: nn.Module, image: Tensor, level: str, tile: int | None) -> Tensor:
    """(1, 3, H, W) padded to the level's stride -> its (C, H/s, W/s) features at `level`,
    in tiles of `tile` pixels (None: at once)."""
    if tile is None:
        whole: Tensor = encoder(image)[level][0]
        return whole
    h, w = image.shape[-2:]
    s = stride(level)
    out: Tensor | None = None
    for t in grid(h, w, tile, margin=vgg_margin(level), align=s):
        features = t.interior(encoder(t.crop_of(image))[level], level)[0]
        if out is None:
            out = features.new_empty((features.shape[0], h // s, w // s))
        rows, cols = t.region(level)
        out[:, rows, cols] = features
    assert out is not None  # a picture has at least one tile
    return out


def decode(decoder: Decoder, features: Tensor, tile: int | None, dtype: torch.dtype) -> Tensor:
    """(1, C, h, w) features -> the (1, 3, h*s, w*s) picture in float32, in tiles of
    `tile` pixels (None: at once); with `dtype` below float32 under autocast, in
    channels-last as oneDNN's reduced-precision kernels want."""
    reduced = dtype != torch.float32
    if reduced:
        features = features.contiguous(memory_format=torch.channels_last)
        decoder = decoder.to(memory_format=torch.channels_last)  # type: ignore[call-overload]

    def run(crop: Tensor) -> Tensor:
        with torch.autocast(crop.device.type, dtype=dtype, enabled=reduced):
            out: Tensor = decoder(crop)
        return out.float()

    if tile is None:
        return run(features)
    s = stride(decoder.level)
    h, w = features.shape[-2:]
    picture = features.new_empty((1, 3, h * s, w * s), dtype=torch.float32)
    for t in grid(h, w, max(1, tile // s), margin=decoder_margin(decoder)):
        top, left = t.crop[0], t.crop[2]
        out = run(t.crop_of(features))
        picture[..., t.top * s : t.bottom * s, t.left * s : t.right * s] = out[
            ...,
            (t.top - top) * s : (t.bottom - top) * s,
            (t.left - left) * s : (t.right - left) * s,
        ]
    return picture
