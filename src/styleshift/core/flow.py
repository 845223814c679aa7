"""Dense optical flow, warping and the consistency mask of Ruder, Dosovitskiy and Brox (2016).

Pure functions on numpy arrays: images are (H, W, 3) float32 in 0..1 or uint8, flows are
(H, W, 2) float32 in pixels. A flow ``f`` from frame A to frame B says where each pixel of
A is found in B: ``A(x) ≈ B(x + f(x))``, so ``warp(B, f)`` brings B onto A's pixel grid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
ImageArray = npt.NDArray[Any]  # (H, W, 3) uint8 or float32

__all__ = [
    "FramePair",
    "consistency_mask",
    "dense_flow",
    "gray",
    "pair",
    "sequence_warping_error",
    "warp",
    "warping_error",
]


def gray(image: ImageArray) -> npt.NDArray[np.uint8]:
    """8-bit luminance, the input DIS flow works on."""
    if image.dtype != np.uint8:
        image = np.clip(np.asarray(image) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return np.asarray(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), dtype=np.uint8)


def dense_flow(source: ImageArray, target: ImageArray) -> FloatArray:
    """Flow from ``source`` to ``target`` with OpenCV's DIS (medium preset, fast on a CPU)."""
    # OpenCV 5's stubs leave out the factory that every version has.
    dis = cv2.DISOpticalFlow_create(  # type: ignore[attr-defined,unused-ignore]
        cv2.DISOPTICAL_FLOW_PRESET_MEDIUM
    )
    flow = dis.calc(_as_gray(source), _as_gray(target), None)
    return np.asarray(flow, dtype=np.float32)


def _as_gray(image: ImageArray) -> npt.NDArray[np.uint8]:
    return image if image.ndim == 2 and image.dtype == np.uint8 else gray(image)


def warp(image: ImageArray, flow: FloatArray) -> FloatArray:
    """Sample ``image`` at ``x + flow(x)`` (bilinear; edges repeat beyond the border)."""
    h, w = flow.shape[:2]
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    src = np.asarray(image, dtype=np.float32)
    out = cv2.remap(
        src, xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return np.asarray(out, dtype=np.float32)


def consistency_mask(forward: FloatArray, backward: FloatArray) -> FloatArray:
    """1 where the backward flow can be trusted, 0 at disocclusions and motion boundaries.

    ``backward`` goes from the current frame to the previous one, ``forward`` the other
    way. The thresholds are Ruder et al.'s: a pixel whose round trip does not come back
    (relative to its speed) was hidden in the previous frame, and a pixel where the flow
    changes sharply lies on a motion boundary, where flow is least reliable.
    """
    round_trip = warp(forward, backward)  # forward flow, seen from the current frame
    total = round_trip + backward
    occluded = (
        np.sum(total**2, axis=-1)
        > 0.01 * (np.sum(round_trip**2, axis=-1) + np.sum(backward**2, axis=-1)) + 0.5
    )
    du_y, du_x = np.gradient(backward[..., 0])
    dv_y, dv_x = np.gradient(backward[..., 1])
    boundary = du_x**2 + du_y**2 + dv_x**2 + dv_y**2 > 0.01 * np.sum(backward**2, axis=-1) + 0.002
    return np.asarray(~(occluded | boundary), dtype=np.float32)


@dataclass(frozen=True)
class FramePair:
    """What ties a frame to the one before it: the backward flow and where it holds."""

    backward: FloatArray  # current -> previous
    mask: FloatArray  # (H, W), 1 where the flow is consistent

    def warp_previous(self, previous: ImageArray) -> FloatArray:
        """The previous frame (any image on its grid) moved onto the current frame."""
        return warp(previous, self.backward)


def pair(previous: ImageArray, current: ImageArray) -> FramePair:
    """Flow both ways between two content frames of the same size, and its mask."""
    prev_gray, cur_gray = _as_gray(previous), _as_gray(current)
    backward = dense_flow(cur_gray, prev_gray)
    forward = dense_flow(prev_gray, cur_gray)
    return FramePair(backward, consistency_mask(forward, backward))


def warping_error(
    stylised_prev: ImageArray,
    stylised_cur: ImageArray,
    link: FramePair,
) -> float:
    """Mean absolute difference (0..1 scale) between the current stylised frame and the
    previous one warped onto it, over the pixels where the flow is consistent."""
    prev = _unit(stylised_prev)
    cur = _unit(stylised_cur)
    diff = np.abs(cur - link.warp_previous(prev)).mean(axis=-1)
    weight = float(link.mask.sum())
    if weight == 0:
        return 0.0
    return float((diff * link.mask).sum() / weight)


def _unit(image: ImageArray) -> FloatArray:
    arr = np.asarray(image)
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    return arr.astype(np.float32)


def sequence_warping_error(
    contents: Sequence[ImageArray], stylised: Sequence[ImageArray]
) -> tuple[float, float]:
    """The warping error averaged over consecutive frames, with the flow taken from the
    content frames; and the mean share of pixels where that flow is consistent."""
    if len(contents) != len(stylised) or len(contents) < 2:
        raise ValueError("need two or more content frames and as many stylised ones")
    errors, shares = [], []
    for (c0, c1), (s0, s1) in zip(pairwise(contents), pairwise(stylised), strict=True):
        link = pair(c0, c1)
        errors.append(warping_error(s0, s1, link))
        shares.append(float(link.mask.mean()))
    return float(np.mean(errors)), float(np.mean(shares))
