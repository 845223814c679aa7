"""Temporally stable video style transfer (Ruder, Dosovitskiy and Brox, 2016), CPU-friendly.

The first frame is stylised with the full preset. Each later frame starts from the
previous stylised frame warped onto it by dense optical flow, and its objective adds a
temporal term that ties it to that warped frame wherever the flow is consistent both
ways; so later frames need only a short single-scale optimisation. With a feed-forward
method (preset instant) every frame is one pass, and each later one is mixed with the
warped previous result where the flow is consistent, which damps the flicker.

`VideoStylizer` is the streaming API (images in, stylised images out). `stylize_video`
runs a whole file or folder of frames: finished frames are kept in a work folder as they
come, a rerun resumes where an interrupted one stopped, and the output appears complete
or not at all.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..core import color
from ..core.device import resolve_device
from ..core.errors import InputError, OptionError, OutputError
from ..core.flow import FramePair, pair
from ..core.options import Options, resolve_options
from ..core.regions import check_masks, open_painting_masks, open_regions
from ..core.results import Progress, Result
from ..core.version import __version__
from ..io.files import TEMP_PREFIX, refuse_inputs, remove_own, write_json
from ..io.image import ImageLike, as_image, as_list, save_image, scaled_size
from ..io.videoio import (
    FRAME_NAME,
    VideoInfo,
    check_video_output,
    even_size,
    frame_name,
    per_frame,
    probe,
    read_frames,
    write_output,
)
from ..transfer import StyleTransfer

__all__ = [
    "FrameResult",
    "VideoProgress",
    "VideoReport",
    "VideoSettings",
    "VideoStylizer",
    "stylize_video",
]

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class VideoSettings:
    """What video adds to the engine's options."""

    temporal_weight: float = 200.0  # measured: docs/performance.md (video)
    later_iterations: int = 20  # L-BFGS evaluations for each frame after the first
    # Feed-forward methods: the share of the previous stylised frame, moved along the
    # flow, mixed into each new one where the flow is consistent (docs/performance.md).
    blend: float = 0.7


@dataclass(frozen=True)
class VideoProgress:
    """One optimisation step of one frame, as a video callback sees it."""

    frame: int  # 1-based
    frames: int | None  # total, when known
    step: Progress  # the engine's record for the current frame
    frames_done: int
    seconds_per_frame: float | None  # mean over the later frames done, else the first's
    eta: float | None  # seconds left for the whole run, once there is a rate to go by


VideoCallback = Callable[[VideoProgress], None]


@dataclass(frozen=True)
class FrameResult:
    image: Image.Image
    index: int  # 1-based, over the frames this stylizer has seen
    seconds: float
    iterations: int
    losses: dict[str, float]
    consistent: float | None  # share of pixels tied to the previous frame
    notes: tuple[str, ...] = ()  # the engine's (a mask stretched to the frame, say)


