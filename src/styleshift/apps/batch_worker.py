"""What one batch worker does: a job's bytes in, the picture's or clip's bytes out.

Local worker processes (`batch`) and Ray actors (`cluster`) both run `work`; payloads
carry bytes, never paths, so a worker needs no storage shared with the driver.
"""

from __future__ import annotations

import io
import signal
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from ..core.errors import StyleshiftError, one_line
from ..core.options import Options
from ..core.regions import AUTO
from ..io.media import Kind
from ..transfer import StyleTransfer


@dataclass(frozen=True)
class Payload:
    """One job as it travels to a worker: the inputs' bytes, never paths."""

    content_name: str
    content: bytes
    styles: tuple[tuple[str, bytes], ...]
    options: dict[str, Any]
    kind: Kind
    # The mask files, the photo's then the paintings', in order; auto:... needs none.
    masks: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True)
class Outcome:
    data: bytes | None
    seconds: float
    device: str | None = None
    loss: float | None = None
    error: str | None = None


def work(engine: StyleTransfer, item: Payload) -> Outcome:
    """Stylise one payload; a user's mistake (a bad file, a bad option) is its outcome's
    error, anything else propagates."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="styleshift-batch-") as tmp:
        files = [(item.content_name, item.content), *item.styles, *item.masks]
        names = [name for name, _ in files]
        paths = [Path(tmp) / str(i) / Path(name).name for i, name in enumerate(names)]
        for path, (_, data) in zip(paths, files, strict=True):
            path.parent.mkdir()
            path.write_bytes(data)
        content, styles = paths[0], paths[1 : 1 + len(item.styles)]
        drawn = iter(paths[1 + len(item.styles) :])
        try:
            options = Options.from_kwargs(**item.options)

            def received(masks: tuple[str, ...] | None) -> tuple[str, ...] | None:
                return masks and tuple(m if m in AUTO else str(next(drawn)) for m in masks)

            options = replace(
                options, mask=received(options.mask), style_mask=received(options.style_mask)
            )
            if item.kind == "video":
                from .video import stylize_video  # PyAV and OpenCV: the [video] extra

                out = Path(tmp) / "out.mp4"
                stylize_video(content, styles, out, options, engine=engine)
                return Outcome(out.read_bytes(), time.perf_counter() - start, str(engine.device))
            result = engine.run(content, styles, options)
            buffer = io.BytesIO()
            result.image.save(buffer, format="PNG")
            loss = result.loss if result.loss == result.loss else None  # NaN: a single pass
            return Outcome(buffer.getvalue(), time.perf_counter() - start, result.device, loss)
        except (StyleshiftError, ImportError) as e:
            message = one_line(e)
            for path, name in zip(paths, names, strict=True):  # the user's names, not ours
                message = message.replace(str(path), name)
            return Outcome(None, time.perf_counter() - start, error=message)


# Each local worker process builds its engine once, in its initializer.
_ENGINE: list[StyleTransfer] = []


def init_worker(device: str, threads: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(threads)
    _ENGINE.append(StyleTransfer(device=device))


def work_in_process(item: Payload) -> Outcome:
    return work(_ENGINE[0], item)
