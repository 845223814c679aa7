"""Instant in tiles: the same picture as the whole pass, within a memory budget, and a
budget that cannot hold the picture refused before any work."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from styleshift import OptionError, Options, StyleTransfer
from styleshift.cli import main
from styleshift.core.tiling import vgg_margin
from styleshift.core.vgg import VGGFeatures
from styleshift.feedforward import tiles
from styleshift.feedforward.decoder import Decoder, load_model
from styleshift.feedforward.engine import shipped_model
from styleshift.io.image import load_image, resize_long_side, to_tensor


@pytest.fixture(scope="module")
def photo(images: Path) -> Image.Image:
    return load_image(images / "content" / "kodim21_lighthouse.png").convert("RGB")


@pytest.fixture(scope="module")
def painting(images: Path) -> Image.Image:
    return load_image(images / "style" / "hokusai_great_wave.jpg").convert("RGB")


@pytest.mark.parametrize("level", ["relu4_1", "relu3_1"])
def test_tiles_give_the_whole_pictures_features_and_pixels(
    photo: Image.Image, state_dict: dict[str, torch.Tensor], level: str
) -> None:
    decoder, info = load_model(shipped_model(level))
    encoder = VGGFeatures(state_dict, (level,), info.pooling)
    image = to_tensor(resize_long_side(photo, 256))[..., :192, :256]  # sides divide by 16
    whole, tiled = None, 64  # 3 x 4 tiles
    with torch.no_grad():
        features = tiles.encode(encoder, image, level, whole)
        in_tiles = tiles.encode(encoder, image, level, tiled)
        assert torch.allclose(in_tiles, features, rtol=1e-4, atol=1e-4 * float(features.max()))
        picture = tiles.decode(decoder, features[None], whole, torch.float32)
        assert torch.allclose(
            tiles.decode(decoder, features[None], tiled, torch.float32), picture, atol=1e-4
        )
    # Without their margins the tiles would differ: the margins are what makes them equal.
    assert vgg_margin(level) > 0 and tiles.decoder_margin(decoder) > 0


def test_an_instant_picture_in_tiles_is_the_whole_one(
    engine: StyleTransfer,
    photo: Image.Image,
    painting: Image.Image,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    opts = Options(preset="instant", size=320, precision="float32")
    whole = engine.run(photo, painting, opts).image
    decoder, _ = engine.feedforward.decoders(("relu4_1",))[0]
    # The photo at 320 x 213 is padded to 320 x 216: 3 x 2 tiles of 128 px.
    budget = tiles.least_budget(216, 320, decoder, tile=128)
    used: list[int | None] = []
    real = tiles.decode

    def spy(
        decoder: Decoder, features: torch.Tensor, tile: int | None, dtype: torch.dtype
    ) -> torch.Tensor:
        used.append(tile)
        return real(decoder, features, tile, dtype)

    monkeypatch.setattr(tiles, "decode", spy)
    tiled = engine.run(photo, painting, Options(**{**opts.to_dict(), "max_memory": budget / 2**30}))
    assert used == [128]
    difference = torch.abs(to_tensor(tiled.image) - to_tensor(whole))
    assert float(difference.max()) <= 2 / 255  # rounding, not seams


def test_a_picture_too_large_for_the_budget_is_refused_before_it_is_made(
    engine: StyleTransfer,
    photo: Image.Image,
    painting: Image.Image,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from styleshift.feedforward import engine as feedforward_engine

    def never(*args: object) -> None:
        raise AssertionError("the images were made before the memory check")

    monkeypatch.setattr(feedforward_engine, "prepare", never)
    # 40,000 px would need about 100 GiB of images and features alone.
    with pytest.raises(OptionError, match=r"too small for a 40000x26672 picture.*--max-memory"):
        engine.run(photo, painting, Options(preset="instant", size=40000))


def test_the_cli_refuses_a_budget_too_small_in_one_line(
    images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.png"
    content, style = images / "content" / "tubingen.jpg", images / "style" / "picabia_udnie.jpg"
    args = ["stylize", str(content), str(style), "-o", str(out), "--preset", "instant", "-q"]
    assert main([*args, "--size", "1024", "--max-memory", "0.05"]) == 2
    err = capsys.readouterr().err
    assert "allow at least 0.50 GiB (--max-memory)" in err and len(err.splitlines()) == 1
    assert not out.exists()
    assert main([*args, "--size", "128", "--max-memory", "0.5"]) == 0  # it applies to instant
    assert Image.open(out).size == (128, 96)
