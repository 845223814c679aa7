"""Color transforms for color preservation (Gatys et al., 2017).

Two modes: transfer only luminance and take the chroma from the content afterwards, or
match the style image's colour statistics to the content's before the run.
"""

from __future__ import annotations

import torch
from torch import Tensor

# ITU-R BT.601 RGB -> YUV; luminance is Y, chroma is U and V.
_RGB_TO_YUV = torch.tensor(
    [
        [0.299, 0.587, 0.114],
        [-0.14713, -0.28886, 0.436],
        [0.615, -0.51499, -0.10001],
    ]
)


def _apply(matrix: Tensor, image: Tensor) -> Tensor:
    return torch.einsum("ij,njhw->nihw", matrix.to(image), image)


def rgb_to_yuv(image: Tensor) -> Tensor:
    return _apply(_RGB_TO_YUV, image)


def yuv_to_rgb(image: Tensor) -> Tensor:
    return _apply(torch.linalg.inv(_RGB_TO_YUV), image)


def luminance(image: Tensor) -> Tensor:
    """Y of an (N, 3, H, W) RGB image as a grey RGB image, which VGG accepts as it is."""
    y = rgb_to_yuv(image)[:, :1]
    return y.expand(-1, 3, -1, -1).contiguous()


def match_luminance(style: Tensor, content: Tensor) -> Tensor:
    """Shift and scale the style's luminance to the content's mean and spread."""
    s, c = style[:, :1], content[:, :1]
    matched = (s - s.mean()) * (c.std() / (s.std() + 1e-8)) + c.mean()
    return matched.clamp(0, 1).expand(-1, 3, -1, -1).contiguous()


def with_chroma(stylised: Tensor, content: Tensor) -> Tensor:
    """The stylised image's luminance with the content's chroma (same sizes)."""
    y = rgb_to_yuv(stylised)[:, :1]
    uv = rgb_to_yuv(content)[:, 1:]
    return yuv_to_rgb(torch.cat([y, uv], dim=1)).clamp(0, 1)


def _matrix_power(cov: Tensor, power: float) -> Tensor:
    values, vectors = torch.linalg.eigh(cov)
    result: Tensor = vectors @ torch.diag(values.clamp_min(1e-8).pow(power)) @ vectors.T
    return result


def match_color(style: Tensor, content: Tensor) -> Tensor:
    """Give the style image the content's colour mean and covariance.

    The linear map is the symmetric one, C_c^(1/2) C_s^(-1/2): of all maps that match
    the moments, it rotates the colours least.
    """
    s = style[0].flatten(1).double()
    c = content[0].flatten(1).double()
    mu_s, mu_c = s.mean(1, keepdim=True), c.mean(1, keepdim=True)
    cov_s = torch.cov(s) + 1e-5 * torch.eye(3, dtype=s.dtype)
    cov_c = torch.cov(c) + 1e-5 * torch.eye(3, dtype=c.dtype)
    transform = _matrix_power(cov_c, 0.5) @ _matrix_power(cov_s, -0.5)
    out = transform @ (s - mu_s) + mu_c
    return out.reshape(style.shape).to(style.dtype).clamp(0, 1)
