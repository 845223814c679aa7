"""Regions: where each painting goes, and where the photo stays as it is.

A mask is a grey picture over the photo: white paints, black keeps the photo, grey lies
between. There is one mask per style; styles given the same mask share its region and
blend there by their blend weights. Where no mask reaches, the photo is kept exactly:
both method families work on the whole picture, each region pulled towards its own
paintings as much as its mask says (so strokes do not stop at the border), then put the
photo back through the feathered masks. `auto:subject` and `auto:background` find the
subject of the photo with GrabCut instead of a drawn mask.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageFilter
from torch import Tensor

from ..io.image import as_image
from ..io.media import kind_of
from .errors import InputError, OptionError, choice_hint

AUTO = ("auto:subject", "auto:background")
# The feather's Gaussian, as a share of the picture's long side: 2.6 px at 512 px, so a
# hard-edged mask leaves no visible seam and the photo is kept to within a few pixels of
# the border.
FEATHER = 0.005
# A region whose weight is nowhere above this (an empty mask) paints nothing.
SUPPORT = 1e-3


@dataclass(frozen=True)
class Region:
    """Where some styles paint: its mask at the photo's size, and which styles."""

    mask: Image.Image  # "L", the photo's size
    styles: tuple[int, ...]  # indices into the style images, which blend here


@dataclass
class Regions:
    """The regions of one picture; weights at any size are computed once and kept."""

    regions: tuple[Region, ...]
    notes: tuple[str, ...] = ()
    _cache: dict[tuple[int, int], Tensor] = field(default_factory=dict, repr=False)

    def weights(self, height: int, width: int) -> Tensor:
        """(R, 1, height, width) in 0..1: each region's feathered weight at that size,
        scaled where regions overlap so that no pixel is painted more than once."""
        key = (height, width)
        if key not in self._cache:
            radius = FEATHER * max(height, width)
            stack = torch.cat([_feathered(r.mask, width, height, radius) for r in self.regions])
            total = stack.sum(0, keepdim=True).clamp_min(1.0)
            self._cache[key] = stack / total
        return self._cache[key]

    def painted(self, height: int, width: int) -> Tensor:
        """(1, 1, height, width): how much of each pixel is painted (the rest is photo)."""
        return self.weights(height, width).sum(0, keepdim=True).clamp(0, 1)

    def keep_photo(self, picture: Tensor, photo: Tensor) -> Tensor:
        """The picture where it is painted, the photo where it is not (any device)."""
        h, w = picture.shape[-2:]
        painted = self.painted(h, w).to(picture.device, picture.dtype)
        return photo.to(picture.device) + painted * (picture - photo.to(picture.device))

    def at_features(self, height: int, width: int, stride: int) -> Tensor:
        """(R, 1, height // stride, width // stride): each region's share of every position
        of a feature map of that stride (VGG-19's pooling floors as this does)."""
        weights = self.weights(height, width)
        return weights if stride == 1 else F.avg_pool2d(weights, stride)


def _feathered(mask: Image.Image, width: int, height: int, radius: float) -> Tensor:
    resized = mask.resize((width, height), Image.Resampling.BOX)
    if radius >= 0.5:
        resized = resized.filter(ImageFilter.GaussianBlur(radius))
    array = np.asarray(resized, dtype=np.float32) / 255.0
    return torch.from_numpy(array.copy())[None, None]


def open_regions(
    masks: Sequence[str | os.PathLike[str] | Image.Image], photo: Image.Image, styles: int
) -> Regions:
    """The regions of `masks` (paths, images, or `auto:subject` / `auto:background`), one
    per style, over `photo`; raises OptionError for a wrong count, InputError for a mask
    that cannot be read. What deserves a word (a mask stretched, empty or full) is in
    `notes`."""
    check_count(len(masks), styles)
    notes: list[str] = []
    opened: dict[str, Image.Image] = {}
    order: list[str] = []
    groups: dict[str, list[int]] = {}
    for index, spec in enumerate(masks):
        key = (
            spec
            if isinstance(spec, str)
            else (f"<mask {index + 1}>" if isinstance(spec, Image.Image) else os.fspath(spec))
        )
        if key not in opened:
            opened[key] = mask = _open_mask(spec, key, photo, notes)
            order.append(key)
            low, high = cast(tuple[int, int], mask.getextrema())
            if high < 8:
                notes.append(f"mask '{key}' is black everywhere: its style paints nothing")
            elif low > 247:
                notes.append(
                    f"mask '{key}' is white everywhere: its style paints the whole picture"
                )
        groups.setdefault(key, []).append(index)
    return Regions(tuple(Region(opened[key], tuple(groups[key])) for key in order), tuple(notes))


def open_painting_masks(
    specs: Sequence[str | os.PathLike[str] | Image.Image] | None,
    paintings: Sequence[Image.Image],
) -> tuple[list[Regions | None], tuple[str, ...]]:
    """Each painting's mask (--style-mask, one per painting) as a region, or None for the
    whole painting when there are none, and the notes they deserve."""
    if not specs:
        return [None] * len(paintings), ()
    check_count(len(specs), len(paintings), "painting mask")
    opened = [open_painting_mask(m, p) for m, p in zip(specs, paintings, strict=True)]
    return [r for r, _ in opened], tuple(n for _, notes in opened for n in notes)


