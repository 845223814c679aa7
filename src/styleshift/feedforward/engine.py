"""Instant stylisation: encode, transform the features, decode; one pass, no optimisation.

`FeedForward` keeps the decoders it has loaded; the optimisation engine owns one and
calls `run` for the feed-forward methods, so both return the same `Result`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor

from .. import color
from ..image import ImageLike, as_image, resize_long_side, split_alpha, to_image, to_tensor
from ..vgg import VGGFeatures, stride
from .decoder import Decoder, ModelInfo, load_model, pad_to_multiple
from .transforms import stylise_features

# The decoder shipped inside the package (docs/model-card.md) and its sha256, checked
# on every load so that a damaged install fails by name instead of painting noise.
SHIPPED_MODEL = "decoder-relu4_1.safetensors"
SHIPPED_SHA256 = "0" * 64


def shipped_model() -> Path:
    return Path(str(resources.files("styleshift") / "models" / SHIPPED_MODEL))


class FeedForward:
    """Stylises in one pass with a decoder; `stylise` works on tensors in 0..1."""

    def __init__(self, vgg_state: Mapping[str, Tensor], device: torch.device) -> None:
        self.device = device
        self._vgg = vgg_state
        self._models: dict[str, tuple[Decoder, ModelInfo]] = {}

    def model(self, path: str | None = None) -> tuple[Decoder, ModelInfo]:
        """A decoder by path (None: the shipped one), loaded once."""
        key = path or ""
        if key not in self._models:
            if path is None:
                decoder, info = load_model(shipped_model(), sha256=SHIPPED_SHA256)
            else:
                decoder, info = load_model(Path(path))
            self._models[key] = (decoder.to(self.device), info)
        return self._models[key]

    @torch.no_grad()
    def stylise(
        self,
        content: Tensor,
        styles: Sequence[Tensor],
        weights: Sequence[float],
        *,
        transform: str,
        strength: float = 1.0,
        model: str | None = None,
        dtype: torch.dtype = torch.float32,
        on_stage: Callable[[int], None] | None = None,
    ) -> Tensor:
        """(1, 3, H, W) content and styles in 0..1 -> the stylised (1, 3, H, W) in 0..1."""
        decoder, info = self.model(model)
        encoder = VGGFeatures(self._vgg, (info.level,), info.pooling, dtype)
        h, w = content.shape[-2:]
        multiple = stride(info.level)
        reduced = dtype != torch.float32

        def encode(image: Tensor) -> Tensor:
            features: Tensor = encoder(pad_to_multiple(image.to(self.device), multiple))[info.level]
            return features[0]

        features = encode(content)
        style_features = [encode(s) for s in styles]
        if on_stage is not None:
            on_stage(1)
        mixed = stylise_features(transform, features, style_features, weights, strength)
        if on_stage is not None:
            on_stage(2)
        x = mixed.unsqueeze(0)
        if reduced:
            x = x.contiguous(memory_format=torch.channels_last)
            decoder = decoder.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        with torch.autocast(self.device.type, dtype=dtype, enabled=reduced):
            out: Tensor = decoder(x)
        return out.float()[..., :h, :w].clamp(0, 1)


def prepare(
    content: Image.Image, styles: Sequence[Image.Image], size: int, style_scale: float, mode: str
) -> tuple[Tensor, list[Tensor]]:
    """Content and style tensors at their sizes, with the colour mode applied."""
    c = to_tensor(resize_long_side(content, size))
    side = max(16, round(size * style_scale))
    s = [to_tensor(resize_long_side(style, side)) for style in styles]
    if mode == "histogram":
        s = [color.match_color(x, c) for x in s]
    elif mode == "luminance":
        c = color.luminance(c)
        s = [color.match_luminance(color.luminance(x), c) for x in s]
    return c, s


def finish(output: Tensor, content: Image.Image, mode: str) -> Image.Image:
    """The output as an image; with luminance mode, the content's chroma put back."""
    if mode == "luminance":
        h, w = output.shape[-2:]
        original = to_tensor(content.resize((w, h), Image.Resampling.LANCZOS))
        output = color.with_chroma(output.cpu(), original)
    return to_image(output)


def open_inputs(
    content: ImageLike, styles: Sequence[ImageLike]
) -> tuple[Image.Image, Image.Image | None, list[Image.Image]]:
    image, alpha = split_alpha(as_image(content, what="content image"))
    return image, alpha, [split_alpha(as_image(s, what="style image"))[0] for s in styles]
