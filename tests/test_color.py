import torch

from styleshift.core.color import (
    luminance,
    match_color,
    match_luminance,
    rgb_to_yuv,
    with_chroma,
    yuv_to_rgb,
)


def test_yuv_round_trip():
    x = torch.rand(2, 3, 8, 8)
    assert torch.allclose(yuv_to_rgb(rgb_to_yuv(x)), x, atol=1e-5)


def test_luminance_is_grey():
    y = luminance(torch.rand(1, 3, 8, 8))
    assert torch.equal(y[:, 0], y[:, 1]) and torch.equal(y[:, 1], y[:, 2])


def test_with_chroma_keeps_content_chroma_and_stylised_luminance():
    # Mid-range colours, so that the recombination stays inside the RGB gamut.
    stylised = torch.rand(1, 3, 16, 16) * 0.2 + 0.4
    content = torch.rand(1, 3, 16, 16) * 0.2 + 0.4
    out = rgb_to_yuv(with_chroma(stylised, content))
    assert torch.allclose(out[:, 0], rgb_to_yuv(stylised)[:, 0], atol=1e-4)
    assert torch.allclose(out[:, 1:], rgb_to_yuv(content)[:, 1:], atol=1e-4)


def test_match_color_matches_mean_and_covariance():
    torch.manual_seed(0)
    style = torch.rand(1, 3, 32, 32) * torch.tensor([0.3, 0.5, 0.2]).view(1, 3, 1, 1)
    content = 0.3 + torch.rand(1, 3, 32, 32) * torch.tensor([0.3, 0.2, 0.4]).view(1, 3, 1, 1)
    out = match_color(style, content)
    o, c = out[0].flatten(1), content[0].flatten(1)
    assert torch.allclose(o.mean(1), c.mean(1), atol=2e-3)
    assert torch.allclose(torch.cov(o), torch.cov(c), atol=2e-3)


def test_match_luminance_moves_mean_and_spread():
    style = luminance(torch.rand(1, 3, 32, 32) * 0.2)
    content = luminance(0.5 + torch.rand(1, 3, 32, 32) * 0.4)
    out = match_luminance(style, content)
    assert abs(out.mean() - content.mean()) < 0.01
    assert abs(out.std() - content.std()) < 0.01
