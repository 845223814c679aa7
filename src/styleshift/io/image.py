"""Reading, converting, resizing and saving images.

Everything a user can get wrong here (a missing, corrupt or huge input; an output path
that cannot be written) raises :class:`~styleshift.core.errors.InputError` or
:class:`~styleshift.core.errors.OutputError` with a one-line message naming the file.

Loaded images are always mode ``"RGB"`` or ``"RGBA"``. A fully opaque alpha channel is
dropped (the image comes back as ``"RGB"``), so ``"RGBA"`` always means some pixel is
actually transparent and worth carrying through to the output.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, TypeAlias

import numpy as np
import numpy.typing as npt
import torch
from PIL import Image, ImageCms, ImageFile, ImageOps, PngImagePlugin, UnidentifiedImageError

from ..core.errors import InputError, OutputError, one_line
from .files import atomic_path, check_folder, exists_error, quoted

__all__ = [
    "ALPHA_FORMATS",
    "INPUT_FORMATS",
    "MAX_PIXELS",
    "OUTPUT_FORMATS",
    "ImageLike",
    "as_image",
    "check_output_path",
    "load_image",
    "read_metadata",
    "resize_long_side",
    "save_image",
    "scaled_size",
    "split_alpha",
    "to_image",
    "to_tensor",
]

INPUT_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "WebP", "TIFF", "BMP", "GIF")
"""Input formats, as named to users."""

# Pillow's names for INPUT_FORMATS. Restricting Image.open to these keeps exotic plugins
# (EPS hands files to Ghostscript, for one) away from untrusted files. The multi-picture
# JPEGs many cameras write (MPO) still open: Pillow's JPEG opener recognises them.
_PIL_INPUT_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "WEBP", "TIFF", "BMP", "GIF")

OUTPUT_FORMATS: dict[str, str] = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
}
"""Output file extension (lower case) -> Pillow format name."""

ALPHA_FORMATS: frozenset[str] = frozenset({"PNG", "WEBP", "TIFF"})
"""Pillow formats whose saved files keep an alpha channel."""

MAX_PIXELS: int = 89_478_485
"""Largest input (width * height) loaded by default: a decompression-bomb guard, equal to
Pillow's own default limit (above which Pillow warns)."""

ImageLike: TypeAlias = str | os.PathLike[str] | Image.Image | torch.Tensor
"""Anything :func:`as_image` accepts."""

# WebP and JPEG cannot encode sides longer than these; checking first gives a clear
# message instead of an opaque encoder error.
_MAX_SIDE: dict[str, int] = {"WEBP": 16383, "JPEG": 65500}

_SAVE_OPTIONS: dict[str, dict[str, Any]] = {
    # 4:4:4 chroma: stylised images are full of sharp colour edges that 4:2:0 smears.
    "JPEG": {"quality": 95, "subsampling": 0},
    "WEBP": {"quality": 95},
    "TIFF": {"compression": "tiff_lzw"},
    "PNG": {},
    "BMP": {},
}

_PILLOW_PIXELS = re.compile(r"\((\d+) pixels\)")


_q = quoted


def _formats_phrase() -> str:
    return ", ".join(INPUT_FORMATS[:-1]) + " or " + INPUT_FORMATS[-1]


def _fspath(path: str | os.PathLike[str], what: str) -> str:
    name = os.fspath(path)
    if not isinstance(name, str):
        raise InputError(f"{what} path {name!r} must be text, not bytes; pass it as a str")
    return name


@contextlib.contextmanager
def _bomb_warnings_as_errors() -> Iterator[None]:
    # Pillow only warns between MAX_IMAGE_PIXELS and twice that; raising instead keeps
    # its guard in force for this call without touching global settings.
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield


def _too_large(what: str, name: str, size: str, limit: int) -> InputError:
    return InputError(
        f"{what} {_q(name)} is {size} pixels, more than the limit of {limit:,}; "
        "resize it to a smaller size first"
    )


def _pillow_too_large(what: str, name: str, exc: Exception, max_pixels: int) -> InputError:
    # Pillow stops before the size is known to us; its message carries the pixel count.
    pillow_limit = Image.MAX_IMAGE_PIXELS
    limit = max_pixels if pillow_limit is None else min(max_pixels, pillow_limit)
    found = _PILLOW_PIXELS.search(str(exc))
    if found is None:
        return InputError(
            f"{what} {_q(name)} has more than {limit:,} pixels; resize it to a smaller size first"
        )
    return _too_large(what, name, f"{int(found.group(1)):,}", limit)


