"""Progress on a terminal: one bar at a time, with notes written above it."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..core import weights
from ..core.results import Progress, clock

_BAR = "{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]"


def note(args: argparse.Namespace, message: str) -> None:
    """A line on stderr, unless the command was asked to be quiet."""
    if not args.quiet:
        print(f"styleshift: {message}", file=sys.stderr)


class Reporter:
    """A tqdm bar for downloads, steps, video frames or counted items; nothing when off."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: Any = None

    def _bar(self, total: int | None, **kwargs: Any) -> Any:
        from tqdm import tqdm  # only where a bar is drawn

        self.close()
        self.bar = tqdm(total=total, file=sys.stderr, **kwargs)
        return self.bar

    def download(self, p: weights.DownloadProgress) -> None:
        if not self.enabled:
            return
        if self.bar is None or self.bar.desc != p.source:
            self._bar(p.total, desc=p.source, unit="B", unit_scale=True)
        self.bar.update(p.done - self.bar.n)

    def step(self, p: Progress) -> None:
        if not self.enabled:
            return
        if self.bar is None or self.bar.total != p.total_steps:
            self._bar(p.total_steps, bar_format=_BAR)
        where = p.stage or f"scale {p.scale}/{p.scales}"
        self.bar.set_description_str(f"{where} {p.size[0]}x{p.size[1]}")
        if p.stage:  # a feed-forward pass: seconds, nothing to estimate
            self.bar.set_postfix_str(f"{p.elapsed:.1f} s", refresh=False)
        else:
            eta = "?" if p.eta is None else clock(p.eta)
            self.bar.set_postfix_str(f"loss {p.loss:.4g}, ETA {eta}", refresh=False)
        self.bar.update(p.done_steps - self.bar.n)

    def frame(self, p: Any) -> None:
        """Progress of a video (a `video.VideoProgress`): frames done, this frame's steps."""
        if not self.enabled:
            return
        if self.bar is None:
            self._bar(p.frames, initial=p.frames_done, unit="frame", bar_format=_BAR)
        self.bar.set_description_str(f"frame {p.frame}/{p.frames}")
        rate = "?" if p.seconds_per_frame is None else f"{p.seconds_per_frame:.1f}"
        eta = "?" if p.eta is None else clock(p.eta)
        self.bar.set_postfix_str(
            f"step {p.step.done_steps}/{p.step.total_steps}, {rate} s/frame, ETA {eta}",
            refresh=False,
        )
        self.bar.update(p.frames_done - self.bar.n)

    def count(self, done: int, total: int) -> None:
        """Items done of a known total (frames scored, say)."""
        if not self.enabled:
            return
        if self.bar is None:
            self._bar(total)
        self.bar.update(done - self.bar.n)

    def note(self, message: str) -> None:
        """A line above the bar (or on its own without one)."""
        if self.bar is not None:
            self.bar.write(f"styleshift: {message}", file=sys.stderr)
        else:
            print(f"styleshift: {message}", file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