def open_painting_mask(
    spec: str | os.PathLike[str] | Image.Image, painting: Image.Image
) -> tuple[Regions, tuple[str, ...]]:
    """Where a painting's statistics are taken from (--style-mask): one region over the
    painting, and the notes it deserves; a mask that takes nothing is refused."""
    name = "<painting mask>" if isinstance(spec, Image.Image) else os.fspath(spec)
    notes: list[str] = []
    mask = _open_mask(spec, name, painting, notes, over="painting")
    if cast(tuple[int, int], mask.getextrema())[1] < 8:
        raise InputError(
            f"painting mask '{name}' is black everywhere, so it takes nothing of its "
            "painting; make it white where the style should come from"
        )
    return Regions((Region(mask, (0,)),)), tuple(notes)


def check_masks(masks: Sequence[str | os.PathLike[str] | Image.Image], what: str = "mask") -> None:
    """Refuse an unknown automatic mask or an unreadable mask file, before any work."""
    for spec in masks:
        if isinstance(spec, str) and spec.startswith("auto:"):
            _check_auto(spec)
        else:
            _picture(spec, what)


def _picture(spec: str | os.PathLike[str] | Image.Image, what: str) -> Image.Image:
    """A mask file as a picture; a folder or video of masks gets its own word."""
    if not isinstance(spec, Image.Image) and Path(spec).exists() and kind_of(spec) == "video":
        holds = "folder" if Path(spec).is_dir() else "video"
        raise InputError(
            f"{what} '{os.fspath(spec)}' is a {holds}; give a picture (only "
            "`styleshift video --mask` takes one mask per frame, as a folder or a video)"
        )
    return as_image(spec, what=what)


def _check_auto(spec: str) -> None:
    if spec not in AUTO:
        hint = choice_hint(spec, AUTO, f"use {' or '.join(AUTO)}")
        raise OptionError(f"unknown automatic mask '{spec}'; {hint}")


def check_count(masks: int, styles: int, what: str = "mask") -> None:
    if masks != styles:
        blend = " (the same mask twice to blend two styles in one region)" if what == "mask" else ""
        raise OptionError(
            f"{masks} {what}{'s' if masks != 1 else ''} given for {styles} style "
            f"image{'s' if styles != 1 else ''}; give one {what} per style image, in the "
            f"same order{blend}"
        )


def _open_mask(
    spec: str | os.PathLike[str] | Image.Image,
    name: str,
    photo: Image.Image,
    notes: list[str],
    over: str = "photo",
) -> Image.Image:
    """`spec` as a grey mask at the size of `photo` (the picture it lies over, named
    `over` in the notes)."""
    if isinstance(spec, str) and spec.startswith("auto:"):
        _check_auto(spec)
        mask = subject_mask(photo)
        return mask if spec == "auto:subject" else mask.point(lambda v: 255 - v)
    image = _picture(spec, "mask" if over == "photo" else f"{over} mask")
    if image.mode == "RGBA":  # transparent is black: a region painted on an empty layer
        black = Image.new("RGB", image.size)
        black.paste(image, mask=image.getchannel("A"))
        image = black
    mask = image.convert("L")
    if mask.size != photo.size:
        ratio = (mask.width / mask.height) / (photo.width / photo.height)
        if abs(ratio - 1) > 0.01:
            notes.append(
                f"mask '{name}' is {mask.width}x{mask.height} and the {over} "
                f"{photo.width}x{photo.height}: it was stretched to the {over}'s shape"
            )
        mask = mask.resize(photo.size, Image.Resampling.LANCZOS)
    return mask


def subject_mask(photo: Image.Image) -> Image.Image:
    """The photo's subject, white on black, by GrabCut (OpenCV) from a rectangle a
    twentieth of the picture inside its borders: what touches the border is background."""
    try:
        import cv2
    except ImportError:
        raise InputError(
            "automatic masks need OpenCV; install it with pip install 'styleshift[masks]'"
        ) from None
    small = photo.convert("RGB")
    small.thumbnail((320, 320), Image.Resampling.LANCZOS)
    array = np.ascontiguousarray(np.asarray(small)[:, :, ::-1])
    h, w = array.shape[:2]
    labels = np.zeros((h, w), np.uint8)
    rect = (max(1, w // 20), max(1, h // 20), w - 2 * max(1, w // 20), h - 2 * max(1, h // 20))
    background, foreground = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)
    cv2.grabCut(array, labels, rect, background, foreground, 5, cv2.GC_INIT_WITH_RECT)
    subject = np.where((labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD), 255, 0)
    mask = Image.fromarray(subject.astype(np.uint8))
    return mask.resize(photo.size, Image.Resampling.LANCZOS)
