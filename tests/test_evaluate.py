"""`styleshift evaluate`: the metrics' invariants on anchors, videos, the CLI, bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from styleshift import InputError, StyleTransfer
from styleshift.apps.evaluate import evaluate_image, evaluate_video
from styleshift.cli import main
from styleshift.core.metrics import Scorer, colour_distance, edge_overlap, luminance_ssim
from styleshift.io.image import load_image, resize_long_side

SIZE = 160


@pytest.fixture(scope="module")
def scorer(state_dict: dict[str, torch.Tensor]) -> Scorer:
    return Scorer(state_dict)


@pytest.fixture(scope="module")
def photo(images: Path) -> Image.Image:
    return resize_long_side(load_image(images / "content" / "kodim21_lighthouse.png"), SIZE)


@pytest.fixture(scope="module")
def painting_path(images: Path) -> Path:
    return images / "style" / "hokusai_great_wave.jpg"


@pytest.fixture(scope="module")
def painting(painting_path: Path) -> Image.Image:
    return load_image(painting_path).convert("RGB")


@pytest.fixture(scope="module")
def stylised(engine: StyleTransfer, photo: Image.Image, painting: Image.Image) -> Image.Image:
    return engine.stylize(photo, painting, preset="fast", size=SIZE).convert("RGB")


def test_the_photo_scores_perfect_fidelity_and_the_painting_the_best_style_match(
    scorer: Scorer, photo: Image.Image, painting: Image.Image, stylised: Image.Image
) -> None:
    own = evaluate_image(scorer, photo, photo, [painting])
    c = own.content
    assert c.similarity == pytest.approx(1.0, abs=1e-5) and c.feature_error < 1e-8
    assert c.ssim == pytest.approx(1.0, abs=1e-5) and c.edge_overlap == 1.0
    assert own.styles[0].scores.reduction == pytest.approx(1.0)
    candidates = {
        "photo": photo,
        "stylised": stylised,
        "painting": resize_long_side(painting, SIZE),
        "grey": Image.new("RGB", photo.size, (128, 128, 128)),
    }
    style = {
        k: evaluate_image(scorer, v, photo, [painting]).styles[0].scores
        for k, v in candidates.items()
    }
    assert style["painting"].distance < style["stylised"].distance < style["photo"].distance
    assert style["painting"].colour_distance < 0.1 < style["photo"].colour_distance
    assert style["painting"].statistics_distance < style["photo"].statistics_distance
    assert min(style, key=lambda k: style[k].distance) == "painting"


def test_a_grey_picture_has_the_worst_content_fidelity(
    scorer: Scorer, photo: Image.Image, stylised: Image.Image
) -> None:
    grey = evaluate_image(scorer, Image.new("RGB", photo.size, (128, 128, 128)), photo).content
    blur = evaluate_image(scorer, photo.filter(ImageFilter.GaussianBlur(2)), photo).content
    painted = evaluate_image(scorer, stylised, photo).content
    assert grey.edge_overlap == 0.0
    for better in (blur, painted):
        assert better.similarity > grey.similarity
        assert better.feature_error < grey.feature_error
        assert better.edge_overlap > grey.edge_overlap


def test_blending_toward_the_photo_raises_fidelity_and_lowers_the_style_match(
    scorer: Scorer, photo: Image.Image, painting: Image.Image, stylised: Image.Image
) -> None:
    scores = [
        evaluate_image(scorer, Image.blend(stylised, photo, t), photo, [painting])
        for t in (0.0, 0.5, 0.9)
    ]
    similarity = [s.content.similarity for s in scores]
    ssim = [s.content.ssim for s in scores]
    style = [s.styles[0].scores.distance for s in scores]
    assert similarity == sorted(similarity) and ssim == sorted(ssim)
    assert style == sorted(style)


def test_the_image_metrics_have_their_ranges() -> None:
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    red = Image.new("RGB", (64, 64), (220, 20, 20))
    blue = Image.new("RGB", (64, 64), (20, 20, 220))
    assert colour_distance(red, red) == pytest.approx(0.0, abs=1e-6)
    assert colour_distance(red, blue) == pytest.approx(1.0)
    assert 0.0 < colour_distance(noise, red) < 1.0
    assert luminance_ssim(noise, noise) == pytest.approx(1.0, abs=1e-5)
    assert luminance_ssim(noise, red) < 0.1
    assert edge_overlap(red, blue) == 1.0  # neither has an outline: they agree


def test_references_of_another_size_are_resized_and_said(
    scorer: Scorer, photo: Image.Image, stylised: Image.Image
) -> None:
    big = photo.resize((photo.width * 2, photo.height * 2))
    result = evaluate_image(scorer, stylised, big)
    assert result.size == stylised.size
    assert len(result.notes) == 1 and "resized from" in result.notes[0]
    assert "stretched" not in result.notes[0]
    square = evaluate_image(scorer, stylised, photo.resize((SIZE, SIZE)))
    assert "stretched" in square.notes[0]


def test_a_flickering_video_has_a_larger_warping_error(
    scorer: Scorer, images: Path, tmp_path: Path
) -> None:
    frames = sorted((images / "video" / "sintel_market_frames").glob("*.png"))[:4]
    source, steady, flicker = (tmp_path / n for n in ("source", "steady", "flicker"))
    for folder in (source, steady, flicker):
        folder.mkdir()
    rng = np.random.default_rng(0)
    for i, file in enumerate(frames):
        frame = resize_long_side(load_image(file).convert("RGB"), 128)
        frame.save(source / f"{i:03d}.png")
        tinted = np.asarray(frame, dtype=np.float32) * np.array([1.0, 0.8, 0.6])
        Image.fromarray(tinted.astype(np.uint8)).save(steady / f"{i:03d}.png")
        shift = rng.uniform(-60, 60, 3)  # a colour cast that changes every frame
        Image.fromarray(np.clip(tinted + shift, 0, 255).astype(np.uint8)).save(
            flicker / f"{i:03d}.png"
        )
    seen: list[tuple[int, int]] = []
    steady_score = evaluate_video(scorer, steady, source, on_frame=lambda d, t: seen.append((d, t)))
    flicker_score = evaluate_video(scorer, flicker, source)
    assert seen[-1] == (4, 4) and steady_score.frames == 4
    assert len(steady_score.temporal.per_frame) == 3
    assert flicker_score.temporal.warping_error > 3 * steady_score.temporal.warping_error
    assert steady_score.content.similarity > 0.9


def test_the_cli_prints_the_scores_as_text_and_json(
    stylised: Image.Image,
    photo: Image.Image,
    painting_path: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out, ref = tmp_path / "out.png", tmp_path / "photo.png"
    stylised.save(out)
    photo.save(ref)
    assert main(["evaluate", str(out), "--content", str(ref), "--style", str(painting_path)]) == 0
    text = capsys.readouterr().out
    assert "feature similarity" in text and "style match: hokusai_great_wave.jpg" in text
    assert main(["evaluate", str(out), "--content", str(ref), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["size"] == list(stylised.size) and report["styles"] == []
    assert 0.3 < report["content"]["similarity"] < 1.0


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: [str(d / "missing.png"), "--content", str(d / "photo.png")], "not found"),
        (lambda d: [str(d / "tiny.png"), "--content", str(d / "photo.png")], "at least 32 px"),
        (lambda d: [str(d), "--content", str(d / "photo.png")], "is a video"),
    ],
)
def test_bad_inputs_get_one_line_errors(
    make: object, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Image.new("RGB", (64, 64)).save(tmp_path / "photo.png")
    Image.new("RGB", (16, 16)).save(tmp_path / "tiny.png")
    assert main(["evaluate", *make(tmp_path)]) == 2  # type: ignore[operator]
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_a_too_small_picture_is_refused_by_the_api(scorer: Scorer, photo: Image.Image) -> None:
    with pytest.raises(InputError, match="at least 32 px"):
        evaluate_image(scorer, Image.new("RGB", (20, 40)), photo)


def test_a_masked_picture_is_scored_inside_and_outside_its_mask(
    engine: StyleTransfer,
    scorer: Scorer,
    photo: Image.Image,
    painting: Image.Image,
    painting_path: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sky = Image.new("L", photo.size, 0)
    sky.paste(255, (0, 0, photo.width, photo.height // 2))
    picture = engine.stylize(photo, painting, preset="instant", size=SIZE, mask=(sky,))
    scores = evaluate_image(scorer, picture, photo, [painting], [sky])
    whole = evaluate_image(scorer, engine.stylize(photo, painting, preset="instant", size=SIZE),
                           photo, [painting], [sky])  # fmt: skip
    (match,), (whole_match,) = scores.styles, whole.styles
    # Inside the mask both pictures are painted alike, so they score alike there; over
    # the whole picture they differ, since one keeps the photo below the mask.
    assert match.region_distance == pytest.approx(whole_match.region_distance, rel=0.1)
    assert match.scores.distance != pytest.approx(whole_match.scores.distance, rel=0.1)
    assert scores.kept_psnr == float("inf")
    assert whole.kept_psnr is not None and whole.kept_psnr < 25  # painted where it should not be
    out, ref, mask = tmp_path / "out.png", tmp_path / "photo.png", tmp_path / "sky.png"
    picture.save(out)
    photo.save(ref)
    sky.save(mask)
    base = ["evaluate", str(out), "--content", str(ref), "--style", str(painting_path)]
    assert main([*base, "--mask", str(mask)]) == 0
    assert "inside its mask" in capsys.readouterr().out
    assert main([*base, "--mask", f"{mask},{mask}"]) == 2
    assert "2 masks given for 1 style image" in capsys.readouterr().err


def test_the_cli_scores_a_folder_of_frames_as_a_video(
    images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frames = sorted((images / "video" / "sintel_market_frames").glob("*.png"))[:3]
    source, output = tmp_path / "source", tmp_path / "output"
    for folder in (source, output):
        folder.mkdir()
    for i, file in enumerate(frames):
        frame = resize_long_side(load_image(file).convert("RGB"), 96)
        frame.save(source / f"{i:03d}.png")
        frame.filter(ImageFilter.GaussianBlur(1)).save(output / f"{i:03d}.png")
    assert main(["evaluate", str(output), "--content", str(source), "--json", "-q"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["frames"] == 3 and len(report["temporal"]["per_frame"]) == 2
    assert report["temporal"]["warping_error"] >= 0 and report["content"]["similarity"] > 0.8
    still = tmp_path / "still.png"
    Image.open(output / "000.png").save(still)
    assert main(["evaluate", str(output), "--content", str(still)]) == 2  # a video needs one


def test_a_masked_video_is_scored_inside_and_outside_each_frames_mask(
    scorer: Scorer,
    images: Path,
    painting: Image.Image,
    painting_path: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Each frame paints the painting over its left half on even frames and its right
    half on odd ones; the per-frame masks that say so find the photo kept exactly, and a
    still mask finds it painted where it says the photo is."""
    frames = sorted((images / "video" / "sintel_market_frames").glob("*.png"))[:4]
    source, output, masks = (tmp_path / n for n in ("source", "output", "masks"))
    for folder in (source, output, masks):
        folder.mkdir()
    for i, file in enumerate(frames):
        frame = resize_long_side(load_image(file).convert("RGB"), 128)
        w, h = frame.size
        mask = Image.new("L", frame.size, 0)
        mask.paste(255, (0, 0, w // 2, h) if i % 2 == 0 else (w // 2, 0, w, h))
        frame.save(source / f"{i:03d}.png")
        Image.composite(painting.resize(frame.size), frame, mask).save(output / f"{i:03d}.png")
        mask.save(masks / f"mask_{i:03d}.png")
    left = masks / "mask_000.png"
    moving = evaluate_video(scorer, output, source, [painting], [masks])
    still = evaluate_video(scorer, output, source, [painting], [left])
    assert moving.kept_psnr == float("inf")
    assert still.kept_psnr is not None and still.kept_psnr < 25  # odd frames, painted left
    inside, inside_still = moving.styles[0].region_distance, still.styles[0].region_distance
    assert inside is not None and inside_still is not None and inside < 0.5 * inside_still
    base = ["evaluate", str(output), "--content", str(source), "--style", str(painting_path)]
    assert main([*base, "--mask", str(masks), "-q"]) == 0
    text = capsys.readouterr().out
    assert "inside its mask" in text and "PSNR inf dB in the worst frame" in text
    (masks / "mask_003.png").unlink()
    assert main([*base, "--mask", str(masks)]) == 2
    assert "holds 3 masks and 4 frames are scored" in capsys.readouterr().err
    assert main(["evaluate", str(output), "--content", str(source), "--mask", str(left)]) == 2
    assert "name them with --style" in capsys.readouterr().err


def test_a_large_picture_scored_in_tiles_scores_as_the_whole(
    state_dict: dict[str, torch.Tensor],
    photo: Image.Image,
    painting: Image.Image,
    stylised: Image.Image,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Above WHOLE_PIXELS the features are gathered tile by tile (memory follows the
    tile); every score must be the whole picture's. Small tiles force it here."""
    from styleshift.core import metrics

    photo = photo.resize(stylised.size)
    painting = metrics.fit_painting(painting, stylised.size)  # as evaluate scores it
    mask = Image.new("L", stylised.size, 0)
    mask.paste(255, (0, 0, stylised.width // 2, stylised.height))

    def scores(scorer: Scorer) -> list[float]:
        content, style = scorer.content(stylised, photo), scorer.style(stylised, photo, painting)
        return [
            content.similarity,
            content.feature_error,
            *style.layers.values(),
            style.statistics_distance,
            scorer.region_distance(stylised, painting, mask),
        ]

    whole = scores(Scorer(state_dict))
    monkeypatch.setattr(metrics, "WHOLE_PIXELS", 0)
    monkeypatch.setattr(metrics, "TILE", 64)  # several tiles in each direction
    tiled = scores(Scorer(state_dict))
    assert tiled == pytest.approx(whole, rel=1e-4, abs=1e-6)
    monkeypatch.setattr(metrics, "MARGIN", 16)  # the whole margin is what makes them agree
    assert scores(Scorer(state_dict)) != pytest.approx(whole, rel=1e-3)


def test_each_image_goes_through_vgg_once_per_evaluation(
    state_dict: dict[str, torch.Tensor], photo: Image.Image, painting: Image.Image
) -> None:
    """The picture serves its content score and every painting's; the painting, kept
    while other pictures come and go, serves the next pictures too."""
    scorer = Scorer(state_dict)
    calls = []
    forward = scorer.model.forward
    scorer.model.forward = lambda x: calls.append(x.shape) or forward(x)  # type: ignore[method-assign]
    second = painting.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    evaluate_image(scorer, photo, photo, [painting, second])
    assert len(calls) == 3  # the photo (which is also the picture here), two paintings
    for k in range(10):  # more pictures than the cache holds entries
        evaluate_image(scorer, photo.rotate(k + 1), photo, [painting])
    assert len(calls) == 3 + 10  # each new picture alone
