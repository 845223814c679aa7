"""Scoring a finished picture or video, made by styleshift or any other tool.

The output is what is scored: the photo (or each content frame) is resized to it, and each
painting to its long side; the notes say what was resized. The metrics are metrics.py's.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from torch import Tensor

from ..core.errors import InputError
from ..core.metrics import (
    MIN_SIDE,
    ContentScores,
    Scorer,
    StyleScores,
    fit_painting,
    fit_photo,
    kept_psnr,
)
from ..core.regions import FEATHER, open_regions
from ..io.image import ImageLike, as_image
from ..io.media import kind_of

# Extensions read as videos; a folder is a sequence of frames (as `styleshift video`).


@dataclass(frozen=True)
class StyleMatch:
    painting: str
    scores: StyleScores
    region_distance: float | None = None  # inside the painting's mask, if one was given


@dataclass(frozen=True)
class Temporal:
    warping_error: float  # mean over consecutive frames, 0..1 (as bench/video.py)
    consistent: float  # mean share of pixels where the content's flow is consistent
    per_frame: tuple[float, ...]  # frame i-1 -> i, for i = 1..frames-1


@dataclass(frozen=True)
class Evaluation:
    """A still picture's scores."""

    output: str
    size: tuple[int, int]  # (width, height): the size everything was compared at
    content: ContentScores
    styles: tuple[StyleMatch, ...]
    notes: tuple[str, ...]  # what was resized, or paired, to score it
    # With masks: the PSNR of the picture against the photo where no mask paints, away
    # from the feather (infinity where it is the photo exactly).
    kept_psnr: float | None


@dataclass(frozen=True)
class VideoEvaluation(Evaluation):
    """A video's scores: the temporal ones, and the still ones averaged over its frames."""

    frames: int
    temporal: Temporal


def _name(x: ImageLike, fallback: str) -> str:
    return Path(x).name if isinstance(x, (str, Path)) else fallback


def _size_note(what: str, before: tuple[int, int], after: tuple[int, int]) -> str:
    note = f"{what} was resized from {before[0]}x{before[1]} to {after[0]}x{after[1]}"
    if abs(before[0] / before[1] - after[0] / after[1]) > 0.01 * after[0] / after[1]:
        note += " (its shape differs from the output's, so it was stretched to fit)"
    return note


def _check_size(size: tuple[int, int], name: str) -> None:
    if min(size) < MIN_SIDE:
        raise InputError(
            f"{name} is {size[0]}x{size[1]}; scoring needs at least {MIN_SIDE} px on each side"
        )


def _mean_content(scores: Sequence[ContentScores]) -> ContentScores:
    return ContentScores(
        *(float(np.mean([getattr(s, f) for s in scores])) for f in ContentScores.__annotations__)
    )


def _mean_style(scores: Sequence[StyleScores]) -> StyleScores:
    first = scores[0]
    mean = {
        f: float(np.mean([getattr(s, f) for s in scores]))
        for f in StyleScores.__annotations__
        if f != "layers"
    }
    layers = {n: float(np.mean([s.layers[n] for s in scores])) for n in first.layers}
    return StyleScores(layers=layers, **mean)


def evaluate_image(
    scorer: Scorer,
    output: ImageLike,
    content: ImageLike,
    styles: Sequence[ImageLike] = (),
    masks: Sequence[str | Path | Image.Image] = (),
) -> Evaluation:
    """Scores `output` against the photo `content` and each of `styles`; with `masks`
    (one per style, as `Options.mask`), also each painting inside its region and the
    photo outside every region."""
    picture = as_image(output, what="output").convert("RGB")
    out_name = _name(output, "output")
    _check_size(picture.size, out_name)
    photo = as_image(content, what="content image")
    notes: list[str] = []
    if photo.size != picture.size:
        notes.append(
            _size_note(f"the photo {_name(content, '')}".strip(), photo.size, picture.size)
        )
    regions = open_regions(masks, photo, len(styles)) if masks else None
    photo = fit_photo(photo, picture.size)
    w, h = picture.size
    matches = []
    for i, style in enumerate(styles):
        painting = fit_painting(as_image(style, what="style image"), picture.size)
        scores = scorer.style(picture, photo, painting)
        inside = None
        if regions is not None:
            (index,) = [r for r, region in enumerate(regions.regions) if i in region.styles]
            inside = scorer.region_distance(picture, painting, _grey(regions.weights(h, w)[index]))
        matches.append(StyleMatch(_name(style, f"style {i + 1}"), scores, inside))
    kept = None
    if regions is not None:
        notes += regions.notes
        band = math.ceil(3 * FEATHER * max(w, h))  # three of the feather's deviations
        with contextlib.suppress(ValueError):  # masks that leave nothing of the photo
            kept = kept_psnr(picture, photo, _grey(regions.painted(h, w)[0]), band)
    return Evaluation(
        output=out_name,
        size=picture.size,
        content=scorer.content(picture, photo),
        styles=tuple(matches),
        notes=tuple(notes),
        kept_psnr=kept,
    )


def _grey(weight: Tensor) -> Image.Image:
    """A (1, H, W) weight in 0..1 as a mask picture."""
    return Image.fromarray((weight[0].numpy() * 255 + 0.5).astype(np.uint8))


def is_video(path: str | Path) -> bool:
    return kind_of(path) == "video"


