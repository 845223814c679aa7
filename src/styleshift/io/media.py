"""What a path holds, a picture or a video: the one table every command asks.

A GIF is either. An animated one is a video (`styleshift video` reads and writes them);
a still one is a picture. A GIF that does not exist yet (an output to be written) counts
as a video, since only `styleshift video` writes GIFs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from PIL import Image

from .image import OUTPUT_FORMATS

Kind = Literal["image", "video"]

IMAGE_SUFFIXES = frozenset(OUTPUT_FORMATS)
VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi"})
EITHER_SUFFIXES = frozenset({".gif"})


def kind_of(path: str | os.PathLike[str]) -> Kind | None:
    """ "image", "video", or None for a file of neither kind; a folder is a video (its
    frames)."""
    p = Path(path)
    if p.is_dir():
        return "video"
    suffix = p.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    if suffix in EITHER_SUFFIXES:
        return "video" if _animated(p) else "image"
    return None


def _animated(path: Path) -> bool:
    if not path.exists():
        return True
    try:
        with Image.open(path) as image:
            return int(getattr(image, "n_frames", 1)) > 1
    except OSError:
        return False  # not readable as an image: the reader will say so by name
