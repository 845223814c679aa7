"""Optical flow, warping and the consistency mask on synthetic motion."""

from __future__ import annotations

import numpy as np
import pytest

from styleshift.core.flow import consistency_mask, dense_flow, gray, pair, warp, warping_error


def _texture(h: int = 96, w: int = 128, seed: int = 0) -> np.ndarray:
    """A smooth random texture: something flow can lock on to everywhere."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((h // 8 + 2, w // 8 + 2, 3)).astype(np.float32)
    import cv2

    return cv2.resize(coarse, (w + 16, h + 16), interpolation=cv2.INTER_CUBIC)[8:-8, 8:-8].clip(
        0, 1
    )


def _shift(image: np.ndarray, dx: int, dy: int) -> np.ndarray:
    return np.roll(image, (dy, dx), axis=(0, 1))


def test_flow_finds_a_shift_and_warp_undoes_it():
    prev = _texture()
    cur = _shift(prev, 3, 2)  # content moves right 3, down 2
    backward = dense_flow(cur, prev)
    inner = (slice(16, -16), slice(16, -16))
    assert np.median(backward[inner][..., 0]) == pytest.approx(-3, abs=0.3)
    assert np.median(backward[inner][..., 1]) == pytest.approx(-2, abs=0.3)
    warped = warp(prev, backward)
    assert np.abs(warped[inner] - cur[inner]).mean() < 0.01


def test_warp_with_zero_flow_is_identity():
    image = _texture()
    assert np.allclose(warp(image, np.zeros((*image.shape[:2], 2), np.float32)), image)


def test_mask_flags_disocclusion_and_keeps_consistent_motion():
    h, w = 40, 60
    backward = np.zeros((h, w, 2), np.float32)
    forward = np.zeros((h, w, 2), np.float32)
    backward[..., 0] = -2.0  # everything came from 2 px to the left...
    forward[..., 0] = 2.0  # ...and goes 2 px to the right: consistent
    assert consistency_mask(forward, backward)[5:-5, 5:-5].min() == 1.0
    # A region whose round trip does not come back (hidden in the previous frame).
    forward[10:20, 20:30, 0] = 8.0
    mask = consistency_mask(forward, backward)
    assert mask[14, 24] == 0.0
    assert mask[30, 50] == 1.0


def test_mask_flags_motion_boundaries():
    h, w = 40, 60
    backward = np.zeros((h, w, 2), np.float32)
    backward[:, 30:, 0] = 5.0
    forward = -backward
    mask = consistency_mask(forward, backward)
    assert mask[20, 29:31].max() == 0.0  # at the edge of the moving half
    assert mask[20, 5] == 1.0


def test_warping_error_is_zero_for_a_consistent_copy_and_grows_with_noise():
    prev = _texture()
    cur = _shift(prev, 2, 1)
    link = pair(prev, cur)
    assert link.mask.mean() > 0.8
    same = warping_error(prev, cur, link)
    rng = np.random.default_rng(1)
    noisy = (cur + rng.normal(0, 0.1, cur.shape)).clip(0, 1).astype(np.float32)
    assert same < 0.01
    assert warping_error(prev, noisy, link) > 5 * same


def test_gray_accepts_float_and_uint8():
    image = _texture()
    assert gray(image).dtype == np.uint8
    assert np.abs(gray(image).astype(int) - gray((image * 255).astype(np.uint8))).max() <= 1
