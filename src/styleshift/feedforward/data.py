"""Training photos: folders of images, loaded once at a working size, cropped at random."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor

from ..core.errors import InputError
from ..io.image import as_image, to_tensor
from ..io.media import kind_of


def image_files(sources: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Every image file under the given folders (recursively) or named directly, sorted."""
    found: list[Path] = []
    for source in sources:
        path = Path(source)
        if path.is_dir():
            found += [p for p in path.rglob("*") if kind_of(p) == "image"]
        elif path.is_file():
            found.append(path)
        else:
            raise InputError(
                f"training data '{os.fspath(source)}' not found; give folders of images"
            )
    return sorted(set(found))


@dataclass
class Photos:
    """Images held in memory with their short side at most `short_side`."""

    images: list[Tensor]  # (3, H, W) uint8
    skipped: list[str]  # unreadable or too small, with the reason

    def __len__(self) -> int:
        return len(self.images)


def load_photos(files: Sequence[Path], short_side: int, min_side: int) -> Photos:
    """Decode each file once; unreadable files and ones smaller than `min_side` are skipped."""
    images: list[Tensor] = []
    skipped: list[str] = []
    for path in files:
        try:
            image = as_image(path, what="training image").convert("RGB")
        except InputError as e:
            skipped.append(str(e))
            continue
        if min(image.size) < min_side:
            skipped.append(f"{path}: {image.width}x{image.height} is smaller than {min_side} px")
            continue
        scale = short_side / min(image.size)
        if scale < 1:
            size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            image = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
        images.append((to_tensor(image)[0] * 255).round().to(torch.uint8))
    return Photos(images, skipped)


def random_batch(
    photos: Photos, batch: int, crop: int, generator: torch.Generator, max_zoom_out: float = 2.0
) -> Tensor:
    """`batch` random crops of `crop` px, each at a random scale and flipped half the time.

    Scaling down by up to `max_zoom_out` shows the decoder detail at the density a full
    picture has, not only close-ups.
    """
    out = torch.empty(batch, 3, crop, crop)
    for i in range(batch):
        index = int(torch.randint(len(photos), (1,), generator=generator))
        image = photos.images[index]
        h, w = image.shape[-2:]
        most = min(h, w) / crop  # the largest zoom-out that still fills a crop
        zoom = 1 + float(torch.rand((), generator=generator)) * (min(most, max_zoom_out) - 1)
        side = max(crop, round(crop * zoom))
        top = int(torch.randint(h - side + 1, (1,), generator=generator))
        left = int(torch.randint(w - side + 1, (1,), generator=generator))
        # Only the crop is converted to float: converting the whole photo for every crop
        # cost more than a GPU's training step.
        patch = image[:, top : top + side, left : left + side].float().div_(255).unsqueeze(0)
        if side != crop:
            patch = torch.nn.functional.interpolate(
                patch, size=(crop, crop), mode="bilinear", antialias=True, align_corners=False
            )
        if float(torch.rand((), generator=generator)) < 0.5:
            patch = patch.flip(-1)
        out[i] = patch[0].clamp(0, 1)
    return out
