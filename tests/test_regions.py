"""Regions: masks that say where each painting goes, in both method families."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from styleshift import InputError, OptionError, Options, StyleTransfer
from styleshift.cli import main
from styleshift.core.losses import gram_matrix
from styleshift.core.metrics import Scorer, kept_psnr
from styleshift.core.options import resolve_options
from styleshift.core.regions import Regions, open_regions, subject_mask
from styleshift.core.vgg import stride
from styleshift.gatys.engine import Run
from styleshift.io.image import load_image, resize_long_side

CPU = torch.device("cpu")
SIZE = 128


@pytest.fixture(scope="module")
def photo(images: Path) -> Image.Image:
    return load_image(images / "content" / "tubingen.jpg").convert("RGB")


@pytest.fixture(scope="module")
def paintings(images: Path) -> list[Image.Image]:
    # Two paintings far apart: swirling blues and yellows, and flat primaries on white.
    names = ("vangogh_starry_night.jpg", "mondrian_tableau_no2_comp_vii.jpg")
    return [load_image(images / "style" / n).convert("RGB") for n in names]


@pytest.fixture(scope="module")
def scorer(state_dict: dict[str, torch.Tensor]) -> Scorer:
    return Scorer(state_dict)


def _half(size: tuple[int, int], left: bool) -> Image.Image:
    w, h = size
    mask = Image.new("L", size, 0)
    mask.paste(255, (0, 0, w // 2, h) if left else (w // 2, 0, w, h))
    return mask


def _separation(scorer: Scorer, picture: Image.Image, paintings: list[Image.Image]) -> list[float]:
    """Per half: the distance to the other painting over the distance to its own."""
    halves = [_half(picture.size, True), _half(picture.size, False)]
    ratios = []
    for index, mask in enumerate(halves):
        own = scorer.region_distance(picture, paintings[index], mask)
        other = scorer.region_distance(picture, paintings[1 - index], mask)
        ratios.append(other / own)
    return ratios


# -- the masks themselves ------------------------------------------------------------------


def test_weights_are_feathered_never_overlap_and_pool_to_every_layer(photo: Image.Image) -> None:
    left, everything = _half(photo.size, True), Image.new("L", photo.size, 255)
    regions = open_regions([left, everything], photo, 2)
    weights = regions.weights(96, 128)
    assert weights.shape == (2, 1, 96, 128)
    assert float(weights.sum(0).max()) <= 1 + 1e-6  # overlap shared, never painted twice
    row = weights[0, 0, 48]
    # Feathered: no jump from 1 to 0 at the border, but the far sides are untouched.
    assert 0.05 < float(row[63]) < 0.95 and float(row[0]) == pytest.approx(0.5)
    assert float(weights[1, 0, 48, -1]) == pytest.approx(1.0)
    for layer in ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"):
        s = stride(layer)
        assert regions.at_features(96, 128, s).shape == (2, 1, 96 // s, 128 // s)


def test_a_weighted_gram_matrix_is_the_gram_matrix_of_its_region() -> None:
    features = torch.rand(1, 8, 6, 10)
    weight = torch.zeros(1, 1, 6, 10)
    weight[..., :4] = 1
    assert torch.allclose(gram_matrix(features, weight), gram_matrix(features[..., :4]), atol=1e-6)
    assert torch.allclose(gram_matrix(features, torch.ones(1, 1, 6, 10)), gram_matrix(features))


def test_styles_with_the_same_mask_share_one_region(tmp_path: Path, photo: Image.Image) -> None:
    path = tmp_path / "sky.png"
    _half(photo.size, True).save(path)
    regions = open_regions([str(path), str(path), "auto:subject"], photo, 3)
    assert [r.styles for r in regions.regions] == [(0, 1), (2,)]


def test_the_subject_is_found_without_a_drawn_mask(images: Path) -> None:
    parrots = load_image(images / "content" / "kodim23_parrots.png")
    mask = np.asarray(subject_mask(parrots), np.float32) / 255
    h, w = mask.shape
    # The parrots fill the middle; the green leaves along the border are background.
    assert mask[h // 3 : 2 * h // 3, w // 3 : 2 * w // 3].mean() > 0.8
    assert mask[:, : w // 20].mean() < 0.2 and mask[: h // 20].mean() < 0.2


def test_bad_masks_are_refused_by_name_and_odd_ones_noted(
    tmp_path: Path, photo: Image.Image
) -> None:
    with pytest.raises(OptionError, match="2 masks given for 1 style image; give one mask per"):
        resolve_options(Options(mask=("a.png", "b.png")), CPU, 1)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a picture")
    with pytest.raises(InputError, match="mask"):
        open_regions([str(broken)], photo, 1)
    with pytest.raises(OptionError, match="did you mean 'auto:subject'"):
        open_regions(["auto:subjet"], photo, 1)
    # One mask per frame is for a video; a still picture is told so.
    with pytest.raises(InputError, match=r"is a folder; give a picture .*styleshift video --mask"):
        open_regions([str(tmp_path)], photo, 1)
    square, black = Image.new("L", (50, 50), 255), Image.new("L", photo.size, 0)
    notes = open_regions([square, black], photo, 2).notes
    assert "stretched to the photo's shape" in notes[0] and "paints the whole picture" in notes[1]
    assert "black everywhere: its style paints nothing" in notes[2]


# -- both families ---------------------------------------------------------------------------


@pytest.mark.parametrize("preset", ["instant", "fast"])
def test_two_paintings_stay_in_their_halves_and_the_photo_is_kept(
    engine: StyleTransfer,
    photo: Image.Image,
    paintings: list[Image.Image],
    scorer: Scorer,
    preset: str,
) -> None:
    masks = (_half(photo.size, True), _half(photo.size, False))
    size = 128 if preset == "instant" else 96
    extra = {} if preset == "instant" else {"start_size": size, "iterations": (20,)}
    opts = Options(preset=preset, size=size, precision="float32", **extra)  # type: ignore[arg-type]
    separated = _separation(scorer, engine.run(photo, paintings, replace(opts, mask=masks)).image,
                            paintings)  # fmt: skip
    if preset == "fast":
        assert min(separated) > 2.5, separated  # measured 8.5 and 3.3 times
    else:
        # Instant carries less of a painting: each half is as far on its way to its own
        # painting, and away from the other, as a picture painted all over with that one
        # painting (measured 3.1 and 1.5 times, against 3.0 and 1.9 alone).
        for side, ratio in enumerate(separated):
            alone = engine.run(photo, paintings[side], opts).image
            assert ratio > 1.3 and ratio > 0.75 * _separation(scorer, alone, paintings)[side]
    # One style on the left only: the right half, away from the feather, is the photo.
    kept = engine.run(photo, paintings[0], replace(opts, mask=masks[:1])).image
    assert kept_psnr(kept, photo, masks[0], band=4) > 35
    assert kept_psnr(kept, photo, masks[1], band=4) < 20  # and the left half is painted


def test_a_region_is_painted_as_strongly_as_the_whole_picture(
    engine: StyleTransfer, photo: Image.Image, paintings: list[Image.Image]
) -> None:
    # A photo beside its mirror image: its left half has the whole picture's statistics,
    # so painting only that half must weigh style against content as painting all does
    # (not twice as much because the half is half the picture).
    half = photo.resize((128, 192))
    twin = Image.new("RGB", (256, 192))
    twin.paste(half, (0, 0))
    twin.paste(ImageOps.mirror(half), (128, 0))
    weights = []
    for mask in (None, (_half(twin.size, True),)):
        opts = resolve_options(
            Options(size=256, multiscale=False, iterations=(1,), precision="float32", mask=mask),  # type: ignore[arg-type]
            CPU, 1,
        )  # fmt: skip
        run = Run(engine._state, engine.device, twin, paintings[:1], opts, None, None, {})
        content = run.objective.content_at(256)
        weights.append(run.objective.targets(content, 256, None).style_weight)
    assert weights[1] == pytest.approx(weights[0], rel=0.15)


def test_without_masks_nothing_changes(engine: StyleTransfer, photo: Image.Image,
                                       paintings: list[Image.Image]) -> None:  # fmt: skip
    # A mask that is white everywhere paints the whole picture, as no mask does.
    opts = Options(preset="instant", size=96, precision="float32")
    plain = np.asarray(engine.run(photo, paintings[0], opts).image, np.int16)
    white = Image.new("L", photo.size, 255)
    masked = engine.run(photo, paintings[0], Options(**{**opts.to_dict(), "mask": (white,)}))
    assert np.abs(plain - np.asarray(masked.image, np.int16)).max() <= 1
    assert masked.notes and "whole picture" in masked.notes[0]


def test_cli_mask_end_to_end(
    tmp_path: Path, images: Path, weights_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    content = images / "content" / "tubingen.jpg"
    style = images / "style" / "munch_the_scream.jpg"
    mask = tmp_path / "sky.png"
    Image.new("L", (40, 40), 0).save(mask)  # square: stretched over the 4:3 photo, with a note
    out = tmp_path / "out.png"
    args = ["stylize", str(content), str(style), "-o", str(out), "--preset", "instant"]
    assert main([*args, "--size", "96", "--mask", str(mask)]) == 0
    err = capsys.readouterr().err
    assert "it was stretched to the photo's shape" in err and "paints nothing" in err
    photo = resize_long_side(load_image(content), 96)
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(photo))  # all kept
    for extra, message in (
        (["--mask", f"{mask},{mask}"], "2 masks given for 1 style image"),
        (["--mask", str(tmp_path / "none.png")], "mask"),
        (["--mask", "auto:sky"], "unknown automatic mask 'auto:sky'"),
    ):
        bad = tmp_path / "bad.png"
        assert main([*args[:3], "-o", str(bad), "--preset", "instant", *extra]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and message in lines[0] and not bad.exists()


def test_regions_cache_their_weights(photo: Image.Image) -> None:
    regions = open_regions([_half(photo.size, True)], photo, 1)
    assert isinstance(regions, Regions)
    assert regions.weights(32, 48) is regions.weights(32, 48)
    assert math.isclose(float(regions.painted(32, 48).mean()), 0.5, abs_tol=0.02)


# -- which part of the painting ----------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        Options(size=64, multiscale=False, iterations=(30,), precision="float32"),
        Options(preset="instant", size=64, precision="float32"),
        Options(preset="instant", method="wct", size=64, precision="float32"),
        Options(preset="instant", method="efdm", size=64, precision="float32"),
    ],
    ids=["optimisation", "adain", "wct", "efdm"],
)
def test_a_painting_mask_takes_the_style_from_its_part_of_the_painting(
    engine: StyleTransfer, photo: Image.Image, tmp_path: Path, options: Options
) -> None:
    """A painting warm on the left and cool on the right: with the left half's mask the
    picture turns warm, with the right half's cool, from the same photo."""
    noise = np.random.default_rng(0).uniform(0, 1, (96, 64, 1))
    warm = np.concatenate([0.4 + 0.6 * noise, 0.3 * noise, 0.1 * noise], axis=2)
    cool = np.concatenate([0.1 * noise, 0.3 * noise, 0.4 + 0.6 * noise], axis=2)
    painting = Image.fromarray((np.concatenate([warm, cool], axis=1) * 255).astype(np.uint8))
    redness = {}
    for left in (True, False):
        mask = tmp_path / f"{left}.png"
        _half(painting.size, left).save(mask)
        result = engine.run(photo, painting, replace(options, style_mask=(str(mask),)))
        rgb = np.asarray(result.image.convert("RGB"), np.float64)
        redness[left] = float(rgb[..., 0].mean() - rgb[..., 2].mean())
    # Measured (red minus blue, of 255): optimisation +121 / -125, AdaIN +216 / -148,
    # WCT +245 / -152.
    assert redness[True] > redness[False] + 100, redness


def test_bad_painting_masks_are_refused_before_any_work(
    engine: StyleTransfer, photo: Image.Image, paintings: list[Image.Image], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    black = tmp_path / "black.png"
    Image.new("L", (32, 32), 0).save(black)
    with pytest.raises(OptionError, match="2 painting masks given for 1 style image"):
        resolve_options(Options(style_mask=("a.png", "b.png")), CPU, 1)
    with pytest.raises(InputError, match="is black everywhere, so it takes nothing"):
        engine.run(photo, paintings[0], Options(size=64, iterations=(1,), style_mask=(str(black),)))
    painting = tmp_path / "painting.png"
    paintings[0].save(painting)
    photo_path = tmp_path / "photo.png"
    photo.save(photo_path)
    argv = ["stylize", str(photo_path), str(painting), "-o", str(tmp_path / "out.png"),
            "--style-mask", str(tmp_path / "missing.png")]  # fmt: skip
    assert main(argv) == 2
    assert "missing.png" in capsys.readouterr().err and not (tmp_path / "out.png").exists()
    assert main([*argv[:-1], str(tmp_path)]) == 2
    assert "painting mask '" in capsys.readouterr().err and not (tmp_path / "out.png").exists()