class VideoStylizer:
    """Stylises a sequence of frames one after another, each tied to the one before."""

    def __init__(
        self,
        engine: StyleTransfer,
        styles: ImageLike | Sequence[ImageLike],
        options: Options | None = None,
        settings: VideoSettings | None = None,
        first_frame: int = 0,
    ) -> None:
        """`first_frame` is the number (0-based) of the first frame in its whole video or
        folder: a folder of per-frame masks is read from there on."""
        self.engine = engine
        self.styles = [as_image(s, what="style image") for s in as_list(styles)]
        self.options = resolve_options(options or Options(), engine.device, len(self.styles))
        check_options(self.options)
        # A mask given as a folder or a video holds one mask per frame of the whole input.
        self._mask_frames = per_frame(self.options.mask or ())
        self._first_frame = first_frame
        # The paintings' masks are the same every frame: opened once (an automatic one is
        # found once), their notes told with the first frame this stylizer makes.
        self._painting_notes: tuple[str, ...] = ()
        if self.options.style_mask:
            opened, self._painting_notes = open_painting_masks(self.options.style_mask, self.styles)
            masks = tuple(r.regions[0].mask for r in opened if r is not None)
            self.options = replace(self.options, style_mask=masks)  # type: ignore[arg-type]
        self.settings = settings or VideoSettings()
        check_settings(self.settings)
        self.later_options = (
            self.options
            if self.options.feedforward
            else replace(
                self.options, multiscale=False, iterations=(self.settings.later_iterations,)
            )
        )
        self.count = 0
        self._previous: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]] | None = None
        self._first: tuple[float, int] | None = None  # seconds and evaluations
        self._later_seconds: list[float] = []

    def frame_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """The output size for input frames of `size`: the option's long side, even sides."""
        return even_size(scaled_size(size, self.options.size))

    def prime(self, content: ImageLike, stylised: ImageLike, index: int | None = None) -> None:
        """Continue after a frame stylised earlier (resuming): its content, its result and
        its 1-based number (default: the next)."""
        frame = self.prepare(as_image(content, what="frame"))
        image = as_image(stylised, what="stylised frame").convert("RGB")
        if image.size != frame.size:
            image = image.resize(frame.size, Image.Resampling.LANCZOS)
        self._previous = (np.asarray(frame), np.asarray(image))
        self.count = self.count + 1 if index is None else index

    def stream(
        self,
        frames: Iterable[ImageLike],
        callback: VideoCallback | None = None,
        total: int | None = None,
    ) -> Iterator[FrameResult]:
        for content in frames:
            yield self.frame(content, callback, total)

    def frame(
        self, content: ImageLike, callback: VideoCallback | None = None, total: int | None = None
    ) -> FrameResult:
        """Stylise the next frame; raises the engine's Interrupted on Ctrl-C."""
        frame = self.prepare(as_image(content, what="frame"))
        index = self.count + 1
        on_step = None if callback is None else self._reporter(callback, index, total)
        current = np.asarray(frame)
        link: FramePair | None = None
        masks = self._masks_at(index)
        if self._previous is None:
            # The size evened, maybe by a pixel.
            opts = replace(self.options, size=max(frame.size), mask=masks)
            result = self.engine.run(frame, self.styles, opts, callback=on_step)
        else:
            link = pair(self._previous[0], current)
            later = self._later_instant if self.options.feedforward else self._later
            result = later(frame, link, on_step, masks)
        self.count = index
        self._previous = (current, np.asarray(result.image.convert("RGB")))
        evaluations = sum(s.iterations for s in result.scales)
        if link is None:
            self._first = (result.seconds, evaluations)
        else:
            self._later_seconds.append(result.seconds)
        notes, self._painting_notes = (*self._painting_notes, *result.notes), ()
        return FrameResult(
            image=result.image,
            index=index,
            seconds=result.seconds,
            iterations=evaluations,
            losses=result.losses,
            consistent=None if link is None else float(link.mask.mean()),
            notes=notes,
        )

    def _masks_at(self, index: int) -> tuple[Any, ...] | None:
        """The masks of frame `index` (1-based): a per-frame folder's or video's for it."""
        if not self.options.mask:
            return self.options.mask
        at = self._first_frame + index - 1
        return tuple(
            self._mask_frames[i].frame(at) if i in self._mask_frames else m
            for i, m in enumerate(self.options.mask)
        )

    def prepare(self, image: Image.Image) -> Image.Image:
        """A frame as it is stylised: RGB, at the output size with even sides."""
        image = image.convert("RGB")
        size = self.frame_size(image.size)
        return image if image.size == size else image.resize(size, Image.Resampling.LANCZOS)

    def _later(
        self,
        frame: Image.Image,
        link: FramePair,
        on_step: Callable[[Progress], None] | None,
        masks: tuple[Any, ...] | None,
    ) -> Result:
        assert self._previous is not None
        device = self.engine.device
        warped = link.warp_previous(self._previous[1].astype(np.float32) / 255.0)
        start = torch.from_numpy(warped).permute(2, 0, 1)[None].clamp(0, 1).to(device)
        target = start
        if self.options.preserve_color == "luminance":
            # The engine optimises luminance alone in this mode; compare like with like.
            target = color.luminance(start)
        consistent = torch.from_numpy(link.mask)[None, None].to(device)
        weight = self.settings.temporal_weight

        def temporal(image: torch.Tensor) -> torch.Tensor:
            return weight * torch.mean(consistent * (image - target) ** 2)

        return self.engine.run(
            frame,
            self.styles,
            replace(self.later_options, size=max(frame.size), mask=masks),
            callback=on_step,
            init=start,
            terms={"temporal": temporal},
        )

    def _later_instant(
        self,
        frame: Image.Image,
        link: FramePair,
        on_step: Callable[[Progress], None] | None,
        masks: tuple[Any, ...] | None,
    ) -> Result:
        assert self._previous is not None
        opts = replace(self.options, size=max(frame.size))
        regions = None
        if masks:
            # Opened once for the engine and the blend: an automatic mask is found once.
            regions = open_regions(masks, frame, len(self.styles))
            by_style: dict[int, Any] = {i: r.mask for r in regions.regions for i in r.styles}
            opts = replace(opts, mask=tuple(by_style[i] for i in range(len(self.styles))))
        result = self.engine.run(frame, self.styles, opts, callback=on_step)
        current = np.asarray(result.image.convert("RGB"), dtype=np.float32) / 255.0
        warped = link.warp_previous(self._previous[1].astype(np.float32) / 255.0)
        keep = link.mask[..., None].astype(np.float32) * self.settings.blend
        if regions is not None:  # where the photo is kept, it is this frame's
            painted = regions.painted(*current.shape[:2])
            keep = keep * painted[0].permute(1, 2, 0).numpy()
        mixed = keep * warped + (1 - keep) * current
        image = Image.fromarray((mixed * 255.0 + 0.5).clip(0, 255).astype(np.uint8))
        return replace(result, image=image)

    def seconds_per_frame(self) -> float | None:
        """Mean seconds of the later frames so far, else the first frame's."""
        if self._later_seconds:
            return sum(self._later_seconds) / len(self._later_seconds)
        return None if self._first is None else self._first[0]

    def _later_estimate(self) -> float | None:
        if self._later_seconds:
            return sum(self._later_seconds) / len(self._later_seconds)
        if self._first is None:
            return None
        # No later frame yet: scale the first frame's time by its evaluations.
        seconds, evaluations = self._first
        return seconds * self.settings.later_iterations / max(1, evaluations)

    def _reporter(
        self, callback: VideoCallback, index: int, total: int | None
    ) -> Callable[[Progress], None]:
        def on_step(p: Progress) -> None:
            later = self._later_estimate()
            left = p.eta  # of this frame; the engine gives none for a run's first steps
            if left is None and later is not None and index > 1:
                left = max(0.0, later - p.elapsed)
            eta = None
            if total is not None and left is not None and (later is not None or index == total):
                eta = left + (later or 0.0) * (total - index)
            callback(VideoProgress(index, total, p, index - 1, self.seconds_per_frame(), eta))

        return on_step


