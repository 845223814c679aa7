"""Reading and writing videos (PyAV, which bundles FFmpeg) and folders of numbered frames.

The output keeps the input's frame rate and its audio: audio packets are copied as they
are when the output container takes their codec, and re-encoded (AAC, or Opus for WebM)
only when it does not. Outputs appear complete or not at all.
"""

from __future__ import annotations

import itertools
import math
import os
import re
import shutil
import tempfile
from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import av
import av.error
import numpy as np
from PIL import Image

from ..core.errors import InputError, OutputError, one_line
from .files import TEMP_PREFIX, atomic_path, check_folder, fsync_dir, remove_own, write_error
from .image import INPUT_FORMATS, as_image
from .media import IMAGE_SUFFIXES, kind_of

__all__ = [
    "VIDEO_SUFFIXES",
    "NumberedFrames",
    "VideoInfo",
    "check_video_output",
    "even_size",
    "per_frame",
    "probe",
    "read_frames",
    "write_output",
]

# Output suffix -> (FFmpeg format, video codec, encoder options, fallback audio codec).
_CONTAINERS: dict[str, tuple[str, str, dict[str, str], str | None]] = {
    ".mp4": ("mp4", "libx264", {"crf": "18", "preset": "medium"}, "aac"),
    ".m4v": ("mp4", "libx264", {"crf": "18", "preset": "medium"}, "aac"),
    ".mov": ("mov", "libx264", {"crf": "18", "preset": "medium"}, "aac"),
    ".mkv": ("matroska", "libx264", {"crf": "18", "preset": "medium"}, "aac"),
    ".webm": ("webm", "libvpx-vp9", {"crf": "30", "b": "0"}, "libopus"),
    ".gif": ("gif", "gif", {}, None),
}
VIDEO_SUFFIXES: tuple[str, ...] = tuple(_CONTAINERS)
_NUMBER = re.compile(r"(\d+)(?!.*\d)")
DEFAULT_FPS = Fraction(24)


def _q(name: object) -> str:
    text = str(name)
    return f"'{text}'" if text.isprintable() else repr(text)


@dataclass(frozen=True)
class VideoInfo:
    """An input and the section of it that is used."""

    path: Path
    kind: Literal["video", "frames"]
    size: tuple[int, int]  # (width, height) of the input frames
    fps: Fraction
    first: int  # index of the first frame used
    frames: int  # number of frames used
    audio: str | None  # audio codec name, None without an audio track
    files: tuple[Path, ...] = ()  # the frame files, for a folder of frames

    @property
    def start(self) -> float:
        """Seconds from the input's start to the section's first frame."""
        return float(self.first / self.fps)

    @property
    def duration(self) -> float:
        """Seconds of the section used."""
        return float(self.frames / self.fps)


def even_size(size: tuple[int, int]) -> tuple[int, int]:
    """H.264 and VP9 in 4:2:0 need even sides: round down to even (at least 2)."""
    return max(2, size[0] - size[0] % 2), max(2, size[1] - size[1] % 2)


def probe(
    path: str | os.PathLike[str],
    *,
    start: float = 0.0,
    duration: float | None = None,
    fps: float | None = None,
) -> VideoInfo:
    """Check an input and find its section; raises InputError with a one-line message.

    ``fps`` sets the rate of a folder of frames (default 24) and overrides a video's own,
    which is how a variable-frame-rate video is accepted (its frames then play evenly).
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"input {_q(p)} not found; check the path")
    if start < 0 or not math.isfinite(start):
        raise InputError(f"--start must be zero or more seconds, got {start}")
    if duration is not None and (duration <= 0 or not math.isfinite(duration)):
        raise InputError(f"--duration must be more than zero seconds, got {duration}")
    if fps is not None and (fps <= 0 or not math.isfinite(fps)):
        raise InputError(f"--fps must be more than zero, got {fps}")
    rate = None if fps is None else Fraction(fps).limit_denominator(1001)
    if p.is_dir():
        return _probe_frames(p, start, duration, rate)
    return _probe_video(p, start, duration, rate)


def _section(
    total: int, rate: Fraction, start: float, duration: float | None, name: Path
) -> tuple[int, int]:
    first = round(start * rate)
    if first >= total:
        length = total / rate
        raise InputError(
            f"--start {start:g} s is past the end of {_q(name)} ({float(length):.2f} s); "
            "choose an earlier start"
        )
    count = total - first if duration is None else min(total - first, round(duration * rate))
    return first, max(1, count)


def numbered_frames(folder: Path) -> list[Path]:
    """The pictures of `folder` whose names end in a number, in the numbers' order."""
    files = [f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES]
    numbered = [f for f in files if _NUMBER.search(f.stem)]
    return sorted(numbered, key=lambda f: (int(_NUMBER.findall(f.stem)[-1]), f.name))


