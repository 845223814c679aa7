"""Instant stylisation with the shipped decoder, end to end, and bad model files."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from styleshift import InputError, Options, StyleTransfer
from styleshift.core.color import rgb_to_yuv
from styleshift.core.metrics import Scorer
from styleshift.core.vgg import VGGFeatures
from styleshift.feedforward.decoder import Decoder, ModelInfo, load_model, save_model, sha256_file
from styleshift.feedforward.engine import SHIPPED, shipped_model
from styleshift.feedforward.train import Reconstruction, TrainSettings, feature_layers, psnr
from styleshift.io.image import load_image, resize_long_side, to_tensor

SIZE = 192
# The shipped decoders rebuild this held-out photo (never trained on) at 256 px to at
# least this PSNR (measured: relu4_1 22.8 dB, relu3_1 26.2 dB; docs/model-card.md).
# relu4_1 was fine-tuned to paint, which costs it some of its photo rebuilding (measured
# 20.9 dB, 22.8 before); relu3_1 only rebuilds (measured 26.2).
RECONSTRUCTION_FLOOR_DB = {"relu4_1": 20.0, "relu3_1": 25.0}


@pytest.fixture(scope="module")
def photo(images: Path) -> Image.Image:
    return load_image(images / "content" / "kodim23_parrots.png").convert("RGB")


@pytest.fixture(scope="module")
def painting(images: Path) -> Image.Image:
    return load_image(images / "style" / "vangogh_starry_night.jpg").convert("RGB")


@pytest.fixture(scope="module")
def scorer(state_dict: dict[str, torch.Tensor]) -> Scorer:
    return Scorer(state_dict)


@pytest.mark.parametrize("level", sorted(SHIPPED))
def test_each_shipped_decoder_is_intact_and_rebuilds_a_held_out_photo(
    photo: Image.Image, state_dict: dict[str, torch.Tensor], level: str
) -> None:
    assert sha256_file(shipped_model(level)) == SHIPPED[level][1]
    decoder, info = load_model(shipped_model(level), sha256=SHIPPED[level][1])
    assert (info.level, info.pooling) == (level, "max") and info.steps > 0
    encoder = VGGFeatures(state_dict, feature_layers(info.level), info.pooling)
    model = Reconstruction(encoder, decoder, TrainSettings(level=info.level), torch.float32)
    floor = RECONSTRUCTION_FLOOR_DB[level]
    assert psnr(model, [to_tensor(resize_long_side(photo, 256))]) > floor


def test_the_shipped_decoder_paints_a_painting_it_never_saw(
    images: Path, engine: StyleTransfer, scorer: Scorer
) -> None:
    """A floor on how much of the painting instant carries, on a pair whose painting was
    held out of the decoder's training: the decoder shipped before it (trained to rebuild
    photos alone) measured 1.37x and fails; this one 2.07x, keeping the subject (0.805)."""
    photo = load_image(images / "content" / "kodim21_lighthouse.png")
    wave = load_image(images / "style" / "hokusai_great_wave.jpg")
    opts = Options(preset="instant", size=256, precision="float32")
    scores = scorer.score(engine.run(photo, wave, opts).image, photo, wave)
    assert scores.style_reduction > 1.7
    assert scores.content_similarity > 0.75


@pytest.mark.parametrize("method", ["adain", "wct", "efdm"])
def test_each_transform_keeps_the_subject_and_carries_the_style(
    engine: StyleTransfer, scorer: Scorer, photo: Image.Image, painting: Image.Image, method: str
) -> None:
    result = engine.run(photo, painting, Options(method=method, size=SIZE))
    assert result.image.size == (SIZE, 128)  # kodim23 is 768 x 512
    assert result.options.method == method and math.isnan(result.loss)
    scores = scorer.score(result.image, photo, painting)
    # Measured at this size with the decoder that paints: similarity 0.60 (wct) to 0.75,
    # Gram matrices 2.9-3.25 and channel statistics 2.4-2.5 times closer to the
    # painting's than the photo's are (0.67-0.84, 2.0-2.3 and 1.7 with the decoder that
    # only rebuilt photos).
    assert scores.content_similarity > 0.55  # an unrelated painting scores about 0.25
    assert scores.style_reduction > 2.5
    assert scores.statistics_reduction > 2.0


def test_a_second_shipped_level_runs_and_keeps_the_subject(
    engine: StyleTransfer, scorer: Scorer, photo: Image.Image, painting: Image.Image
) -> None:
    one, two = (
        scorer.score(engine.run(photo, painting, options).image, photo, painting)
        for options in (
            Options(preset="instant", size=SIZE, levels=("relu4_1",)),
            Options(preset="instant", size=SIZE, levels=("relu4_1", "relu3_1")),
        )
    )
    # Measured: the relu3_1 decoder only rebuilds photos, so since the relu4_1 decoder
    # learnt to paint, the second pass gives back some of the style (Gram matrices 2.90 ->
    # 2.31 times closer, similarity 0.745 -> 0.72); with the decoder before it, it added
    # style (2.04 -> 2.19). It stays an option, with the numbers in docs/performance.md.
    assert two.style_reduction > 2.0 and two.content_similarity > 0.65
    assert one.style_reduction > 2.5


def test_strength_moves_the_picture_between_photo_and_painting(
    engine: StyleTransfer, scorer: Scorer, photo: Image.Image, painting: Image.Image
) -> None:
    scores = [
        scorer.score(
            engine.run(photo, painting, Options(preset="instant", size=SIZE, strength=s)).image,
            photo,
            painting,
        )
        for s in (0.0, 0.5, 1.0)
    ]
    similarity = [s.content_similarity for s in scores]
    style = [s.style_reduction for s in scores]
    assert similarity[0] > similarity[1] > similarity[2]
    assert style[0] < style[1] < style[2]


def test_blend_weights_pick_between_styles(
    engine: StyleTransfer, photo: Image.Image, painting: Image.Image, images: Path
) -> None:
    wave = load_image(images / "style" / "hokusai_great_wave.jpg")
    only_first = engine.run(photo, [painting, wave], Options(preset="instant", size=SIZE,
                            style_blend=(1, 0), precision="float32"))  # fmt: skip
    alone = engine.run(photo, painting, Options(preset="instant", size=SIZE, precision="float32"))
    assert np.array_equal(np.asarray(only_first.image), np.asarray(alone.image))
    mixed = engine.run(photo, [painting, wave], Options(preset="instant", size=SIZE))
    assert not np.array_equal(np.asarray(mixed.image), np.asarray(alone.image))


def test_luminance_mode_keeps_the_photo_colours(
    engine: StyleTransfer, photo: Image.Image, painting: Image.Image
) -> None:
    opts = Options(preset="instant", size=SIZE, preserve_color="luminance")
    out = to_tensor(engine.run(photo, painting, opts).image)
    reference = to_tensor(photo.resize((out.shape[-1], out.shape[-2]), Image.Resampling.LANCZOS))
    chroma_error = (rgb_to_yuv(out)[:, 1:] - rgb_to_yuv(reference)[:, 1:]).abs().mean()
    plain = to_tensor(engine.run(photo, painting, Options(preset="instant", size=SIZE)).image)
    plain_error = (rgb_to_yuv(plain)[:, 1:] - rgb_to_yuv(reference)[:, 1:]).abs().mean()
    assert chroma_error < 0.02 < plain_error


def test_histogram_mode_moves_the_colours_towards_the_photo(
    engine: StyleTransfer, photo: Image.Image, painting: Image.Image
) -> None:
    def colour_gap(image: Image.Image) -> float:
        a = to_tensor(image).flatten(2)[0]
        b = to_tensor(photo.resize(image.size)).flatten(2)[0]
        return float(
            (a.mean(1) - b.mean(1)).abs().sum() + (torch.cov(a) - torch.cov(b)).abs().sum()
        )

    plain = engine.run(photo, painting, Options(preset="instant", size=SIZE)).image
    kept = engine.run(photo, painting, Options(preset="instant", size=SIZE,
                                                preserve_color="histogram")).image  # fmt: skip
    assert colour_gap(kept) < 0.7 * colour_gap(plain)


def test_alpha_is_kept_and_style_scale_changes_the_strokes(
    engine: StyleTransfer, photo: Image.Image, painting: Image.Image
) -> None:
    rgba = photo.copy()
    rgba.putalpha(Image.new("L", photo.size, 128))
    out = engine.run(rgba, painting, Options(preset="instant", size=SIZE)).image
    assert out.mode == "RGBA" and out.getchannel("A").getextrema() == (128, 128)
    small = engine.run(photo, painting, Options(preset="instant", size=SIZE, style_scale=0.5))
    assert not np.array_equal(np.asarray(small.image), np.asarray(out.convert("RGB")))


def test_narrow_photos_and_paintings_are_stylised(
    engine: StyleTransfer, photo: Image.Image, painting: Image.Image
) -> None:
    # 2 and 6 px across: under the encoder's stride, and the painting under any level's.
    thin = engine.run(photo.resize((300, 5)), painting, Options(preset="instant", size=128))
    assert thin.image.size == (128, 2)
    strip = painting.resize((900, 6))
    out = engine.run(photo, strip, Options(preset="instant", size=SIZE)).image
    assert out.size == (SIZE, 128)
    assert not np.array_equal(np.asarray(out), np.asarray(photo.resize(out.size)))


def test_progress_reports_three_steps_and_the_picture(
    engine: StyleTransfer, photo: Image.Image, painting: Image.Image
) -> None:
    seen = []
    opts = Options(preset="instant", size=SIZE, precision="float32")
    result = engine.run(photo, painting, opts, callback=seen.append)
    assert [p.step for p in seen] == [1, 2, 3] and seen[-1].total_steps == 3
    assert [p.stage for p in seen] == ["relu4_1 transformed", "relu4_1 decoded", "done"]
    assert np.array_equal(np.asarray(seen[-1].image()), np.asarray(result.image))


def test_instant_start_image_for_the_optimisation(
    engine: StyleTransfer, photo: Image.Image, painting: Image.Image
) -> None:
    first: list[Image.Image] = []

    def keep_first(p: object) -> None:
        if not first:
            first.append(p.image())  # type: ignore[attr-defined]

    opts = Options(size=64, start_size=64, iterations=(1,), init="instant")
    engine.run(photo, painting, opts, callback=keep_first)
    instant = engine.run(photo, painting, Options(preset="instant", size=64)).image
    gap = np.abs(np.asarray(first[0], float) - np.asarray(instant, float)).mean()
    photo_gap = np.abs(np.asarray(photo.resize(instant.size), float) - np.asarray(instant, float))
    assert gap < 0.25 * photo_gap.mean()  # one step from the instant picture, not the photo


def _bad_model(tmp_path: Path, kind: str, weights_file: Path) -> Path:
    path = tmp_path / f"{kind}.safetensors"
    if kind == "garbage":
        path.write_bytes(b"\x00" * 100)
    elif kind == "vgg":
        return weights_file  # safetensors, but not a decoder
    elif kind == "mismatch":
        save_model(Decoder("relu3_1"), ModelInfo("relu4_1", "max"), path)
    return path


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("missing", "not found"),
        ("garbage", "cannot read model file"),
        ("vgg", "is not a styleshift decoder"),
        ("mismatch", "does not hold a relu4_1 decoder"),
    ],
)
def test_bad_model_files_are_named(
    engine: StyleTransfer,
    photo: Image.Image,
    painting: Image.Image,
    tmp_path: Path,
    weights_file: Path,
    kind: str,
    message: str,
) -> None:
    path = _bad_model(tmp_path, kind, weights_file)
    with pytest.raises(InputError, match=message):
        engine.run(photo, painting, Options(preset="instant", size=64, model=(str(path),)))


def test_a_level_without_a_decoder_is_named(
    engine: StyleTransfer, photo: Image.Image, painting: Image.Image
) -> None:
    with pytest.raises(InputError, match="no decoder for level relu1_1; train one"):
        engine.run(photo, painting, Options(preset="instant", size=64, levels=("relu1_1",)))


def test_cli_instant_end_to_end(tmp_path: Path, images: Path, weights_file: Path) -> None:
    out = tmp_path / "out.png"
    content, style = images / "content" / "tubingen.jpg", images / "style" / "munch_the_scream.jpg"
    base = [sys.executable, "-m", "styleshift", "stylize", str(content), str(style), "-o"]
    proc = subprocess.run([*base, str(out), "--preset", "instant", "--size", "128", "--json"],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["options"]["method"] == "adain" and report["loss"] is None
    assert Image.open(out).size == (128, 96)
    proc = subprocess.run([*base, str(tmp_path / "x.png"), "--preset", "instant",
                           "--iterations", "5"],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "styleshift: error: --iterations does not apply to the feed-forward method adain; "
        "leave it out"
    ]
    missing = str(tmp_path / "none.safetensors")
    proc = subprocess.run([*base, str(tmp_path / "y.png"), "--preset", "instant", "--model",
                           missing], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 2 and "not found" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "y.png").exists()


def test_cli_optimisation_from_the_instant_picture(
    tmp_path: Path, images: Path, weights_file: Path
) -> None:
    out = tmp_path / "hybrid.png"
    proc = subprocess.run(
        [sys.executable, "-m", "styleshift", "stylize", str(images / "content" / "rocket.jpg"),
         str(images / "style" / "munch_the_scream.jpg"), "-o", str(out), "--size", "64",
         "--start-size", "64", "--iterations", "2", "--init", "instant", "--json"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["options"]["init"] == "instant" and report["options"]["method"] == "gatys"
    assert out.is_file()


def test_a_painting_is_encoded_once_for_many_pictures(
    engine: StyleTransfer,
    photo: Image.Image,
    painting: Image.Image,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from styleshift.feedforward import tiles

    calls: list[tuple[int, ...]] = []
    real = tiles.encode

    def counting(
        encoder: VGGFeatures, image: torch.Tensor, level: str, tile: int | None
    ) -> torch.Tensor:
        calls.append(tuple(image.shape))
        return real(encoder, image, level, tile)

    monkeypatch.setattr(tiles, "encode", counting)
    # A size no other test uses; float32, as the pictures are compared bit for bit.
    opts = Options(preset="instant", size=96, style_scale=0.77, precision="float32")
    first = engine.run(photo, painting, opts)
    assert len(calls) == 2  # the painting, then the photo
    second = engine.run(photo, painting, opts)
    assert len(calls) == 3  # the photo alone
    assert np.array_equal(np.asarray(first.image), np.asarray(second.image))


def test_several_levels_run_in_cascade_with_a_users_decoder(
    engine: StyleTransfer, photo: Image.Image, painting: Image.Image, tmp_path: Path
) -> None:
    # An untrained relu2_1 decoder: this checks the cascade's plumbing, not its looks.
    path = tmp_path / "relu2_1.safetensors"
    save_model(Decoder("relu2_1"), ModelInfo("relu2_1", "max", 1), path)
    seen = []
    opts = Options(preset="instant", size=96, levels=("relu4_1", "relu2_1"), model=(str(path),))
    result = engine.run(photo, painting, opts, callback=seen.append)
    assert [p.stage for p in seen] == [
        "relu4_1 transformed",
        "relu4_1 decoded",
        "relu2_1 transformed",
        "relu2_1 decoded",
        "done",
    ]
    assert result.image.size == (96, 64)
    single = engine.run(photo, painting, Options(preset="instant", size=96))
    assert not np.array_equal(np.asarray(result.image), np.asarray(single.image))


def test_a_shipped_decoder_that_changed_is_refused(
    tmp_path: Path, images: Path, state_dict: dict[str, torch.Tensor], monkeypatch
) -> None:
    """One flipped byte in the tensors (a file that still reads) fails the hash check by
    name, before any picture is made."""
    from styleshift.feedforward import engine as feedforward

    changed = tmp_path / "decoder.safetensors"
    data = bytearray(shipped_model("relu4_1").read_bytes())
    data[-100] ^= 0x01
    changed.write_bytes(bytes(data))
    load_model(changed)  # still a readable decoder without the hash
    monkeypatch.setattr(feedforward, "shipped_model", lambda level="relu4_1": changed)
    with pytest.raises(InputError, match=r"decoder.safetensors' has sha256 .*reinstall styleshift"):
        feedforward.FeedForward(state_dict, torch.device("cpu")).decoders(("relu4_1",), ())