def evaluate_video(
    scorer: Scorer,
    output: str | Path,
    content: str | Path,
    styles: Sequence[ImageLike] = (),
    *,
    on_frame: Callable[[int, int], None] | None = None,
) -> VideoEvaluation:
    """Scores a stylised video (or folder of frames) against the video it was made from.

    The flow is taken from the content frames, as the video benchmark does; frame i of the
    output is paired with frame i of the content. `on_frame(done, total)` reports progress.
    """
    from ..core import flow  # PyAV and OpenCV: the [video] extra, loaded when needed
    from ..io import videoio  # PyAV and OpenCV: the [video] extra, loaded when needed

    out_info, in_info = videoio.probe(output), videoio.probe(content)
    frames = min(out_info.frames, in_info.frames)
    if frames < 2:
        raise InputError(f"{Path(output).name} has {out_info.frames} frame(s); need two or more")
    notes = []
    if out_info.frames != in_info.frames:
        notes.append(
            f"the output has {out_info.frames} frames and the content {in_info.frames}; "
            f"the first {frames} of each were paired"
        )
    paintings: list[tuple[str, Image.Image]] = []
    previous: tuple[np.ndarray, np.ndarray] | None = None  # (content, stylised)
    per_frame, shares = [], []
    content_scores: list[ContentScores] = []
    style_scores: list[list[StyleScores]] = [[] for _ in styles]
    size: tuple[int, int] = (0, 0)
    pairs = zip(videoio.read_frames(out_info), videoio.read_frames(in_info), strict=False)
    for index, (picture, source) in enumerate(pairs):
        if index >= frames:
            break
        if index == 0:
            size = picture.size
            _check_size(size, Path(output).name)
            if source.size != size:
                notes.append(_size_note("each content frame", source.size, size))
            paintings = [
                (_name(s, f"style {i + 1}"), fit_painting(as_image(s, what="style image"), size))
                for i, s in enumerate(styles)
            ]
        photo = fit_photo(source, size)
        picture = picture.convert("RGB").resize(size) if picture.size != size else picture
        content_scores.append(scorer.content(picture, photo))
        for i, (_, painting) in enumerate(paintings):
            style_scores[i].append(scorer.style(picture, photo, painting))
        current = (np.asarray(photo), np.asarray(picture.convert("RGB")))
        if previous is not None:
            link = flow.pair(previous[0], current[0])
            per_frame.append(flow.warping_error(previous[1], current[1], link))
            shares.append(float(link.mask.mean()))
        previous = current
        if on_frame is not None:
            on_frame(index + 1, frames)
    return VideoEvaluation(
        output=Path(output).name,
        size=size,
        frames=len(content_scores),
        temporal=Temporal(float(np.mean(per_frame)), float(np.mean(shares)), tuple(per_frame)),
        content=_mean_content(content_scores),
        styles=tuple(
            StyleMatch(name, _mean_style(scores))
            for (name, _), scores in zip(paintings, style_scores, strict=True)
        ),
        notes=tuple(notes),
        kept_psnr=None,
    )


def _content_lines(c: ContentScores) -> list[str]:
    return [
        f"  feature similarity  {c.similarity:7.3f}   relu4_2 cosine; 1 = the photo",
        f"  feature error       {c.feature_error:7.3f}   relu4_2 relative error; 0 = the photo",
        f"  SSIM (luminance)    {c.ssim:7.3f}   1 = the photo",
        f"  edge overlap (F1)   {c.edge_overlap:7.3f}   1 = the photo's outlines",
    ]


def _style_lines(m: StyleMatch) -> list[str]:
    s = m.scores
    layers = ", ".join(f"{n} {v:.3g}" for n, v in s.layers.items())
    return [
        f"style match: {m.painting}",
        f"  Gram distance       {s.distance:7.4f}   mean over the layers; 0 = the painting",
        *(
            [f"    inside its mask   {m.region_distance:7.4f}   the painted region alone"]
            if m.region_distance is not None
            else []
        ),
        f"    per layer         {layers}",
        f"  Gram reduction      {s.reduction:7.2f}x  the photo's distance over the output's",
        f"  mean/std distance   {s.statistics_distance:7.3f}   0 = the painting",
        f"  mean/std reduction  {s.statistics_reduction:7.2f}x",
        f"  colour distance     {s.colour_distance:7.3f}   CIELAB histograms; 0 = the same",
    ]


def describe(evaluation: Evaluation | VideoEvaluation) -> str:
    """The scores as text for a terminal (docs/evaluation.md says what good looks like)."""
    w, h = evaluation.size
    lines = [f"{evaluation.output} ({w}x{h})"]
    if isinstance(evaluation, VideoEvaluation):
        t = evaluation.temporal
        lines += [
            f"temporal ({evaluation.frames} frames)",
            f"  warping error       {t.warping_error:7.4f}   0 = no flicker along the motion",
            f"  consistent flow     {t.consistent:7.1%}   pixels where it was measured",
            "content fidelity (mean over frames)",
        ]
    else:
        lines.append("content fidelity")
    lines += _content_lines(evaluation.content)
    for match in evaluation.styles:
        lines += _style_lines(match)
    if evaluation.kept_psnr is not None:
        lines.append(
            f"photo kept outside the masks: PSNR {evaluation.kept_psnr:.1f} dB (inf: exactly)"
        )
    lines += [f"note: {n}" for n in evaluation.notes]
    return "\n".join(lines)