def check_options(options: Options) -> None:
    """Refuse the stylize options that mean nothing for a video."""
    if options.time is not None:
        raise OptionError(
            "--time sets the time of one picture; a video's pace is set by "
            "--later-iterations (or --preset instant); leave --time out"
        )


def _check_masks(masks: Sequence[Any], info: VideoInfo) -> None:
    """Refuse a bad mask before any work: a folder or video of per-frame masks must hold
    one for every frame of the section."""
    videos = per_frame(masks)
    last = info.first + info.frames
    for i, found in videos.items():
        if len(found) < last:
            holds = (
                f"mask folder '{masks[i]}' holds {len(found)} numbered masks"
                if found.info.kind == "frames"
                else f"mask video '{masks[i]}' has {len(found)} frames"
            )
            raise InputError(
                f"{holds}; frames {info.first + 1} to {last} need one each (mask N goes "
                "with frame N of the input)"
            )
    check_masks([videos[i].frame(info.first) if i in videos else m for i, m in enumerate(masks)])


def check_settings(settings: VideoSettings) -> None:
    if not settings.temporal_weight >= 0:
        raise OptionError(f"temporal weight must be zero or more, got {settings.temporal_weight}")
    if not 0 <= settings.blend <= 1:
        raise OptionError(f"blend must be between 0 and 1, got {settings.blend}")
    if settings.later_iterations < 1:
        raise OptionError(
            f"later iterations must be a positive whole number, got {settings.later_iterations}"
        )


