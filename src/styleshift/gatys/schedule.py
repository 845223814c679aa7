"""How an optimisation run spends its evaluations: the scales coarse to fine, the
evaluations at each, and the clock that estimates the time left and shares out `--time`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

from ..core.errors import OptionError
from ..core.results import time_left

SCALE_RATIO = math.sqrt(2.0)
TIME_USE = 0.95  # the share of --time the optimisation may use; the rest renders and saves
TIME_MIN_STEPS = 4  # evaluations per scale below which --time refuses


def scale_sizes(size: int, start_size: int, multiscale: bool = True) -> list[int]:
    """Long sides of the scales, coarse to fine: sqrt(2) apart, ending at `size`, with
    the first as near `start_size` as that allows."""
    if not multiscale or size <= start_size:
        return [size]
    count = round(math.log(size / start_size) / math.log(SCALE_RATIO))
    return [round(size / SCALE_RATIO**k) for k in range(count, 0, -1)] + [size]


def iterations_for(iterations: Sequence[int], scales: int) -> list[int]:
    """Per-scale iteration counts; the fine end of the schedule is the one that is kept.

    A preset's schedule is written for its own number of scales; for fewer scales (a
    small --size) its coarsest entries are dropped, for more the first is repeated.
    """
    its = list(iterations)
    if len(its) >= scales:
        return its[len(its) - scales :]
    return [its[0]] * (scales - len(its)) + its


class Schedule:
    """The evaluations of each scale and the clock of the run.

    `work` is what one evaluation of each scale costs, in pixels the network runs on: the
    time left is the work left at the rate the evaluations so far have taken. With
    `--time` the clock, not a count, ends each scale, and the steps are an estimate.
    """

    def __init__(self, steps: Sequence[int], work: Sequence[float]) -> None:
        self.steps = list(steps)
        self.work = list(work)
        self.start = time.perf_counter()
        self.work_total = sum(w * n for w, n in zip(self.work, self.steps, strict=True))
        self.work_done = 0.0
        # With a time budget: when the run and the current scale must end, and the
        # seconds per unit of work measured so far.
        self.deadline: float | None = None
        self.scale_deadline: float | None = None
        self.rate: float | None = None
        # The time and work of the evaluations after the run's first (which pays for the
        # kernels' one-time set-up): the machine's rate, for the time left and --time.
        self.evaluating = 0.0
        self.rated_work = 0.0

    def start_clock(self, seconds: float, probe: float, output: int) -> None:
        """Start a budget of `seconds`, given that one evaluation at the first scale took
        `probe` seconds; refuse a budget too short for a few evaluations at every scale,
        naming the least that would do (`output` is the picture's long side)."""
        self.rate = probe / self.work[0]
        spent = time.perf_counter() - self.start
        least = spent + self.rate * TIME_MIN_STEPS * sum(self.work)
        if seconds < least:
            raise OptionError(
                f"--time {seconds:g} is too short for a {output} px picture here: it needs at "
                f"least about {math.ceil(least / TIME_USE)} s; allow that, choose a smaller "
                "--size, or --preset instant (seconds)"
            )
        self.deadline = self.start + seconds * TIME_USE

    def share_time(self, index: int) -> None:
        """Give scale `index` the share of the time left that the preset's schedule gives
        it, and estimate how many evaluations that buys (for the progress display)."""
        if self.deadline is None or self.rate is None:
            return
        if self.rated_work > 0:
            self.rate = self.evaluating / self.rated_work
        costs = [n * w for n, w in zip(self.steps, self.work, strict=True)]
        now = time.perf_counter()
        left = max(0.0, self.deadline - now)
        self.scale_deadline = now + left * costs[index] / sum(costs[index:])
        for i in range(index, len(self.steps)):
            seconds = left * costs[i] / sum(costs[index:])
            self.steps[i] = max(TIME_MIN_STEPS, int(seconds / (self.rate * self.work[i])))
        self.work_total = self.work_done + sum(
            n * w for n, w in zip(self.steps[index:], self.work[index:], strict=True)
        )

    def limit(self, index: int) -> int:
        """Most evaluations scale `index` may take: its count, or with --time, whose clock
        stops a scale, more than the estimate, which may be short."""
        return self.steps[index] if self.scale_deadline is None else 4 * self.steps[index]

    def time_is_up(self) -> bool:
        """Whether this scale's share of --time is spent."""
        return self.scale_deadline is not None and time.perf_counter() >= self.scale_deadline

    def evaluated(self, index: int, seconds: float) -> None:
        """Count one evaluation of scale `index` that took `seconds`."""
        if self.work_done > 0 or self.deadline is not None:  # not the run's first
            self.evaluating += seconds
            self.rated_work += self.work[index]
        self.work_done += self.work[index]

    def done_steps(self, index: int, step: int) -> int:
        return sum(self.steps[:index]) + step

    def eta(self, index: int, step: int) -> float | None:
        """Seconds left, from the evaluations' own rate: the set-up before them (loading,
        style targets, the first evaluation's one-time costs) says nothing about what is
        left. None until there is a rate to go by."""
        if self.deadline is not None:
            return max(0.0, self.deadline - time.perf_counter())
        if step > 2 or index > 0:
            return time_left(self.evaluating, self.rated_work, self.work_total - self.work_done)
        return None
