"""Feature transforms: move a photo's features towards a painting's, with no training.

Each takes content features (C, H, W) and style features (C, H', W') of one image each
and returns features shaped like the content's.

- AdaIN (Huang and Belongie, 2017): each channel gets the style's mean and spread.
- WCT (Li et al., 2017): whitening removes the content's channel correlations and
  colouring puts the style's in, so the whole covariance matches.
- EFDM (Zhang et al., 2022): each channel's values are replaced, in rank order, by the
  style's, so every channel's whole distribution matches, not only two moments.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal, get_args

import torch
from torch import Tensor

from ..core.regions import SUPPORT

Transform = Literal["adain", "wct", "efdm"]
TRANSFORMS: tuple[str, ...] = get_args(Transform)
_EPS = 1e-5


def adain(content: Tensor, style: Tensor) -> Tensor:
    c, s = content.flatten(1), style.flatten(1)
    c_mean, c_std = c.mean(1, keepdim=True), c.std(1, keepdim=True) + _EPS
    s_mean, s_std = s.mean(1, keepdim=True), s.std(1, keepdim=True)
    return ((c - c_mean) / c_std * s_std + s_mean).view_as(content)


def _covariance_power(centred: Tensor, power: float) -> Tensor:
    """(X X^T / (n - 1) + eps I) ** power by eigendecomposition, in float64: the small
    eigenvalues of deep features underflow float32's precision when inverted."""
    x = centred.double()
    cov = x @ x.T / max(x.shape[1] - 1, 1)
    cov += _EPS * torch.eye(cov.shape[0], dtype=cov.dtype, device=cov.device)
    values, vectors = torch.linalg.eigh(cov)
    # Directions with (numerically) no variance carry nothing to whiten or colour.
    keep = values > values.max() * 1e-7
    values, vectors = values[keep], vectors[:, keep]
    result: Tensor = (vectors * values.pow(power)) @ vectors.T
    return result


def wct(content: Tensor, style: Tensor) -> Tensor:
    c, s = content.flatten(1), style.flatten(1)
    c_mean, s_mean = c.mean(1, keepdim=True), s.mean(1, keepdim=True)
    whitened = _covariance_power(c - c_mean, -0.5) @ (c - c_mean).double()
    coloured = _covariance_power(s - s_mean, 0.5) @ whitened
    return (coloured.to(content.dtype) + s_mean).view_as(content)


def efdm(content: Tensor, style: Tensor) -> Tensor:
    c, s = content.flatten(1), style.flatten(1)
    order = c.argsort(dim=1)
    s_sorted = s.sort(dim=1).values
    if s_sorted.shape[1] != c.shape[1]:
        # Another size: the style's quantiles at the content's ranks.
        s_sorted = torch.nn.functional.interpolate(
            s_sorted.unsqueeze(0), size=c.shape[1], mode="linear", align_corners=True
        )[0]
    out = torch.empty_like(c)
    out.scatter_(1, order, s_sorted)
    return out.view_as(content)


TRANSFORM_FUNCTIONS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "adain": adain,
    "wct": wct,
    "efdm": efdm,
}


def stylise_features(
    transform: str,
    content: Tensor,
    styles: Sequence[Tensor],
    weights: Sequence[float],
    strength: float,
) -> Tensor:
    """Blend of each style's transform by `weights` (summing to 1), then `strength` of
    it over the content features (1: all style, 0: the photo), as in AdaIN's paper."""
    function = TRANSFORM_FUNCTIONS[transform]
    mixed = sum(
        (w * function(content, s) for s, w in zip(styles, weights, strict=True)),
        torch.zeros_like(content),
    )
    return strength * mixed + (1 - strength) * content


def stylise_regions(
    transform: str,
    content: Tensor,
    styles: Sequence[Tensor],
    weights: Sequence[float],
    strength: float,
    groups: Sequence[Sequence[int]],
    shares: Tensor,
) -> Tensor:
    """`stylise_features` per region: region r takes the whole picture's transform
    towards the styles `groups[r]` (blended by `weights` within it), mixed with the
    content by `shares[r]`, its (1, H, W) weight at this feature map. Positions no region
    reaches stay the photo's.

    The transform starts from the whole picture's statistics, not the region's: a flat
    region (a clear sky) has so little spread that normalising by its own would blow its
    faint noise up into the painting's whole contrast."""
    out = content.clone()
    for group, share in zip(groups, shares, strict=True):
        total = sum(weights[i] for i in group)
        if total <= 0 or not bool((share > SUPPORT).any()):
            continue
        blend = [weights[i] / total for i in group]
        painted = stylise_features(transform, content, [styles[i] for i in group], blend, strength)
        out += share * (painted - content)
    return out