def _probe_frames(
    folder: Path, start: float, duration: float | None, rate: Fraction | None
) -> VideoInfo:
    numbered = numbered_frames(folder)
    if not numbered:
        raise InputError(
            f"folder {_q(folder)} holds no numbered frames (such as frame_0001.png); "
            f"give a video file or a folder of {', '.join(INPUT_FORMATS)} frames"
        )
    first_image = as_image(numbered[0], what="frame")
    rate = rate or DEFAULT_FPS
    first, count = _section(len(numbered), rate, start, duration, folder)
    return VideoInfo(
        path=folder,
        kind="frames",
        size=first_image.size,
        fps=rate,
        first=first,
        frames=count,
        audio=None,
        files=tuple(numbered),
    )


def _open(path: Path) -> Any:
    try:
        if path.stat().st_size == 0:
            raise InputError(f"{_q(path)} is empty (0 bytes); give a video file")
        return av.open(str(path), "r")
    except PermissionError:
        raise InputError(f"cannot read {_q(path)}: permission denied") from None
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as e:
        raise InputError(
            f"{_q(path)} is not a video that can be read ({one_line(e)}); give an MP4, MOV, "
            "WebM, MKV or GIF file, or a folder of numbered frames"
        ) from None


def _probe_video(
    path: Path, start: float, duration: float | None, rate: Fraction | None
) -> VideoInfo:
    with _open(path) as container:
        if not container.streams.video:
            raise InputError(f"{_q(path)} has no video track; give a video file")
        stream = container.streams.video[0]
        audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
        times: list[int] = []
        try:
            # Demuxing reads packet headers only: cheap, and it counts the frames exactly.
            for packet in container.demux(stream):
                if packet.pts is not None and packet.size > 0:
                    times.append(int(packet.pts))
        except av.error.FFmpegError as e:
            raise InputError(f"{_q(path)} is corrupt ({one_line(e)}); re-export it") from None
        width, height = stream.codec_context.width, stream.codec_context.height
        avg = stream.average_rate or stream.guessed_rate
        time_base = stream.time_base
    if not times or not width or not height:
        raise InputError(f"{_q(path)} has no frames (a zero-length video); give another file")
    if rate is None:
        if not avg:
            raise InputError(f"{_q(path)} has no frame rate; pass --fps to set one")
        rate = Fraction(avg)
        if _variable_rate(sorted(times), rate, time_base):
            raise InputError(
                f"{_q(path)} has a variable frame rate (about {float(rate):.3g} fps on average); "
                "pass --fps N to play its frames evenly at N fps, or convert it to a constant "
                "rate first"
            )
    first, count = _section(len(times), rate, start, duration, path)
    return VideoInfo(
        path=path,
        kind="video",
        size=(width, height),
        fps=rate,
        first=first,
        frames=count,
        audio=audio,
    )


def _variable_rate(times: list[int], rate: Fraction, time_base: Fraction | None) -> bool:
    if len(times) < 3 or not time_base:
        return False
    step = 1 / (rate * time_base)  # one frame, in stream ticks
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # Containers round timestamps; a constant-rate stream stays within half a frame.
    return any(abs(gap - step) > step / 2 for gap in gaps)