@contextlib.contextmanager
def _open_image(
    path: str | os.PathLike[str], what: str, max_pixels: int
) -> Iterator[ImageFile.ImageFile]:
    """Open an image file lazily (header only), with every failure as an InputError."""
    name = _fspath(path, what)
    p = Path(name)
    if p.is_dir():
        raise InputError(f"{what} {_q(name)} is a directory; give the path of an image file")
    # A FIFO or device would block or stream forever instead of failing.
    if p.exists() and not p.is_file():
        raise InputError(f"{what} {_q(name)} is not a regular file; give the path of an image")
    try:
        fp: IO[bytes] = p.open("rb")
    except (FileNotFoundError, NotADirectoryError):
        raise InputError(f"{what} {_q(name)} not found; check the path") from None
    except PermissionError:
        raise InputError(
            f"cannot read {what} {_q(name)}: permission denied; check the file's permissions"
        ) from None
    except OSError as e:
        raise InputError(
            f"cannot read {what} {_q(name)}: {one_line(e.strerror or e)}; check the file"
        ) from None
    with fp:
        try:
            with _bomb_warnings_as_errors():
                im = Image.open(fp, formats=_PIL_INPUT_FORMATS)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise _pillow_too_large(what, name, e, max_pixels) from None
        except UnidentifiedImageError:
            raise InputError(
                f"{what} {_q(name)} is not a supported image; use a {_formats_phrase()} file"
            ) from None
        except Exception as e:  # Pillow's plugins fail on bad headers in many ways
            raise InputError(
                f"{what} {_q(name)} is corrupt ({one_line(e)}); re-export or re-download it"
            ) from None
        width, height = im.size
        if width * height > max_pixels:
            raise _too_large(what, name, f"{width}x{height} = {width * height:,}", max_pixels)
        yield im


def load_image(
    path: str | os.PathLike[str], *, what: str = "image", max_pixels: int = MAX_PIXELS
) -> Image.Image:
    """Load an image file fully into memory as an upright ``"RGB"`` or ``"RGBA"`` image.

    ``what`` names the image's role in error messages ("content image"). Multi-frame
    files (GIF, APNG, WebP, TIFF) give their first frame; EXIF orientation is applied,
    and an embedded colour profile is converted to sRGB.
    The size is checked against ``max_pixels`` from the header, before decoding.
    """
    name = _fspath(path, what)
    with _open_image(path, what, max_pixels) as im:
        try:
            with _bomb_warnings_as_errors():
                # Pillow leaves LOAD_TRUNCATED_IMAGES off, so a short file raises here.
                im.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise _pillow_too_large(what, name, e, max_pixels) from None
        except MemoryError:
            width, height = im.size
            raise InputError(
                f"not enough memory to load {what} {_q(name)} ({width}x{height}); "
                "resize it to a smaller size first"
            ) from None
        except Exception as e:  # decoders report damage as OSError, SyntaxError, ...
            raise InputError(
                f"{what} {_q(name)} is truncated or corrupt ({one_line(e)}); "
                "re-export or re-download it"
            ) from None
        try:
            upright = ImageOps.exif_transpose(im)
        except Exception:
            # A damaged EXIF block should not make otherwise good pixels unusable.
            upright = im.copy()
    # exif_transpose already returned a new image, detached from the file.
    return _normalise(upright, what, name, copy=False)


def _gray16_to_8(arr: npt.NDArray[Any]) -> npt.NDArray[np.uint8]:
    return (arr.astype(np.uint32) >> 8).astype(np.uint8)


