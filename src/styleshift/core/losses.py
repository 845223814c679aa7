"""The terms of the Gatys objective, each a small module holding its own target.

Content and style terms are relative squared errors (divided by the target's squared
norm). That makes every term scale-free: its value does not depend on the resolution, on
the image's overall contrast or on how large a layer's activations are, so one set of
default weights balances content against style at any size and for any pair of images.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

_TINY = 1e-30  # only guards an all-zero target; must not bias small ones


def gram_matrix(features: Tensor, weight: Tensor | None = None) -> Tensor:
    """Channel correlations (N, C, C), averaged over positions so size does not matter;
    with a `weight` (N or 1, 1, H, W), a weighted average: the Gram matrix of a region
    (Gatys et al. 2017, guided Gram matrices)."""
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)
    if weight is None:
        if not features.is_contiguous():
            # Channels-last features (the reduced-precision network hands them back so):
            # scaled before the product, the two operands are different tensors, and the
            # backward no longer sums two gradients into that strided layout. 18% less
            # time per evaluation at 384 px with AMX (docs/performance.md); on the
            # contiguous float32 features it would cost 4%, so there the division stays.
            return (flat * (1.0 / (h * w))) @ flat.transpose(1, 2)
        return flat @ flat.transpose(1, 2) / (h * w)
    weights = weight.reshape(weight.shape[0], 1, h * w).to(flat.dtype)
    return (flat * weights) @ flat.transpose(1, 2) / weights.sum().clamp_min(_TINY)


def mix_grams(grams: Sequence[Tensor], weights: Sequence[float]) -> Tensor:
    """The blend target for several styles: their Gram matrices' weighted mean."""
    if len(grams) != len(weights) or not grams:
        raise ValueError("need one weight per Gram matrix")
    total = float(sum(weights))
    return sum(
        (g * (w / total) for g, w in zip(grams, weights, strict=True)), torch.zeros_like(grams[0])
    )


def relative_mse(input: Tensor, target: Tensor) -> Tensor:
    return (input - target).pow(2).sum() / target.pow(2).sum().clamp_min(_TINY)


class ContentLoss(nn.Module):
    """Keeps one layer's activations close to the content image's."""

    target: Tensor
    norm: Tensor

    def __init__(self, target: Tensor) -> None:
        super().__init__()
        self.register_buffer("target", target.detach())
        # Once, not per evaluation: the target is large at print sizes.
        self.register_buffer("norm", self.target.pow(2).sum().clamp_min(_TINY))

    def forward(self, features: Tensor) -> Tensor:
        return (features - self.target).pow(2).sum() / self.norm


class StyleLoss(nn.Module):
    """Matches one layer's Gram matrix to the (blended) style target."""

    target: Tensor

    def __init__(self, target_gram: Tensor) -> None:
        super().__init__()
        self.register_buffer("target", target_gram.detach())

    def forward(self, features: Tensor) -> Tensor:
        return relative_mse(gram_matrix(features), self.target)


class TVLoss(nn.Module):
    """Total variation: the mean squared difference between neighbouring pixels."""

    def forward(self, image: Tensor) -> Tensor:
        dx = image[..., :, 1:] - image[..., :, :-1]
        dy = image[..., 1:, :] - image[..., :-1, :]
        return dx.pow(2).mean() + dy.pow(2).mean()


class RangeLoss(nn.Module):
    """How far pixels stray outside 0..1: the mean squared excess.

    L-BFGS works on an unclamped image, and the pixels it pushes out of range are clipped
    when the picture is saved, which costs style: about 8% of the final loss at 512 px.
    A smooth penalty keeps them in range without upsetting its curvature estimates.
    """

    def forward(self, image: Tensor) -> Tensor:
        return ((image - 1).clamp_min(0).pow(2) + (-image).clamp_min(0).pow(2)).mean()