def read_frames(info: VideoInfo) -> Generator[Image.Image, None, None]:
    """The frames of the section, as RGB images, in order."""
    if info.kind == "frames":
        for file in info.files[info.first : info.first + info.frames]:
            yield as_image(file, what="frame").convert("RGB")
        return
    with _open(info.path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        index = 0
        try:
            for frame in container.decode(stream):
                if index >= info.first + info.frames:
                    break
                if index >= info.first:
                    yield frame.to_image()
                index += 1
        except av.error.FFmpegError as e:
            raise InputError(f"{_q(info.path)} is corrupt ({one_line(e)}); re-export it") from None


class NumberedFrames:
    """The frames of a video file or a folder of numbered frames, by number (0-based):
    per-frame masks. A video decodes forward, so asking in order costs one decode a frame
    and asking for an earlier frame starts it over."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        # Matched by number, not by time: any rate will do, a variable one too.
        self.info = probe(path, fps=float(DEFAULT_FPS))
        self._reader: Generator[Image.Image, None, None] | None = None
        self._next = 0

    def __len__(self) -> int:
        return self.info.first + self.info.frames

    def frame(self, index: int) -> Path | Image.Image:
        """Frame `index`: a folder's file (named in notes by its path), or a decoded frame."""
        if not 0 <= index < len(self):
            raise IndexError(f"frame {index} of {len(self)}")
        if self.info.kind == "frames":
            return self.info.files[index]
        if self._reader is None or index < self._next:
            if self._reader is not None:
                self._reader.close()
            self._reader, self._next = read_frames(self.info), 0
        for image in self._reader:
            self._next += 1
            if self._next > index:
                return image
        raise InputError(f"{_q(self.info.path)} ended early; it may be truncated")


def per_frame(specs: Sequence[object]) -> dict[int, NumberedFrames]:
    """Those of `specs` (masks, say) that are a video file or a folder of numbered
    pictures, by their place in `specs`: each gives one picture per frame."""
    return {
        i: NumberedFrames(spec)
        for i, spec in enumerate(specs)
        if isinstance(spec, (str, os.PathLike)) and _exists(spec) and kind_of(spec) == "video"
    }


def _exists(path: str | os.PathLike[str]) -> bool:
    try:
        return Path(path).exists()
    except (OSError, ValueError):  # a name too long or with a NUL: not a file here
        return False


def check_video_output(path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Check the output before any work: a known video suffix, or a folder for frames."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix and suffix not in _CONTAINERS:
        raise OutputError(
            f"unknown video extension {_q(p.suffix)} for {_q(p)}; use one of "
            f"{', '.join(VIDEO_SUFFIXES)}, or a folder name (no extension) for PNG frames"
        )
    check_folder(p)
    _check_replaceable(p, overwrite)
    if suffix and p.is_dir():
        raise OutputError(f"output {_q(p)} is a folder; give a file name")
    return p


def _check_replaceable(p: Path, overwrite: bool) -> None:
    """An existing output is replaced only with `overwrite`, and a folder of frames only
    when it holds nothing but styleshift's frames: a folder of the user's survives."""
    if not os.path.lexists(p):
        return
    if not overwrite:
        raise OutputError(
            f"{_q(p)} already exists; choose another name or pass --overwrite to replace it"
        )
    if not p.suffix and (
        not p.is_dir() or any(not re.fullmatch(FRAME_NAME, f.name) for f in p.iterdir())
    ):
        raise OutputError(
            f"{_q(p)} holds files that are not styleshift's frames; --overwrite replaces "
            "only a folder of frames it wrote: choose another output"
        )


def write_output(
    frames: Iterable[Path],
    output: Path,
    info: VideoInfo,
    size: tuple[int, int],
    *,
    overwrite: bool = False,
) -> list[str]:
    """Write the stylised frames (PNG files) as a video with the input's audio, or as a
    folder of frames; atomically. Returns notes for the user (audio re-encoded, dropped)."""
    if not output.suffix:
        return _write_folder(frames, output, info, overwrite)
    fmt, codec, codec_options, audio_codec = _CONTAINERS[output.suffix.lower()]
    try:
        with atomic_path(output, overwrite=overwrite) as tmp:
            return _encode(frames, tmp, fmt, codec, codec_options, audio_codec, info, size)
    except av.error.FFmpegError as e:
        raise OutputError(f"could not write {_q(output)}: {one_line(e)}") from None


def _encode(
    frames: Iterable[Path],
    tmp: Path,
    fmt: str,
    codec: str,
    codec_options: dict[str, str],
    audio_codec: str | None,
    info: VideoInfo,
    size: tuple[int, int],
) -> list[str]:
    notes: list[str] = []
    with av.open(str(tmp), "w", format=fmt) as out:
        video = out.add_stream(codec, rate=info.fps, options=codec_options)
        video.width, video.height = size
        video.pix_fmt = "rgb8" if codec == "gif" else "yuv420p"
        audio = _AudioTrack.open(info, out, audio_codec, notes)
        try:
            for index, file in enumerate(frames):
                with Image.open(file) as im:
                    pixels = np.asarray(im.convert("RGB"))
                frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
                frame.pts = index
                frame.time_base = Fraction(1) / info.fps
                out.mux(video.encode(frame))
                if audio is not None:
                    audio.copy_until(float((index + 1) / info.fps))
            out.mux(video.encode(None))
            if audio is not None:
                audio.copy_until(math.inf)
                audio.flush()
        finally:
            if audio is not None:
                audio.close()
    return notes


class _AudioTrack:
    """The input's audio over the section, copied or re-encoded into an output container."""

    def __init__(self, info: VideoInfo, out: Any, codec: str | None, notes: list[str]) -> None:
        self.source = av.open(str(info.path), "r")
        self.input = self.source.streams.audio[0]
        self.start, self.end = info.start, info.start + info.duration
        self.out = out
        name = self.input.codec_context.name
        self.copy = name in out.supported_codecs
        if self.copy:
            self.stream = out.add_stream_from_template(self.input)
        else:
            assert codec is not None
            self.stream = out.add_stream(codec, rate=48000 if "opus" in codec else self.input.rate)
            self.stream.layout = "stereo" if self.input.channels >= 2 else "mono"
            notes.append(f"audio re-encoded from {name} to {codec}: {fmt_name(out)} cannot hold it")
        self.packets = self.source.demux(self.input)
        self.offset = self.start
        self.done = False

    @classmethod
    def open(
        cls, info: VideoInfo, out: Any, codec: str | None, notes: list[str]
    ) -> _AudioTrack | None:
        if info.audio is None:
            if info.kind == "video":
                notes.append("the input has no audio track; the output is silent")
            return None
        if codec is None:
            notes.append(f"{fmt_name(out)} cannot hold audio; the output is silent")
            return None
        return cls(info, out, codec, notes)

    def copy_until(self, until: float) -> None:
        """Write the section's audio up to `until` seconds into it (keeps streams interleaved)."""
        while not self.done:
            packet = next(self.packets, None)
            if packet is None or packet.dts is None:
                if packet is None:
                    self.done = True
                continue
            tb = packet.time_base
            at = float(packet.pts * tb) if packet.pts is not None else float(packet.dts * tb)
            if at >= self.end:
                self.done = True
                break
            if at >= self.start:
                self._write(packet, tb)
            if at >= self.start + until:
                break

    def _write(self, packet: Any, tb: Fraction) -> None:
        shift = round(self.offset / tb)
        if self.copy:
            packet.pts = None if packet.pts is None else packet.pts - shift
            packet.dts = packet.dts - shift
            packet.stream = self.stream
            self.out.mux(packet)
            return
        for frame in packet.decode():
            frame.pts = None
            self.out.mux(self.stream.encode(frame))

    def flush(self) -> None:
        if not self.copy:
            self.out.mux(self.stream.encode(None))

    def close(self) -> None:
        self.source.close()


def fmt_name(out: Any) -> str:
    return str(out.format.name).split(",")[0].upper()


FRAME_NAME = r"frame_\d{6}\.png"


def frame_name(index: int) -> str:
    return f"frame_{index:06d}.png"


def _write_folder(
    frames: Iterable[Path], output: Path, info: VideoInfo, overwrite: bool
) -> list[str]:
    """Frames written into a new folder beside `output`, which then takes its place. An
    existing `output` is replaced only when it holds nothing but styleshift's frames: a
    folder of the user's survives --overwrite (checked again: it may have changed)."""
    _check_replaceable(output, overwrite)
    tmp = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=output.parent))
    try:
        for index, file in enumerate(frames, start=1):
            shutil.copyfile(file, tmp / frame_name(index))
        if os.path.lexists(output):
            remove_own(output, [FRAME_NAME])
        os.replace(tmp, output)
        fsync_dir(output.parent)
    except OSError as e:
        raise write_error(e, str(output)) from None
    finally:
        if tmp.exists():
            remove_own(tmp, [FRAME_NAME])
    return ["a folder of frames has no audio"] if info.audio else []
