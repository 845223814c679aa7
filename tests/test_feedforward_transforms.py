"""The feature transforms match the statistics they promise, and blend as documented."""

from __future__ import annotations

import pytest
import torch

from styleshift.feedforward.transforms import adain, efdm, stylise_features, wct


def _features(seed: int, channels: int = 16, h: int = 12, w: int = 10) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    mixing = torch.randn(channels, channels, generator=g)
    raw = torch.randn(channels, h * w, generator=g).exp()  # skewed, like ReLU features
    return (mixing @ raw + 3 * torch.randn(channels, 1, generator=g)).view(channels, h, w)


def _cov(x: torch.Tensor) -> torch.Tensor:
    return torch.cov(x.flatten(1).double())


def test_adain_gives_the_style_channel_mean_and_std() -> None:
    content, style = _features(0), _features(1, h=9, w=7)
    out = adain(content, style).flatten(1)
    s = style.flatten(1)
    torch.testing.assert_close(out.mean(1), s.mean(1), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out.std(1), s.std(1), atol=1e-3, rtol=1e-3)
    # ...but not its correlations between channels
    assert not torch.allclose(_cov(out.view_as(content)), _cov(style), rtol=0.05)


def test_wct_gives_the_style_covariance() -> None:
    content, style = _features(2), _features(3, h=20, w=11)
    out = wct(content, style)
    torch.testing.assert_close(_cov(out), _cov(style), rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(
        out.flatten(1).mean(1), style.flatten(1).mean(1), rtol=1e-4, atol=1e-4
    )


def test_efdm_gives_each_channel_the_style_values_in_the_content_order() -> None:
    content, style = _features(4), _features(5)  # same size: exact matching
    out = efdm(content, style).flatten(1)
    c, s = content.flatten(1), style.flatten(1)
    torch.testing.assert_close(out.sort(1).values, s.sort(1).values)
    assert torch.equal(out.argsort(1), c.argsort(1))


def test_efdm_with_another_size_matches_the_quantiles() -> None:
    content, style = _features(6, h=16, w=16), _features(7, h=8, w=8)
    out = efdm(content, style).flatten(1)
    s = style.flatten(1)
    torch.testing.assert_close(out.min(1).values, s.min(1).values)
    torch.testing.assert_close(out.max(1).values, s.max(1).values)
    for q in (0.25, 0.5, 0.75):
        torch.testing.assert_close(out.quantile(q, 1), s.quantile(q, 1), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("transform", ["adain", "wct", "efdm"])
def test_strength_blends_towards_the_content(transform: str) -> None:
    content, style = _features(8), _features(9)
    none = stylise_features(transform, content, [style], [1.0], 0.0)
    full = stylise_features(transform, content, [style], [1.0], 1.0)
    half = stylise_features(transform, content, [style], [1.0], 0.5)
    torch.testing.assert_close(none, content)
    torch.testing.assert_close(half, (none + full) / 2)


def test_style_weights_blend_the_transforms() -> None:
    content, a, b = _features(10), _features(11), _features(12)
    mixed = stylise_features("adain", content, [a, b], [0.25, 0.75], 1.0)
    torch.testing.assert_close(mixed, 0.25 * adain(content, a) + 0.75 * adain(content, b))
    only_a = stylise_features("adain", content, [a, b], [1.0, 0.0], 1.0)
    torch.testing.assert_close(only_a, adain(content, a))