# -- whole videos ----------------------------------------------------------------------


@dataclass
class VideoReport:
    output: Path
    frames: int
    resumed_from: int  # frames found finished in the work folder
    size: tuple[int, int]
    fps: float
    seconds: float
    first_frame_seconds: float | None
    later_frame_seconds: float | None  # mean
    notes: list[str] = field(default_factory=list)
    work_dir: Path | None = None  # kept (--keep-work), else None


def default_work_dir(output: Path) -> Path:
    return output.with_name(output.name + ".parts")


def _identity(path: Path) -> dict[str, Any]:
    """Enough to tell whether a file (or folder of frames) changed since a run started."""
    files = sorted(path.iterdir()) if path.is_dir() else [path]
    digest = hashlib.sha256()
    for f in files:
        st = f.stat()
        digest.update(f"{f.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return {"path": str(path.resolve()), "files": len(files), "digest": digest.hexdigest()}


def _manifest(
    info: VideoInfo, styles: Sequence[Path], options: Options, settings: VideoSettings
) -> dict[str, Any]:
    return {
        "styleshift": __version__,
        "input": _identity(info.path),
        "styles": [_identity(Path(s)) for s in styles],
        "section": {"first": info.first, "frames": info.frames, "fps": str(info.fps)},
        # Through JSON, as the manifest read back will be, so the two compare equal.
        "options": json.loads(json.dumps(options.to_dict())),
        "video": asdict(settings),
    }


def _frame_path(work: Path, index: int) -> Path:
    return work / frame_name(index)


def _decodes(path: Path) -> bool:
    """Whether a frame file decodes completely: a frame cut short (a kill during a write
    on a filesystem that does not order it, a disk that filled) is redone on resume."""
    try:
        with Image.open(path) as im:
            im.load()
        return True
    except (OSError, ValueError, SyntaxError):  # Pillow's ways of saying 'damaged'
        return False


def _finished(work: Path, frames: int) -> int:
    done = 0
    while done < frames and _decodes(_frame_path(work, done + 1)):
        done += 1
    return done


WORK_FILES = (re.escape(MANIFEST), FRAME_NAME)


def _remove_work(work: Path) -> None:
    """Delete styleshift's own files from a work folder (never anything else, so a folder
    the user pointed --work-dir at keeps their files), and the folder once empty."""
    with contextlib.suppress(OSError):
        remove_own(work, WORK_FILES)


def _prepare_work_dir(
    work: Path, manifest: dict[str, Any], *, resume: bool, restart: bool, frames: int
) -> int:
    """Make the work folder ready; return how many frames are already finished in it.

    Only a folder that styleshift made (its manifest inside) is ever emptied, and then
    only of styleshift's own files: --overwrite discards frames, never a user's folder."""
    found = work / MANIFEST
    if work.exists() and not work.is_dir():
        raise OutputError(f"work folder '{work}' is a file; remove it or pass --work-dir")
    if found.is_file():
        try:
            previous = json.loads(found.read_text())
        except (OSError, ValueError):
            previous = None
        if previous == manifest:  # the same run: keep its frames, even with --overwrite
            _remove_temporaries(work)
            return _finished(work, frames)
        if not restart:
            raise OutputError(
                f"work folder '{work}' holds frames of a different input or options; pass "
                "--overwrite to discard them, or --work-dir to use another folder"
            )
    elif work.is_dir() and any(work.iterdir()):
        raise OutputError(
            f"work folder '{work}' is not empty and not from styleshift; give --work-dir a "
            "new or empty folder (styleshift never deletes files it did not make)"
        )
    if resume and not restart:
        raise OutputError(f"nothing to resume in '{work}'; run without --resume to start")
    if work.exists():
        left = remove_own(work, WORK_FILES)
        if left:
            raise OutputError(
                f"work folder '{work}' also holds files that are not styleshift's "
                f"({left[0].name}); move them, or give --work-dir a new or empty folder"
            )
    work.mkdir(parents=True, exist_ok=True)
    write_json(found, manifest, overwrite=True)
    return 0


def _remove_temporaries(work: Path) -> None:
    for leftover in work.glob(TEMP_PREFIX + "*"):
        with contextlib.suppress(OSError):
            leftover.unlink()


def stylize_video(
    input: str | os.PathLike[str],
    styles: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    options: Options | None = None,
    settings: VideoSettings | None = None,
    *,
    engine: StyleTransfer | Callable[[], StyleTransfer] | None = None,
    start: float = 0.0,
    duration: float | None = None,
    fps: float | None = None,
    work_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    keep_work: bool = False,
    callback: VideoCallback | None = None,
    on_frame: Callable[[FrameResult], None] | None = None,
) -> VideoReport:
    """Stylise a video file or folder of frames into `output` (a video file or a folder).

    Every check happens before the network is loaded (`engine` may be a function that
    loads it, called once the checks pass). Finished frames are kept in the
    work folder (default OUTPUT.parts) as they come; the same call after an interruption
    resumes there. `overwrite` replaces an existing output and discards a work folder
    from a different run.
    """
    began = time.perf_counter()
    settings = settings or VideoSettings()
    check_settings(settings)
    out = check_video_output(output, overwrite=overwrite)
    info = probe(input, start=start, duration=duration, fps=fps)
    style_paths = [Path(s) for s in styles]
    if not style_paths:
        raise OptionError("no style image given; give at least one")
    for s in style_paths:
        as_image(s, what="style image")
    options = options or Options()
    resolved = resolve_options(options, resolve_device(options.device), len(style_paths))
    _check_masks(resolved.mask or (), info)
    check_masks(resolved.style_mask or (), "painting mask")
    refuse_inputs(out, [input, *style_paths, *resolved.input_files()])
    work = Path(work_dir) if work_dir is not None else default_work_dir(out)
    manifest = _manifest(info, style_paths, resolved, settings)
    done = _prepare_work_dir(work, manifest, resume=resume, restart=overwrite, frames=info.frames)
    if engine is None:
        engine = StyleTransfer(device=options.device)
    elif not isinstance(engine, StyleTransfer):
        engine = engine()
    stylizer = VideoStylizer(
        engine, [str(s) for s in style_paths], resolved, settings, first_frame=info.first
    )
    size = stylizer.frame_size(info.size)
    notes: list[str] = []
    if size != scaled_size(info.size, stylizer.options.size):
        notes.append(f"frame size rounded to even sides: {size[0]}x{size[1]}")
    first_seconds: float | None = None
    later: list[float] = []
    for index, content in enumerate(read_frames(info), start=1):
        if index < done:
            continue
        if index == done:
            stylizer.prime(content, _frame_path(work, index), index)
            continue
        result = stylizer.frame(content, callback, info.frames)
        save_image(result.image, _frame_path(work, index), overwrite=True)
        if index == done + 1:
            notes += result.notes
        if index == 1:
            first_seconds = result.seconds
        else:
            later.append(result.seconds)
        if on_frame is not None:
            on_frame(result)
    if _finished(work, info.frames) != info.frames:
        raise InputError(f"'{info.path}' ended early; it may be truncated")
    frames = [_frame_path(work, i) for i in range(1, info.frames + 1)]
    notes += write_output(frames, out, info, size, overwrite=overwrite)
    if not keep_work:
        _remove_work(work)
    return VideoReport(
        output=out,
        frames=info.frames,
        resumed_from=done,
        size=size,
        fps=float(info.fps),
        seconds=time.perf_counter() - began,
        first_frame_seconds=first_seconds,
        later_frame_seconds=sum(later) / len(later) if later else None,
        notes=notes,
        work_dir=work if keep_work else None,
    )
