"""Scoring a finished picture or video, made by styleshift or any other tool.

The output is what is scored: the photo (or each content frame) is resized to it, and each
painting to its long side; the notes say what was resized. The metrics are metrics.py's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

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
from ..core.regions import FEATHER, Regions, check_count, check_masks, open_regions
from ..io.image import ImageLike, as_image
from ..io.media import kind_of

if TYPE_CHECKING:
    from ..io.videoio import NumberedFrames, VideoInfo


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
    paintings = [fit_painting(as_image(s, what="style image"), picture.size) for s in styles]
    inside: Sequence[float | None] = [None] * len(styles)
    kept = None
    if regions is not None:
        notes += regions.notes
        inside, kept = _region_scores(scorer, picture, photo, paintings, regions)
    return Evaluation(
        output=out_name,
        size=picture.size,
        content=scorer.content(picture, photo),
        styles=tuple(
            StyleMatch(_name(s, f"style {i + 1}"), scorer.style(picture, photo, p), d)
            for i, (s, p, d) in enumerate(zip(styles, paintings, inside, strict=True))
        ),
        notes=tuple(notes),
        kept_psnr=kept,
    )


def _region_scores(
    scorer: Scorer,
    picture: Image.Image,
    photo: Image.Image,
    paintings: Sequence[Image.Image],
    regions: Regions,
) -> tuple[list[float], float | None]:
    """Each painting's distance inside its region, and the photo's PSNR outside them all
    (None where the masks leave nothing of it)."""
    w, h = picture.size
    inside = []
    for i, painting in enumerate(paintings):
        (index,) = [r for r, region in enumerate(regions.regions) if i in region.styles]
        inside.append(
            scorer.region_distance(picture, painting, _grey(regions.weights(h, w)[index]))
        )
    band = math.ceil(3 * FEATHER * max(w, h))  # three of the feather's deviations
    try:
        return inside, kept_psnr(picture, photo, _grey(regions.painted(h, w)[0]), band)
    except ValueError:  # masks that leave nothing of the photo
        return inside, None


def _grey(weight: Tensor) -> Image.Image:
    """A (1, H, W) weight in 0..1 as a mask picture."""
    return Image.fromarray((weight[0].numpy() * 255 + 0.5).astype(np.uint8))


def is_video(path: str | Path) -> bool:
    return kind_of(path) == "video"


def check_video(
    output: str | Path,
    content: str | Path,
    styles: int,
    masks: Sequence[str | Path | Image.Image] = (),
) -> tuple[VideoInfo, VideoInfo, dict[int, NumberedFrames]]:
    """Refuse what cannot be scored before any work: the two videos' sections and the
    masks given as a folder or video, which need one mask for every frame scored."""
    from ..io.videoio import per_frame, probe  # PyAV: the [video] extra, loaded when needed

    if not is_video(content):
        raise InputError(
            f"{Path(output).name} is a video; score it against the video it was made from "
            "(--content INPUT_VIDEO)"
        )
    out_info, in_info = probe(output), probe(content)
    frames = min(out_info.frames, in_info.frames)
    if frames < 2:
        raise InputError(f"{Path(output).name} has {out_info.frames} frame(s); need two or more")
    if masks:
        check_count(len(masks), styles)
    videos = per_frame(masks)
    for i, found in videos.items():
        if len(found) < frames:
            raise InputError(
                f"mask '{masks[i]}' holds {len(found)} masks and {frames} frames are scored; "
                "give one mask per frame (mask N goes with frame N)"
            )
    check_masks([videos[i].frame(0) if i in videos else m for i, m in enumerate(masks)])
    return out_info, in_info, videos


def evaluate_video(
    scorer: Scorer,
    output: str | Path,
    content: str | Path,
    styles: Sequence[ImageLike] = (),
    masks: Sequence[str | Path | Image.Image] = (),
    *,
    on_frame: Callable[[int, int], None] | None = None,
) -> VideoEvaluation:
    """Scores a stylised video (or folder of frames) against the video it was made from.

    The flow is taken from the content frames, as the video benchmark does; frame i of the
    output is paired with frame i of the content. `masks` are as `styleshift video`'s (a
    picture, an automatic mask found on every frame, or a folder or video of one mask per
    frame): each painting is also scored inside its region, averaged over the frames, and
    the photo outside them, in the worst frame. `on_frame(done, total)` reports progress.
    """
    from ..core import flow  # PyAV and OpenCV: the [video] extra, loaded when needed
    from ..io import videoio  # PyAV and OpenCV: the [video] extra, loaded when needed

    out_info, in_info, mask_frames = check_video(output, content, len(styles), masks)
    frames = min(out_info.frames, in_info.frames)
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
    inside: list[list[float]] = [[] for _ in styles]
    kept: list[float | None] = []
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
        if masks:
            here = [mask_frames[i].frame(index) if i in mask_frames else m
                    for i, m in enumerate(masks)]  # fmt: skip
            regions = open_regions(here, source, len(styles))
            if index == 0:
                notes += regions.notes
            distances, psnr = _region_scores(
                scorer, picture, photo, [p for _, p in paintings], regions
            )
            for i, d in enumerate(distances):
                inside[i].append(d)
            kept.append(psnr)
        current = (np.asarray(photo), np.asarray(picture.convert("RGB")))
        if previous is not None:
            link = flow.pair(previous[0], current[0])
            per_frame.append(flow.warping_error(previous[1], current[1], link))
            shares.append(float(link.mask.mean()))
        previous = current
        if on_frame is not None:
            on_frame(index + 1, frames)
    measured = [k for k in kept if k is not None]
    return VideoEvaluation(
        output=Path(output).name,
        size=size,
        frames=len(content_scores),
        temporal=Temporal(float(np.mean(per_frame)), float(np.mean(shares)), tuple(per_frame)),
        content=_mean_content(content_scores),
        styles=tuple(
            StyleMatch(name, _mean_style(scores), _mean(distances))
            for (name, _), scores, distances in zip(paintings, style_scores, inside, strict=True)
        ),
        notes=tuple(notes),
        kept_psnr=min(measured) if measured else None,
    )


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if values else None


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
        worst = " in the worst frame" if isinstance(evaluation, VideoEvaluation) else ""
        lines.append(
            f"photo kept outside the masks: PSNR {evaluation.kept_psnr:.1f} dB{worst} "
            "(inf: exactly)"
        )
    lines += [f"note: {n}" for n in evaluation.notes]
    return "\n".join(lines)
