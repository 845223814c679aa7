"""Stylisation jobs for the web page: one engine run in a worker thread, watched from afar.

A job reports progress through a queue of `Update`s and stops at the next optimisation
step once it is cancelled, or once nobody has asked for its progress for a while (the
visitor closed the page), so that an abandoned job stops using the CPU.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from PIL import Image

from ..core.errors import StyleshiftError, one_line
from ..core.options import FEEDFORWARD, Options, instant_options, method_of
from ..core.results import Progress, Result, clock
from ..transfer import StyleTransfer


class Cancelled(Exception):
    """Raised by the progress callback to stop a run; the engine lets it through."""


@dataclass(frozen=True)
class Update:
    """What changed since the last look: always a status line, sometimes a picture."""

    status: str
    preview: Image.Image | None = None
    done: bool = False


def describe(p: Progress) -> str:
    if p.stage:
        return f"instant ({p.size[0]}×{p.size[1]}) · {p.stage} · {p.elapsed:.1f} s"
    eta = "…" if p.eta is None else clock(p.eta)
    return (
        f"scale {p.scale}/{p.scales} ({p.size[0]}×{p.size[1]}) · step {p.step}/{p.steps} · "
        f"{100 * p.done_steps // p.total_steps}% · ETA {eta}"
    )


class Job:
    """One run of the shared engine in its own thread.

    `preview_every` steps (and at the end of each scale) the picture so far is rendered.
    The run stops at its next step after `cancel()`, or when `touch()` has not been
    called for `abandon_after` seconds.
    """

    def __init__(
        self,
        engine: StyleTransfer,
        content: Image.Image,
        styles: Sequence[Image.Image],
        options: Options,
        *,
        preview_every: int = 5,
        abandon_after: float = 30.0,
    ) -> None:
        self._engine = engine
        self._content = content
        self._styles = list(styles)
        self._options = options
        self._preview_every = max(1, preview_every)
        self._abandon_after = abandon_after
        self._cancel = threading.Event()
        self._seen = time.monotonic()
        self._updates: queue.SimpleQueue[Update] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name="styleshift-job", daemon=True)
        self.steps = 0  # progress callbacks that went through
        self.result: Result | None = None
        self.error: str | None = None
        self.cancelled = False

    # -- control, from any thread ----------------------------------------------------------

    def start(self) -> None:
        self._seen = time.monotonic()
        self._thread.start()

    def cancel(self) -> None:
        self._cancel.set()

    def touch(self) -> None:
        self._seen = time.monotonic()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread; True once it has finished."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def finished(self) -> bool:
        return self._thread.ident is not None and not self._thread.is_alive()

    def drain(self) -> list[Update]:
        """Every update since the last call, oldest first."""
        found: list[Update] = []
        while True:
            try:
                found.append(self._updates.get_nowait())
            except queue.Empty:
                return found

    # -- the worker thread -----------------------------------------------------------------

    def _on_step(self, p: Progress) -> None:
        if not self._cancel.is_set() and time.monotonic() - self._seen > self._abandon_after:
            self._cancel.set()
        if self._cancel.is_set():
            raise Cancelled
        self.steps += 1
        show = p.step % self._preview_every == 0 or p.step == p.steps
        self._updates.put(Update(describe(p), p.image() if show else None))

    def _preview(self) -> None:
        """For an optimisation run, the feed-forward picture first: something to look at
        within seconds. Skipped quietly if it fails: the run itself still goes ahead."""
        try:
            quick = self._engine.run(self._content, self._styles, instant_options(self._options))
        except StyleshiftError:
            return
        self._updates.put(Update("instant preview; refining", quick.image))

    def _work(self) -> None:
        try:
            if method_of(self._options) not in FEEDFORWARD:
                self._preview()
                if self._cancel.is_set():
                    raise Cancelled
            result = self._engine.run(
                self._content, self._styles, self._options, callback=self._on_step
            )
        except Cancelled:
            self.cancelled = True
            self._updates.put(Update("cancelled", done=True))
            return
        except StyleshiftError as e:
            self.error = str(e)
        except MemoryError:
            self.error = "out of memory; try a smaller size or the fast preset"
        except Exception as e:  # the visitor gets one line; the server keeps running
            self.error = f"unexpected error: {one_line(e) or type(e).__name__}"
        if self.error is not None:
            self._updates.put(Update(f"error: {self.error}", done=True))
            return
        self.result = result
        self._updates.put(
            Update(f"done in {clock(result.seconds)}", preview=result.image, done=True)
        )


async def follow(job: Job, poll: float = 0.1) -> AsyncIterator[Update]:
    """Start `job` and yield its progress, merged to one update per look.

    However this generator ends (finished, closed, or its task cancelled when the visitor
    presses Cancel or leaves), the job is cancelled, so its CPU work stops.
    """
    try:
        job.start()
        while True:
            job.touch()
            updates = job.drain()
            if updates:
                pictures = [u.preview for u in updates if u.preview is not None]
                last = updates[-1]
                yield Update(last.status, pictures[-1] if pictures else None, last.done)
                if last.done:
                    return
            await asyncio.sleep(poll)
    finally:
        job.cancel()