def _range_to_8(arr: npt.NDArray[Any]) -> npt.NDArray[np.uint8]:
    values = np.nan_to_num(arr.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    scaled: npt.NDArray[np.float64] = np.floor((values - low) / (high - low) * 255.0 + 0.5)
    return scaled.astype(np.uint8)


def _high_depth_to_rgb(im: Image.Image) -> Image.Image:
    """Map 16-bit, 32-bit integer and float grayscale to 8-bit RGB without clipping."""
    arr = np.asarray(im)
    if im.mode.startswith("I;16"):
        out = _gray16_to_8(arr)
    elif im.mode == "I":
        # Pillow holds 16-bit data in "I" images too; anything outside that range
        # is not 16-bit data, so it is stretched from its own range.
        if arr.size and int(arr.min()) >= 0 and int(arr.max()) <= 0xFFFF:
            out = _gray16_to_8(arr)
        else:
            out = _range_to_8(arr)
    else:  # "F"
        finite = arr[np.isfinite(arr)]
        if finite.size and float(finite.min()) >= 0.0 and float(finite.max()) <= 1.0:
            # Already the usual 0..1 float convention: keep absolute brightness.
            scaled = np.nan_to_num(arr, nan=0.0, posinf=1.0, neginf=0.0).clip(0.0, 1.0)
            out = np.floor(scaled * 255.0 + 0.5).astype(np.uint8)
        else:
            out = _range_to_8(arr)
    return Image.fromarray(np.ascontiguousarray(out)).convert("RGB")


def _drop_opaque_alpha(im: Image.Image) -> Image.Image:
    if im.mode == "RGBA" and im.getchannel("A").getextrema() == (255, 255):
        return im.convert("RGB")
    return im


def _to_srgb(im: Image.Image) -> Image.Image | None:
    """``im`` converted from its embedded colour profile to sRGB, or None where it has no
    profile, an sRGB one, or one that cannot be applied to it.

    The network and the saved output are sRGB: an Adobe RGB photo read as sRGB comes out
    washed out, and a CMYK one without its profile in the wrong colours.
    """
    icc = im.info.get("icc_profile")
    if not icc or im.mode not in ("RGB", "RGBA", "CMYK"):
        return None
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if "srgb" in ImageCms.getProfileDescription(source).lower():
            return None  # already what everything downstream assumes
        out = ImageCms.profileToProfile(
            im,
            source,
            ImageCms.createProfile("sRGB"),
            outputMode="RGBA" if im.mode == "RGBA" else "RGB",
        )
    except (ImageCms.PyCMSError, OSError, ValueError):
        return None  # a damaged profile should not make good pixels unusable
    return out


def _normalise(im: Image.Image, what: str, name: str, *, copy: bool = True) -> Image.Image:
    """Return ``im`` as ``"RGB"`` or ``"RGBA"`` in sRGB; a new image unless ``copy`` is
    false."""
    srgb = _to_srgb(im)
    if srgb is not None:
        return _drop_opaque_alpha(srgb)
    mode = im.mode
    try:
        if mode.startswith("I;16") or mode in ("I", "F"):
            return _high_depth_to_rgb(im)
        if mode == "RGB":
            return im.copy() if copy else im
        if mode in ("La", "RGBa"):
            # Premultiplied: un-premultiply before the alpha is read separately.
            im = im.convert("LA" if mode == "La" else "RGBA")
        if im.has_transparency_data:
            return _drop_opaque_alpha(im.convert("RGBA"))
        return im.convert("RGB")
    except (ValueError, OSError) as e:
        raise InputError(
            f"{what} {_q(name)} has pixel mode {mode!r}, which cannot be converted to RGB "
            f"({one_line(e)}); save it as an 8-bit RGB image"
        ) from None


def _tensor_to_image(t: torch.Tensor, what: str) -> Image.Image:
    shapes = "(3, H, W), (1, 3, H, W), (4, H, W), (1, 4, H, W) or (H, W)"
    shape = tuple(t.shape)
    if not t.is_floating_point():
        raise InputError(
            f"{what} tensor has dtype {t.dtype}; expected floats in 0..1 (divide 8-bit data by 255)"
        )
    x = t.detach()
    if x.dim() == 4 and x.shape[0] == 1:
        x = x[0]
    ok_shape = (x.dim() == 3 and x.shape[0] in (3, 4)) or x.dim() == 2
    if not ok_shape or x.numel() == 0:
        raise InputError(f"{what} tensor has shape {shape}; expected {shapes}")
    x = x.to("cpu", torch.float32)
    if not bool(torch.isfinite(x).all()):
        raise InputError(f"{what} tensor contains NaN or infinite values; expected 0..1")
    # Slight overshoot from optimisation is normal; far outside 0..1 means wrong scale.
    if float(x.min()) < -0.5 or float(x.max()) > 1.5:
        raise InputError(
            f"{what} tensor has values from {float(x.min()):.3g} to {float(x.max()):.3g}; "
            "expected 0..1 (divide 0..255 data by 255)"
        )
    arr = torch.floor(x.clamp(0.0, 1.0) * 255.0 + 0.5).to(torch.uint8)
    if arr.dim() == 3:
        arr = arr.permute(1, 2, 0)
    return Image.fromarray(np.ascontiguousarray(arr.numpy()))


def as_image(x: ImageLike, *, what: str = "image", max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Turn a path, PIL image or 0..1 float tensor into a new ``"RGB"``/``"RGBA"`` image.

    Paths go through :func:`load_image` (``max_pixels`` applies to them only). PIL images
    get the same mode normalisation on a copy, but no EXIF rotation, as in-memory
    images may already be upright. Tensors: (3,H,W), (1,3,H,W), (4,H,W), (1,4,H,W)
    (4 = RGBA) or (H,W) grayscale.
    """
    if isinstance(x, (str, os.PathLike)):
        return load_image(x, what=what, max_pixels=max_pixels)
    if isinstance(x, Image.Image):
        label = f"<in-memory {what}>"
        try:
            x.load()
        except Exception as e:  # a lazily opened image may still fail to decode
            raise InputError(
                f"{what} {label} could not be decoded ({one_line(e)}); load it again"
            ) from None
        return _normalise(x, what, label)
    if isinstance(x, torch.Tensor):
        return _normalise(_tensor_to_image(x, what), what, f"<{what} tensor>", copy=False)
    raise InputError(
        f"{what} must be a file path, a PIL image or a tensor, not {type(x).__name__}; "
        "pass the path of an image file"
    )


def split_alpha(img: Image.Image) -> tuple[Image.Image, Image.Image | None]:
    """Split into an ``"RGB"`` image and an ``"L"`` alpha, or ``None`` if fully opaque."""
    if img.mode == "RGB":
        return img.copy(), None
    if img.mode != "RGBA":
        img = _normalise(img, "image", "<in-memory image>", copy=False)
        if img.mode == "RGB":
            return img, None
    alpha = img.getchannel("A")
    if alpha.getextrema() == (255, 255):
        alpha_or_none: Image.Image | None = None
    else:
        alpha_or_none = alpha
    return img.convert("RGB"), alpha_or_none


def to_tensor(img: Image.Image) -> torch.Tensor:
    """Convert an image to a (1, 3, H, W) float32 tensor in 0..1.

    Other modes are converted to RGB first, which drops alpha: use :func:`split_alpha`
    beforehand to keep it.
    """
    rgb = img if img.mode == "RGB" else img.convert("RGB")
    arr = np.array(rgb, dtype=np.uint8)
    chw = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))
    return chw.unsqueeze(0).to(torch.float32).div_(255.0)


def to_image(t: torch.Tensor) -> Image.Image:
    """Convert a (1, 3, H, W) or (3, H, W) tensor (any device) to an ``"RGB"`` image.

    Values are clamped to 0..1 (NaN becomes 0) and rounded half up to 8 bits.
    """
    x = t.detach()
    if x.dim() == 4 and x.shape[0] == 1:
        x = x[0]
    if x.dim() != 3 or x.shape[0] != 3:
        raise ValueError(f"expected a (1, 3, H, W) or (3, H, W) tensor, got {tuple(t.shape)}")
    x = x.to("cpu", torch.float32).nan_to_num(nan=0.0, posinf=1.0, neginf=0.0)
    arr = torch.floor(x.clamp(0.0, 1.0) * 255.0 + 0.5).to(torch.uint8).permute(1, 2, 0)
    return Image.fromarray(np.ascontiguousarray(arr.numpy()))


def scaled_size(size: tuple[int, int], long_side: int) -> tuple[int, int]:
    """Scale ``(width, height)`` so the longer side is ``long_side``, keeping the aspect.

    The shorter side is rounded to the nearest pixel and is at least 1.
    """
    width, height = size
    if width < 1 or height < 1:
        raise ValueError(f"image size must be at least 1x1, got {width}x{height}")
    if long_side < 1:
        raise ValueError(f"long side must be at least 1 pixel, got {long_side}")
    if width >= height:
        return long_side, max(1, round(height * long_side / width))
    return max(1, round(width * long_side / height)), long_side


def long_side_for(size: tuple[int, int], long_side: int, short_side: int) -> int:
    """The long side at which an image of ``(width, height)`` is at least ``long_side``
    long and at least ``short_side`` across: a network's pooling needs the second."""
    longer, shorter = max(size), min(size)
    return max(long_side, -(-short_side * longer // shorter))


def resize_long_side(img: Image.Image, long_side: int) -> Image.Image:
    """Resize with Lanczos so the longer side is ``long_side``; always returns a new image."""
    target = scaled_size(img.size, long_side)
    if target == img.size:
        return img.copy()
    # For big reductions, a box pre-shrink then Lanczos is much faster and looks the same.
    gap = 3.0 if max(img.size) > long_side else None
    return img.resize(target, Image.Resampling.LANCZOS, reducing_gap=gap)


def _extensions_phrase() -> str:
    return ", ".join(sorted(OUTPUT_FORMATS))


def check_output_path(path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Check that an image can be saved at ``path``, before any work is done.

    Raises OutputError for an unknown extension, a missing or unwritable folder, a
    directory at ``path``, or an existing file when ``overwrite`` is false.
    """
    name = os.fspath(path)
    if not isinstance(name, str):
        raise OutputError(f"output path {name!r} must be text, not bytes; pass it as a str")
    p = Path(name)
    if p.is_dir():
        raise OutputError(
            f"output {_q(name)} is a directory; give a file name such as {_q(str(p / 'out.png'))}"
        )
    suffix = p.suffix
    if suffix.lower() not in OUTPUT_FORMATS:
        if not suffix:
            raise OutputError(
                f"output {_q(name)} has no extension; add one of {_extensions_phrase()} "
                "to choose the format"
            )
        raise OutputError(
            f"unknown output extension {_q(suffix)} for {_q(name)}; "
            f"use one of {_extensions_phrase()}"
        )
    check_folder(p)
    if not overwrite and os.path.lexists(p):
        raise exists_error(name)
    return p


def _validate_png_keys(metadata: Mapping[str, str]) -> None:
    for key in metadata:
        try:
            key.encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError(f"PNG metadata key {key!r} must be Latin-1 text") from None
        if not 1 <= len(key) <= 79:
            raise ValueError(f"PNG metadata key {key!r} must be 1 to 79 characters long")


def save_image(
    img: Image.Image,
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    metadata: Mapping[str, str] | None = None,
    alpha: Image.Image | None = None,
) -> Path:
    """Save atomically in the format given by the extension; return the path written.

    ``alpha`` (or the alpha of an ``"RGBA"`` ``img``) is kept for PNG, WebP and TIFF and
    dropped for JPEG and BMP. ``metadata`` is stored as PNG iTXt chunks and ignored for
    other formats. The file appears complete or not at all; without ``overwrite`` an
    existing file is never replaced: the picture goes beside it as NAME-1 (or the first
    free number) and an OutputError says so, since a command that checked its output
    before its work has nothing else to save it in.
    """
    out = check_output_path(path, overwrite=True)  # the format and folder; the name below
    name = os.fspath(path)
    fmt = OUTPUT_FORMATS[out.suffix.lower()]

    rgb, own_alpha = split_alpha(img)
    if alpha is None:
        alpha = own_alpha
    if fmt in ALPHA_FORMATS and alpha is not None:
        if alpha.mode != "L":
            alpha = alpha.convert("L")
        if alpha.size != rgb.size:
            alpha = alpha.resize(rgb.size, Image.Resampling.LANCZOS)
        rgb.putalpha(alpha)
    to_save = rgb

    max_side = _MAX_SIDE.get(fmt)
    if max_side is not None and max(to_save.size) > max_side:
        width, height = to_save.size
        raise OutputError(
            f"cannot write {_q(name)}: {width}x{height} is too large for {fmt} (at most "
            f"{max_side} pixels a side); use .png or .tiff instead"
        )

    options = dict(_SAVE_OPTIONS[fmt])
    if fmt == "PNG" and metadata:
        _validate_png_keys(metadata)
        info = PngImagePlugin.PngInfo()
        for key, value in metadata.items():
            info.add_itxt(key, str(value))
        options["pnginfo"] = info

    try:
        with atomic_path(out, overwrite=overwrite, name=name) as tmp, open(tmp, "wb") as f:
            to_save.save(f, format=fmt, **options)
    except ValueError as e:  # Pillow reports some encoder failures this way
        raise OutputError(
            f"could not encode {_q(name)} as {fmt} ({one_line(e)}); try .png instead"
        ) from None
    return out


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """Return the text chunks of a PNG file (an empty dict for other formats)."""
    name = _fspath(path, "image")
    with _open_image(path, "image", MAX_PIXELS) as im:
        if not isinstance(im, PngImagePlugin.PngImageFile):
            return {}
        try:
            with _bomb_warnings_as_errors():
                # Chunks after the pixel data are only found by reading through it.
                text = im.text
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise _pillow_too_large("image", name, e, MAX_PIXELS) from None
        except Exception as e:
            raise InputError(
                f"image {_q(name)} is truncated or corrupt ({one_line(e)}); "
                "re-export or re-download it"
            ) from None
        return {str(key): str(value) for key, value in text.items()}


def as_list(styles: ImageLike | Sequence[ImageLike]) -> list[ImageLike]:
    """One style image or several, as a list."""
    if isinstance(styles, (str, os.PathLike, Image.Image, torch.Tensor)):
        return [styles]
    return list(styles)
