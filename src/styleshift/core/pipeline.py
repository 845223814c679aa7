"""What both method families do around their own work: open the inputs (alpha set aside),
size them and apply the colour mode before, and turn the result back into a picture after.
"""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image
from torch import Tensor

from ..io.image import (
    ImageLike,
    as_image,
    long_side_for,
    resize_long_side,
    scaled_size,
    split_alpha,
    to_image,
    to_tensor,
)
from . import color


def open_inputs(
    content: ImageLike, styles: Sequence[ImageLike]
) -> tuple[Image.Image, Image.Image | None, list[Image.Image]]:
    """The content as RGB with its alpha (or None) and the styles as RGB."""
    image, alpha = split_alpha(as_image(content, what="content image"))
    return image, alpha, [split_alpha(as_image(s, what="style image"))[0] for s in styles]


def style_sides(
    styles: Sequence[Image.Image], size: int, style_scale: float, min_style_side: int
) -> list[int]:
    """The long side each painting is used at, beside a picture of long side `size`."""
    side = round(size * style_scale)
    # Their statistics do not depend on the size, so a narrow painting is enlarged
    # rather than padded.
    return [long_side_for(p.size, side, min_style_side) for p in styles]


def sizes(
    content: Image.Image,
    styles: Sequence[Image.Image],
    size: int,
    style_scale: float,
    min_style_side: int,
) -> list[tuple[int, int]]:
    """(width, height) of the content and of each style as `prepare` makes them, without
    making them: what a memory check needs before any large image exists."""
    sides = style_sides(styles, size, style_scale, min_style_side)
    return [
        scaled_size(content.size, size),
        *(scaled_size(p.size, side) for p, side in zip(styles, sides, strict=True)),
    ]


def prepare(
    content: Image.Image,
    styles: Sequence[Image.Image],
    size: int,
    style_scale: float,
    mode: str,
    min_style_side: int,
) -> tuple[Tensor, list[Tensor]]:
    """Content and style tensors at their sizes, with the colour mode applied."""
    c = to_tensor(resize_long_side(content, size))
    sides = style_sides(styles, size, style_scale, min_style_side)
    s = [to_tensor(resize_long_side(p, side)) for p, side in zip(styles, sides, strict=True)]
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
