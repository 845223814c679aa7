"""Tests for styleshift.io.image: loading, conversion, resizing and atomic saving."""

from __future__ import annotations

import errno
import io
import json
import os
import stat
import struct
import warnings
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image, ImageCms, ImageFile

from styleshift.core.errors import InputError, OutputError
from styleshift.io import image as im


def _one_line(exc: pytest.ExceptionInfo[Exception], *fragments: str) -> str:
    message = str(exc.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


def _save(img: Image.Image, path: Path, **params: Any) -> Path:
    img.save(path, **params)
    return path


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _fake_png(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims width x height but whose pixel data is a few bytes."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\0" * 64))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body + _chunk(b"IEND", b""))
    return path


@pytest.fixture
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Record (and refuse) any attempt to decode pixel data."""
    calls: list[object] = []

    def refuse(self: ImageFile.ImageFile) -> None:
        calls.append(self)
        raise AssertionError("pixel data was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)
    return calls


# --- load_image: errors ----------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.png"
    with pytest.raises(InputError) as e:
        im.load_image(path, what="content image")
    _one_line(e, "content image", "nope.png", "not found")


def test_name_with_newline_stays_one_line(tmp_path: Path) -> None:
    with pytest.raises(InputError) as e:
        im.load_image(tmp_path / "bad\nname.png")
    _one_line(e, "bad\\nname.png")


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError) as e:
        im.load_image(tmp_path, what="style image")
    _one_line(e, "style image", str(tmp_path), "directory")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(InputError) as e:
        im.load_image(fifo)
    _one_line(e, "pipe.png", "not a regular file")


def test_unreadable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _save(Image.new("RGB", (4, 4)), tmp_path / "secret.png")
    if os.geteuid() == 0:  # root reads anything, so simulate the refusal
        real_open = Path.open

        def deny(self: Path, *args: Any, **kwargs: Any) -> Any:
            if self.name == "secret.png":
                raise PermissionError(errno.EACCES, "Permission denied", str(self))
            return real_open(self, *args, **kwargs)

        monkeypatch.setattr(Path, "open", deny)
    else:
        path.chmod(0)
    with pytest.raises(InputError) as e:
        im.load_image(path)
    _one_line(e, "secret.png", "permission denied")


def test_text_file_is_not_an_image(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("just some text\n")
    with pytest.raises(InputError) as e:
        im.load_image(path)
    _one_line(e, "notes.png", "not a supported image", "PNG", "JPEG", "WebP", "GIF")


def test_unsupported_pillow_format_is_refused(tmp_path: Path) -> None:
    # Pillow reads PPM, but only the listed formats are accepted.
    path = _save(Image.new("RGB", (4, 4)), tmp_path / "x.ppm")
    with pytest.raises(InputError) as e:
        im.load_image(path)
    _one_line(e, "x.ppm", "not a supported image")


@pytest.mark.parametrize("name", ["content/tubingen.jpg", "content/kodim23_parrots.png"])
def test_truncated_real_image(images: Path, tmp_path: Path, name: str) -> None:
    data = (images / name).read_bytes()
    cut = tmp_path / ("cut" + Path(name).suffix)
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError) as e:
        im.load_image(cut)
    _one_line(e, cut.name, "truncated")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_too_large_by_max_pixels(tmp_path: Path) -> None:
    path = _save(Image.new("RGB", (40, 30)), tmp_path / "big.png")
    with pytest.raises(InputError) as e:
        im.load_image(path, max_pixels=1000)
    _one_line(e, "big.png", "40x30", "1,200", "1,000", "resize")
    assert im.load_image(path, max_pixels=1200).size == (40, 30)


def test_huge_header_is_refused_before_decoding(tmp_path: Path, no_decoding: list[object]) -> None:
    # 400 Mpx is past Pillow's own hard limit, so Pillow refuses it while opening.
    path = _fake_png(tmp_path / "bomb.png", 20000, 20000)
    with pytest.raises(InputError) as e:
        im.load_image(path)
    _one_line(e, "bomb.png", "400,000,000", f"{_effective_limit():,}", "resize")
    assert no_decoding == []


def _effective_limit() -> int:
    pillow = Image.MAX_IMAGE_PIXELS
    return im.MAX_PIXELS if pillow is None else min(im.MAX_PIXELS, pillow)


def test_pillow_warning_band_is_refused(tmp_path: Path, no_decoding: list[object]) -> None:
    # 90 Mpx: under MAX_PIXELS but over Pillow's default warning limit (~89.5 Mpx), which
    # is turned into an error rather than ignored.
    path = _fake_png(tmp_path / "band.png", 10000, 9000)
    with pytest.raises(InputError) as e:
        im.load_image(path)
    _one_line(e, "band.png", "90,000,000", f"{_effective_limit():,}")
    assert no_decoding == []


def test_large_header_under_pillow_limit_is_refused_before_decoding(
    tmp_path: Path, no_decoding: list[object]
) -> None:
    path = _fake_png(tmp_path / "wide.png", 10000, 5000)
    with pytest.raises(InputError) as e:
        im.load_image(path, max_pixels=1_000_000)
    _one_line(e, "wide.png", "10000x5000", "1,000,000")
    assert no_decoding == []


@pytest.mark.parametrize("size", [(40, 40), (100, 100)])  # Pillow's warning, then its error
def test_pillow_bomb_guard_becomes_input_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: tuple[int, int]
) -> None:
    path = _save(Image.new("RGB", size), tmp_path / "guarded.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    filters_before = list(warnings.filters)
    with pytest.raises(InputError) as e:
        im.load_image(path)
    _one_line(e, "guarded.png", f"{size[0] * size[1]:,}", "1,000", "resize")
    assert warnings.filters == filters_before


def test_pillow_globals_untouched() -> None:
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    assert Image.MAX_IMAGE_PIXELS is not None


# --- load_image: content -----------------------------------------------------------------


def test_real_images(images: Path) -> None:
    photo = im.load_image(images / "content/tubingen.jpg", what="content image")
    assert (photo.mode, photo.size) == ("RGB", (1024, 768))
    style = im.load_image(images / "style/vangogh_starry_night.jpg", what="style image")
    assert (style.mode, style.size) == ("RGB", (1024, 640))
    gray = im.load_image(str(images / "content/camera_gray.png"))
    assert gray.mode == "RGB"
    r, g, b = gray.split()
    assert r.tobytes() == g.tobytes() == b.tobytes()
    assert r.tobytes() == Image.open(images / "content/camera_gray.png").tobytes()


def test_exif_orientation(tmp_path: Path) -> None:
    base = Image.new("RGB", (40, 20), (0, 0, 255))
    base.paste((255, 0, 0), (0, 0, 6, 6))  # marker in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    path = _save(base, tmp_path / "rotated.jpg", exif=exif.tobytes(), quality=95)
    loaded = im.load_image(path)
    assert loaded.size == (20, 40)
    red, _, blue = loaded.getpixel((17, 2))  # type: ignore[misc]
    assert red > 200 and blue < 60  # the marker is now top-right
    red, _, blue = loaded.getpixel((2, 2))  # type: ignore[misc]
    assert red < 60 and blue > 200


def test_animated_gif_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)
    assert getattr(Image.open(path), "n_frames", 1) == 3
    loaded = im.load_image(path)
    assert (loaded.mode, loaded.size) == ("RGB", (8, 8))
    assert loaded.getpixel((4, 4)) == (255, 0, 0)


def _palette_image(transparent: bool) -> Image.Image:
    pal = Image.new("P", (4, 2))
    pal.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    pal.paste(1, (2, 0, 4, 2))
    if transparent:
        pal.info["transparency"] = 1
    return pal


@pytest.mark.parametrize(
    ("make", "mode", "pixel"),
    [
        (lambda: Image.new("1", (4, 2), 1), "RGB", (255, 255, 255)),
        (lambda: Image.new("L", (4, 2), 77), "RGB", (77, 77, 77)),
        (lambda: _palette_image(False), "RGB", (255, 0, 0)),
        (lambda: _palette_image(True), "RGBA", (255, 0, 0, 255)),
        (lambda: Image.new("LA", (4, 2), (90, 128)), "RGBA", (90, 90, 90, 128)),
        (lambda: Image.new("RGBA", (4, 2), (1, 2, 3, 4)), "RGBA", (1, 2, 3, 4)),
        (lambda: Image.new("RGBA", (4, 2), (1, 2, 3, 255)), "RGB", (1, 2, 3)),  # opaque
        (lambda: Image.new("CMYK", (4, 2), (0, 255, 255, 0)), "RGB", (255, 0, 0)),
        (lambda: Image.new("HSV", (4, 2), (0, 255, 255)), "RGB", (255, 0, 0)),
        (lambda: Image.new("YCbCr", (4, 2), (128, 128, 128)), "RGB", (128, 128, 128)),
    ],
)
def test_modes_in_memory(make: Any, mode: str, pixel: tuple[int, ...]) -> None:
    source = make()
    out = im.as_image(source)
    assert out.mode == mode and out.size == (4, 2)
    assert out.getpixel((0, 0)) == pixel
    assert out is not source


def test_palette_with_transparency_file(tmp_path: Path) -> None:
    path = _save(_palette_image(True), tmp_path / "pal.png")
    assert Image.open(path).mode == "P"
    out = im.load_image(path)
    assert out.mode == "RGBA"
    assert out.getpixel((0, 0)) == (255, 0, 0, 255)
    assert out.getpixel((3, 1))[3] == 0  # type: ignore[index]


def test_palette_gif_transparency(tmp_path: Path) -> None:
    path = _save(_palette_image(True), tmp_path / "pal.gif", transparency=1)
    out = im.load_image(path)
    assert out.mode == "RGBA"
    assert out.getpixel((3, 1))[3] == 0  # type: ignore[index]


def test_la_and_pa_files(tmp_path: Path) -> None:
    la = im.load_image(_save(Image.new("LA", (3, 3), (10, 20)), tmp_path / "la.png"))
    assert (la.mode, la.getpixel((1, 1))) == ("RGBA", (10, 10, 10, 20))
    pa = Image.new("PA", (3, 3))
    pa.putpalette([9, 8, 7] * 256)
    out = im.as_image(pa)
    assert out.mode == "RGBA" and out.getpixel((0, 0)) == (9, 8, 7, 0)


def test_premultiplied_modes() -> None:
    rgba = im.as_image(Image.new("RGBA", (2, 2), (200, 100, 50, 128)).convert("RGBa"))
    assert rgba.mode == "RGBA" and rgba.getpixel((0, 0))[3] == 128  # type: ignore[index]
    la = im.as_image(Image.new("LA", (2, 2), (200, 128)).convert("La"))
    assert la.mode == "RGBA" and la.getpixel((0, 0))[3] == 128  # type: ignore[index]


def test_lab_to_rgb() -> None:
    white = im.as_image(Image.new("LAB", (2, 2), (255, 128, 128)))
    assert white.mode == "RGB"
    assert all(v >= 250 for v in white.getpixel((0, 0)))  # type: ignore[union-attr]


def test_cmyk_jpeg(tmp_path: Path) -> None:
    path = _save(Image.new("CMYK", (16, 8), (0, 255, 255, 0)), tmp_path / "cmyk.jpg")
    assert Image.open(path).mode == "CMYK"
    out = im.load_image(path)
    assert out.mode == "RGB" and out.size == (16, 8)
    r, g, b = out.getpixel((8, 4))  # type: ignore[misc]
    assert r > 240 and g < 15 and b < 15


SIXTEEN = np.array([[65535, 32768, 256, 0]], dtype=np.uint16)
EIGHT = [255, 128, 1, 0]  # value >> 8: scaled, not clipped


def _gray_values(img: Image.Image) -> list[int]:
    assert img.mode == "RGB"
    arr = np.asarray(img)
    assert (arr[..., 0] == arr[..., 1]).all() and (arr[..., 0] == arr[..., 2]).all()
    return [int(v) for v in arr[0, :, 0]]


def test_16_bit_png(tmp_path: Path) -> None:
    path = _save(Image.fromarray(SIXTEEN), tmp_path / "deep.png")
    assert Image.open(path).mode == "I;16"
    assert _gray_values(im.load_image(path)) == EIGHT


def test_16_bit_tiff(tmp_path: Path) -> None:
    path = _save(Image.fromarray(SIXTEEN), tmp_path / "deep.tif")
    assert _gray_values(im.load_image(path)) == EIGHT


@pytest.mark.parametrize(
    "source",
    [
        Image.fromarray(SIXTEEN.astype(">u2")),  # "I;16B"
        Image.fromarray(SIXTEEN.astype(np.int32)),  # "I"
    ],
)
def test_16_bit_in_memory(source: Image.Image) -> None:
    assert source.mode in ("I;16B", "I")
    assert _gray_values(im.as_image(source)) == EIGHT


def test_int32_outside_16_bit_is_stretched() -> None:
    source = Image.fromarray(np.array([[-1000, 0, 1000]], dtype=np.int32))
    assert _gray_values(im.as_image(source)) == [0, 128, 255]


def test_float_modes() -> None:
    unit = Image.fromarray(np.array([[0.0, 0.5, 1.0, 0.25]], dtype=np.float32))
    assert unit.mode == "F"
    assert _gray_values(im.as_image(unit)) == [0, 128, 255, 64]
    wide = Image.fromarray(np.array([[-1.0, 1.0, 3.0]], dtype=np.float32))
    assert _gray_values(im.as_image(wide)) == [0, 128, 255]
    flat = Image.fromarray(np.full((1, 3), 7.0, dtype=np.float32))
    assert _gray_values(im.as_image(flat)) == [0, 0, 0]


def test_float_tiff(tmp_path: Path) -> None:
    source = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))
    path = _save(source, tmp_path / "float.tif")
    assert _gray_values(im.load_image(path)) == [0, 128, 255]


# --- as_image -------------------------------------------------------------------------------


def test_as_image_paths(tmp_path: Path) -> None:
    path = _save(Image.new("RGB", (5, 3), (1, 2, 3)), tmp_path / "p.png")
    for x in (path, str(path)):
        out = im.as_image(x)
        assert (out.mode, out.size, out.getpixel((0, 0))) == ("RGB", (5, 3), (1, 2, 3))
    with pytest.raises(InputError) as e:
        im.as_image(tmp_path / "gone.png", what="style image")
    _one_line(e, "style image", "gone.png")


def test_as_image_pil_is_a_copy() -> None:
    source = Image.new("RGB", (3, 3), (5, 5, 5))
    out = im.as_image(source)
    assert out is not source
    out.putpixel((0, 0), (9, 9, 9))
    assert source.getpixel((0, 0)) == (5, 5, 5)


def test_as_image_lazy_pil_image(images: Path) -> None:
    lazy = Image.open(images / "content/rocket.jpg")
    assert im.as_image(lazy).size == (640, 427)


@pytest.mark.parametrize(
    ("shape", "mode"),
    [((3, 5, 7), "RGB"), ((1, 3, 5, 7), "RGB"), ((4, 5, 7), "RGBA"), ((1, 4, 5, 7), "RGBA")],
)
def test_as_image_tensors(shape: tuple[int, ...], mode: str) -> None:
    t = torch.full(shape, 0.5)
    t[..., -1, :, :] = 0.25  # last channel: blue, or alpha for RGBA
    out = im.as_image(t)
    assert (out.mode, out.size) == (mode, (7, 5))
    expected = (128, 128, 64) if mode == "RGB" else (128, 128, 128, 64)
    assert out.getpixel((0, 0)) == expected


def test_as_image_gray_tensor_and_opaque_alpha() -> None:
    gray = im.as_image(torch.full((5, 7), 1.0, requires_grad=True))
    assert (gray.mode, gray.size, gray.getpixel((0, 0))) == ("RGB", (7, 5), (255, 255, 255))
    opaque = im.as_image(torch.ones(4, 2, 2))
    assert opaque.mode == "RGB"


@pytest.mark.parametrize(
    "bad",
    [
        torch.zeros(2, 5, 5),
        torch.zeros(1, 1, 5, 5),
        torch.zeros(2, 3, 5, 5),
        torch.zeros(5),
        torch.zeros(3, 0, 5),
        torch.zeros(3, 5, 5, dtype=torch.uint8),
        torch.full((3, 5, 5), float("nan")),
        torch.full((3, 5, 5), 200.0),
        b"bytes.png",
        42,
        [[0.0]],
    ],
    ids=lambda b: type(b).__name__ + str(getattr(b, "shape", "")),
)
def test_as_image_refuses(bad: Any) -> None:
    with pytest.raises(InputError) as e:
        im.as_image(bad, what="content image")
    _one_line(e, "content image")


# --- split_alpha, to_tensor, to_image --------------------------------------------------------


def test_split_alpha() -> None:
    rgb, alpha = im.split_alpha(Image.new("RGB", (3, 2), (1, 2, 3)))
    assert rgb.mode == "RGB" and alpha is None
    rgb, alpha = im.split_alpha(Image.new("RGBA", (3, 2), (1, 2, 3, 40)))
    assert rgb.mode == "RGB" and rgb.getpixel((0, 0)) == (1, 2, 3)
    assert alpha is not None and alpha.mode == "L" and alpha.getpixel((0, 0)) == 40
    assert im.split_alpha(Image.new("RGBA", (3, 2), (1, 2, 3, 255)))[1] is None
    rgb, alpha = im.split_alpha(Image.new("LA", (3, 2), (7, 9)))
    assert rgb.getpixel((0, 0)) == (7, 7, 7) and alpha is not None


def test_tensor_round_trip_exact() -> None:
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, size=(13, 17, 3), dtype=np.uint8)
    arr[0, 0], arr[0, 1] = 0, 255
    img = Image.fromarray(arr)
    t = im.to_tensor(img)
    assert t.shape == (1, 3, 13, 17) and t.dtype == torch.float32
    assert float(t.min()) == 0.0 and float(t.max()) == 1.0
    assert np.array_equal(np.asarray(im.to_image(t)), arr)
    assert np.array_equal(np.asarray(im.to_image(t[0])), arr)


def test_to_tensor_drops_alpha() -> None:
    t = im.to_tensor(Image.new("RGBA", (2, 2), (255, 0, 0, 0)))
    assert t.shape == (1, 3, 2, 2) and t[0, :, 0, 0].tolist() == [1.0, 0.0, 0.0]


def test_to_image_rounds_and_clamps() -> None:
    values = [0.49 / 255, 0.5 / 255, 0.51 / 255, 10.4 / 255, 10.6 / 255, -0.3, 1.7, float("nan")]
    t = torch.tensor(values, dtype=torch.float32).view(1, 1, -1).expand(3, 1, -1)
    out = np.asarray(im.to_image(t))[0, :, 0]
    assert out.tolist() == [0, 1, 1, 10, 11, 0, 255, 0]


def test_to_image_detaches_grad() -> None:
    t = torch.rand(1, 3, 4, 4, requires_grad=True)
    assert im.to_image(t).size == (4, 4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_to_image_from_cuda() -> None:
    t = torch.rand(1, 3, 4, 6, device="cuda")
    assert np.array_equal(np.asarray(im.to_image(t)), np.asarray(im.to_image(t.cpu())))


@pytest.mark.parametrize("shape", [(1, 4, 2, 2), (2, 3, 2, 2), (3, 2), (1, 3, 2)])
def test_to_image_bad_shape(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError):
        im.to_image(torch.zeros(shape))


# --- scaled_size, resize_long_side ----------------------------------------------------------


@given(
    w=st.integers(1, 20000),
    h=st.integers(1, 20000),
    long_side=st.integers(1, 5000),
)
def test_scaled_size_properties(w: int, h: int, long_side: int) -> None:
    nw, nh = im.scaled_size((w, h), long_side)
    assert max(nw, nh) == long_side
    assert nw >= 1 and nh >= 1
    # The short side is the exact scaled value rounded, or 1 if that would be 0.
    if w >= h:
        assert nw == long_side
        assert abs(nh - h * long_side / w) <= 0.5 or nh == 1
    else:
        assert nh == long_side
        assert abs(nw - w * long_side / h) <= 0.5 or nw == 1


def test_scaled_size_examples() -> None:
    assert im.scaled_size((1024, 768), 512) == (512, 384)
    assert im.scaled_size((768, 1024), 512) == (384, 512)
    assert im.scaled_size((300, 300), 512) == (512, 512)
    assert im.scaled_size((10000, 1), 10) == (10, 1)
    for bad in (((0, 5), 10), ((5, 5), 0)):
        with pytest.raises(ValueError):
            im.scaled_size(*bad)


@given(
    w=st.integers(1, 20000),
    h=st.integers(1, 20000),
    long_side=st.integers(1, 5000),
    short_side=st.integers(1, 64),
)
def test_long_side_for_gives_the_least_side_that_is_wide_enough(
    w: int, h: int, long_side: int, short_side: int
) -> None:
    side = im.long_side_for((w, h), long_side, short_side)
    assert side >= long_side
    assert min(im.scaled_size((w, h), side)) >= short_side
    if side > long_side:  # enlarged only as far as the aspect ratio needs
        assert min(w, h) * (side - 1) / max(w, h) < short_side


def test_resize_long_side(images: Path) -> None:
    photo = im.load_image(images / "content/tubingen.jpg")
    small = im.resize_long_side(photo, 256)
    assert (small.mode, small.size) == ("RGB", (256, 192))
    # A big reduction should still look like the original, colour for colour.
    reference = photo.resize((256, 192), Image.Resampling.BOX)
    diff = np.abs(np.asarray(small, dtype=float) - np.asarray(reference, dtype=float))
    assert diff.mean() < 4
    same = im.resize_long_side(small, 256)
    assert same is not small and same.tobytes() == small.tobytes()
    big = im.resize_long_side(Image.new("RGBA", (4, 2), (1, 2, 3, 4)), 40)
    assert (big.mode, big.size) == ("RGBA", (40, 20))


# --- check_output_path ------------------------------------------------------------------


@pytest.mark.parametrize("ext", [*im.OUTPUT_FORMATS, ".PNG", ".Jpg"])
def test_check_output_path_ok(tmp_path: Path, ext: str) -> None:
    path = tmp_path / f"out{ext}"
    assert im.check_output_path(path) == path
    assert im.check_output_path(str(path)) == path


def test_unknown_extension(tmp_path: Path) -> None:
    with pytest.raises(OutputError) as e:
        im.check_output_path(tmp_path / "out.xyz")
    _one_line(e, "unknown output extension '.xyz' for", "out.xyz", "use one of .bmp, .jpeg")
    with pytest.raises(OutputError) as e:
        im.check_output_path(tmp_path / "out")
    _one_line(e, "out", "no extension", ".png")


def test_output_folder_problems(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(OutputError) as e:
        im.check_output_path(tmp_path / "missing" / "out.png")
    _one_line(e, "out.png", "does not exist")
    afile = _save(Image.new("RGB", (1, 1)), tmp_path / "file.png")
    with pytest.raises(OutputError) as e:
        im.check_output_path(afile / "out.png")
    _one_line(e, "out.png", "not a folder")
    adir = tmp_path / "dir.png"
    adir.mkdir()
    with pytest.raises(OutputError) as e:
        im.check_output_path(adir, overwrite=True)
    _one_line(e, "dir.png", "is a directory")
    monkeypatch.setattr(os, "access", lambda *args, **kwargs: False)
    with pytest.raises(OutputError) as e:
        im.check_output_path(tmp_path / "out.png")
    _one_line(e, "out.png", "not writable")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_folder(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(OutputError) as e:
            im.check_output_path(locked / "out.png")
        _one_line(e, "out.png", "not writable")
    finally:
        locked.chmod(0o700)


def test_existing_output(tmp_path: Path) -> None:
    path = _save(Image.new("RGB", (1, 1)), tmp_path / "out.png")
    with pytest.raises(OutputError) as e:
        im.check_output_path(path)
    message = _one_line(e, "out.png")
    assert message.endswith("already exists; choose another name or pass --overwrite to replace it")
    assert im.check_output_path(path, overwrite=True) == path


# --- save_image, read_metadata --------------------------------------------------------------


def _gradient(size: tuple[int, int] = (24, 16)) -> Image.Image:
    w, h = size
    x = np.linspace(0, 255, w, dtype=np.uint8)[None, :].repeat(h, 0)
    y = np.linspace(0, 255, h, dtype=np.uint8)[:, None].repeat(w, 1)
    return Image.fromarray(np.stack([x, y, 255 - x], axis=-1))


@pytest.mark.parametrize("ext", list(im.OUTPUT_FORMATS))
def test_save_each_format(tmp_path: Path, ext: str) -> None:
    path = tmp_path / f"out{ext}"
    assert im.save_image(_gradient(), path) == path
    with Image.open(path) as saved:
        assert saved.format == im.OUTPUT_FORMATS[ext]
        assert (saved.size, saved.mode) == ((24, 16), "RGB")
    assert os.listdir(tmp_path) == [path.name]
    if ext in (".png", ".bmp", ".tif", ".tiff"):  # lossless
        assert im.load_image(path).tobytes() == _gradient().tobytes()


def test_saved_file_has_normal_permissions(tmp_path: Path) -> None:
    path = im.save_image(_gradient(), tmp_path / "out.png")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_png_metadata_round_trip(tmp_path: Path) -> None:
    meta = {
        "styleshift": json.dumps({"style": "Starry Night – 梵高", "weights": [1, 1e5]}),
        "Software": "styleshift 0.1.0",
    }
    path = im.save_image(_gradient(), tmp_path / "out.png", metadata=meta)
    assert im.read_metadata(path) == meta
    assert json.loads(im.read_metadata(path)["styleshift"])["style"] == "Starry Night – 梵高"
    jpg = im.save_image(_gradient(), tmp_path / "out.jpg", metadata=meta)
    assert im.read_metadata(jpg) == {}
    assert im.read_metadata(im.save_image(_gradient(), tmp_path / "plain.png")) == {}
    with pytest.raises(InputError) as e:
        im.read_metadata(tmp_path / "gone.png")
    _one_line(e, "gone.png")


@pytest.mark.parametrize("ext", [".png", ".webp", ".tif", ".jpg", ".bmp"])
def test_alpha_kept_or_dropped(tmp_path: Path, ext: str) -> None:
    alpha = Image.linear_gradient("L").resize((24, 16))
    path = im.save_image(_gradient(), tmp_path / f"out{ext}", alpha=alpha)
    loaded = im.load_image(path)
    if im.OUTPUT_FORMATS[ext] in im.ALPHA_FORMATS:
        assert loaded.mode == "RGBA"
        saved_alpha = np.asarray(loaded.getchannel("A"), dtype=int)
        assert np.abs(saved_alpha - np.asarray(alpha, dtype=int)).max() <= 2
    else:
        assert loaded.mode == "RGB"


def test_alpha_from_rgba_image_and_resized(tmp_path: Path) -> None:
    rgba = _gradient()
    rgba.putalpha(100)
    assert im.load_image(im.save_image(rgba, tmp_path / "a.png")).getpixel((0, 0))[3] == 100  # type: ignore[index]
    small_alpha = Image.new("L", (6, 4), 30)
    out = im.load_image(im.save_image(_gradient(), tmp_path / "b.png", alpha=small_alpha))
    assert out.size == (24, 16) and out.getchannel("A").getextrema() == (30, 30)


def test_no_overwrite_keeps_old_file(tmp_path: Path) -> None:
    path = im.save_image(Image.new("RGB", (5, 5), (255, 0, 0)), tmp_path / "out.png")
    before = path.read_bytes()
    with pytest.raises(OutputError) as e:
        im.save_image(Image.new("RGB", (5, 5), (0, 255, 0)), path)
    _one_line(e, "out.png", "exists now", "out-1.png")
    assert path.read_bytes() == before
    assert im.load_image(tmp_path / "out-1.png").getpixel((0, 0)) == (0, 255, 0)
    im.save_image(Image.new("RGB", (5, 5), (0, 255, 0)), path, overwrite=True)
    assert im.load_image(path).getpixel((0, 0)) == (0, 255, 0)
    assert sorted(os.listdir(tmp_path)) == ["out-1.png", "out.png"]


@pytest.mark.parametrize("links", [True, False])
def test_no_clobber_when_file_appears_during_save(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, links: bool
) -> None:
    path = tmp_path / "out.png"
    real_save = Image.Image.save

    def racing_save(self: Image.Image, fp: Any, *args: Any, **kwargs: Any) -> None:
        path.write_bytes(b"someone else's file")
        real_save(self, fp, *args, **kwargs)

    def no_link(src: Any, dst: Any) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(Image.Image, "save", racing_save)
    if not links:
        monkeypatch.setattr(os, "link", no_link)
    with pytest.raises(OutputError) as e:
        im.save_image(_gradient(), path)
    _one_line(e, "out.png", "exists now", "out-1.png")
    assert path.read_bytes() == b"someone else's file"
    assert im.load_image(tmp_path / "out-1.png").size == (24, 16)  # the work is kept
    assert sorted(os.listdir(tmp_path)) == ["out-1.png", "out.png"]


def test_save_without_hard_links(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_link(src: Any, dst: Any) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_link)
    path = im.save_image(_gradient(), tmp_path / "out.png")
    assert im.load_image(path).size == (24, 16)
    assert os.listdir(tmp_path) == ["out.png"]


@pytest.mark.parametrize(
    ("error", "fragment"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), "no space left on device"),
        (PermissionError(errno.EACCES, "Permission denied"), "permission denied"),
        (OSError(errno.EIO, "Input/output error"), "Input/output error"),
    ],
)
def test_failed_write_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: OSError, fragment: str
) -> None:
    old = im.save_image(_gradient(), tmp_path / "old.png")

    def fail(self: Image.Image, fp: Any, *args: Any, **kwargs: Any) -> None:
        fp.write(b"partial")
        raise error

    monkeypatch.setattr(Image.Image, "save", fail)
    for overwrite, name in ((False, "new.png"), (True, "old.png")):
        before = old.read_bytes()
        with pytest.raises(OutputError) as e:
            im.save_image(_gradient(), tmp_path / name, overwrite=overwrite)
        _one_line(e, name, fragment)
        assert os.listdir(tmp_path) == ["old.png"]
        assert old.read_bytes() == before


def test_webp_too_large_is_refused_before_writing(tmp_path: Path) -> None:
    with pytest.raises(OutputError) as e:
        im.save_image(Image.new("RGB", (16384, 1)), tmp_path / "wide.webp")
    _one_line(e, "wide.webp", "16383", ".png")
    assert os.listdir(tmp_path) == []


def test_save_checks_path_first(tmp_path: Path) -> None:
    with pytest.raises(OutputError) as e:
        im.save_image(_gradient(), tmp_path / "out.gif")
    _one_line(e, "out.gif", "unknown output extension")


# -- colour profiles -------------------------------------------------------------------


def _saturation(img: Image.Image) -> float:
    rgb = np.asarray(img.convert("RGB"), dtype=np.float64)
    return float((rgb.max(axis=-1) - rgb.min(axis=-1)).mean())


def test_an_adobe_rgb_photo_is_converted_to_srgb(images: Path) -> None:
    path = images / "content/rocket.jpg"  # tagged Adobe RGB (1998)
    plain = Image.open(path).convert("RGB")
    # Adobe RGB's primaries are wider: read as sRGB its colours look washed out.
    assert _saturation(im.load_image(path)) > 1.2 * _saturation(plain)


def test_an_adobe_rgb_photo_gets_the_pixels_littlecms_gives(images: Path) -> None:
    raw = Image.open(images / "content/rocket.jpg")
    source = ImageCms.ImageCmsProfile(io.BytesIO(raw.info["icc_profile"]))
    transform = ImageCms.buildTransform(
        source, ImageCms.createProfile("sRGB"), "RGB", "RGB",
        renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
    )  # fmt: skip
    expected = np.asarray(ImageCms.applyTransform(raw.convert("RGB"), transform), np.int16)
    loaded = np.asarray(im.load_image(images / "content/rocket.jpg"), np.int16)
    assert np.abs(loaded - expected).max() <= 2


def test_profiles_are_applied_to_in_memory_images_with_alpha(images: Path) -> None:
    adobe = Image.open(images / "content/rocket.jpg").info["icc_profile"]
    source = Image.new("RGBA", (2, 2), (100, 150, 100, 128))
    source.info["icc_profile"] = adobe
    out = im.as_image(source)
    assert out.mode == "RGBA" and out.getpixel((0, 0))[3] == 128
    assert _saturation(out) > _saturation(source)


def test_srgb_damaged_and_missing_profiles_leave_the_pixels_alone() -> None:
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    source = Image.new("RGB", (2, 2), (100, 150, 100))
    for profile in (srgb, b"not a colour profile", None):
        tagged = source.copy()
        if profile is not None:
            tagged.info["icc_profile"] = profile
        assert im.as_image(tagged).tobytes() == source.tobytes()
