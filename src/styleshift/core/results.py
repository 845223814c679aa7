"""What a run reports: `Progress` as it goes, a `Result` at the end, `Interrupted` when
stopped. Both method families report through these, so callers need not know which ran.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from PIL import Image
from torch import Tensor

from .options import Options


@dataclass(frozen=True)
class Progress:
    """One step of a run, as the callback sees it: an evaluation of the optimisation, or a
    stage of a feed-forward pass (one scale; its loss is NaN)."""

    scale: int  # 1-based
    scales: int
    size: tuple[int, int]  # (width, height) at this scale
    step: int  # 1-based, within this scale
    steps: int
    done_steps: int  # over all scales
    total_steps: int
    loss: float
    losses: dict[str, float]  # weighted terms: content, style, tv
    elapsed: float  # seconds since the run started
    eta: float | None  # seconds left, once there is a rate to go by
    render: Callable[[], Image.Image] = field(repr=False, compare=False)
    stage: str = ""  # a feed-forward pass's stage ("relu4_1 transformed", ...); else ""

    def image(self) -> Image.Image:
        """The image as it is now (costs a conversion, so only on request)."""
        return self.render()


ProgressFn = Callable[[Progress], None]


def time_left(seconds: float, done: float, left: float) -> float | None:
    """Seconds for `left` more of the work of which `done` took `seconds`: every progress
    display estimates at the rate measured so far. None before any was measured."""
    return seconds / done * left if done > 0 else None


def clock(seconds: float) -> str:
    """Seconds as m:ss, the way progress displays show an ETA."""
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}:{secs:02d}"


# An extra term of the objective (a temporal loss, say): it gets the image being optimised,
# (1, 3, H, W) on the engine's device at the current scale, and returns a weighted scalar.
ExtraTerm = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class ScaleReport:
    size: tuple[int, int]
    iterations: int
    seconds: float
    loss: float
    tile: int | None = None  # the tiles' side in pixels, if the scale was tiled


@dataclass(frozen=True)
class Result:
    image: Image.Image
    loss: float
    losses: dict[str, float]
    scales: tuple[ScaleReport, ...]
    seconds: float
    device: str
    options: Options  # with the preset's values filled in
    interrupted: bool = False
    notes: tuple[str, ...] = ()  # what the user should know about the inputs (a mask stretched)


class Interrupted(KeyboardInterrupt):
    """A run stopped by Ctrl-C; `result` holds the best image reached so far."""

    def __init__(self, result: Result) -> None:
        super().__init__("interrupted")
        self.result = result
