"""The optimisation method of Gatys et al. (2016): the image itself is optimised, coarse to
fine, against a content loss on deep VGG-19 features and a style loss on Gram matrices.

`Run` holds one run's state; `StyleTransfer` (in `transfer`) creates one per call. The
loss is the `objective`'s; how the evaluations are spent over the scales, and the time
left, are the `schedule`'s; scales too large for the memory budget are evaluated in tiles
(`tiles`).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from ..core import color, memory
from ..core.errors import OptionError
from ..core.options import MEMORY_FRACTION, OptimisationOptions
from ..core.pipeline import finish, open_inputs
from ..core.regions import Regions, open_regions
from ..core.results import ExtraTerm, Interrupted, Progress, ProgressFn, Result, ScaleReport
from ..core.tiling import available_memory
from ..core.vgg import VGGFeatures
from ..io.image import ImageLike, as_image, long_side_for, scaled_size, to_tensor
from . import tiles
from .objective import Objective, Targets
from .schedule import Schedule, iterations_for, scale_sizes

_FIRST_STEP = 0.01  # mean pixel change (in 0..1) of L-BFGS's first step

# Makes the start image `--init instant` asks for: (photo, paintings, long side, regions)
# -> a (1, 3, H, W) tensor in 0..1. The dispatcher hands one in, so that this family
# needs nothing of the feed-forward one.
InstantStart = Callable[[Image.Image, Sequence[Image.Image], int, Regions | None], Tensor]


class _BudgetSpent(Exception):
    """Ends an L-BFGS scale once its evaluations are spent, even inside a line search."""


class Run:
    """The state of one optimisation run."""

    def __init__(
        self,
        state: Mapping[str, Tensor],
        device: torch.device,
        content: ImageLike,
        styles: Sequence[ImageLike],
        opts: OptimisationOptions,
        callback: ProgressFn | None,
        init: ImageLike | None,
        terms: Mapping[str, ExtraTerm],
        instant: InstantStart | None = None,
    ) -> None:
        self.device = device
        self.instant = instant
        self.opts = opts
        self.callback = callback
        self.init = init
        self.content, self.alpha, self.styles = open_inputs(content, styles)
        self.regions = (
            open_regions(opts.mask, self.content, len(self.styles)) if opts.mask else None
        )
        model = VGGFeatures(
            state,
            (*opts.content_layers, *opts.style_layers),
            opts.pooling,
            torch.bfloat16 if opts.precision == "bfloat16" else torch.float32,
        )
        self.sizes = scale_sizes(opts.size, opts.start_size, opts.multiscale)
        steps = self._drop_narrow_scales(
            iterations_for(opts.iterations, len(self.sizes)), model.min_side
        )
        overhead = tiles.pass_overhead(model)
        budget = opts.memory_budget()
        if budget is None:
            budget = tiles.default_budget(
                *self._shape(self.sizes[-1]),
                available_memory(self.device),
                MEMORY_FRACTION,
                overhead,
            )
        self.budget = budget
        # Planned up front, so a budget too small for the output fails before any work.
        # Largest first, so that the error names the output's size.
        self.plans = [
            tiles.plan(*self._shape(side), self.budget, overhead=overhead)
            for side in self.sizes[::-1]
        ][::-1]
        self.objective = Objective(
            model, opts, self.content, self.styles, terms, self.budget, self.device, self.regions
        )
        # A step costs about as much as the pixels it runs the network on.
        self.schedule = Schedule(
            steps,
            [self._work(side, plan) for side, plan in zip(self.sizes, self.plans, strict=True)],
        )
        # The first scale's losses, built for the --time probe and reused by that scale.
        self.probed: Targets | None = None
        self.reports: list[ScaleReport] = []
        self.best: Tensor | None = None
        self.best_loss = math.inf
        self.best_terms: dict[str, float] = {}

    # -- images at a scale -------------------------------------------------------------

    def _shape(self, long_side: int) -> tuple[int, int]:
        width, height = scaled_size(self.content.size, long_side)
        return height, width

    def _drop_narrow_scales(self, steps: list[int], min_side: int) -> list[int]:
        """Start at the first scale where the network can pool the photo (a panorama is
        too thin for the coarsest ones); refuse an output too thin for it. Returns the
        steps of the scales kept."""
        fits = [min(self._shape(side)) >= min_side for side in self.sizes]
        if not fits[-1]:
            width, height = self.content.size
            least = long_side_for(self.content.size, self.sizes[-1], min_side)
            raise OptionError(
                f"the content image ({width}x{height}) is too narrow for a {self.sizes[-1]} px "
                f"picture: VGG-19 needs at least {min_side} px across; use --size {least} or "
                "more, or crop it"
            )
        first = fits.index(True)
        self.sizes = self.sizes[first:]
        return steps[first:]

    def _work(self, long_side: int, plan: tiles.Plan) -> float:
        height, width = self._shape(long_side)
        if plan.tile is None:
            return float(height * width)
        # Crops overlap by their margins, and a forward pass (about a third of a forward
        # and backward one) first sums the Gram matrices.
        crops = sum(
            (t.crop[1] - t.crop[0]) * (t.crop[3] - t.crop[2])
            for t in tiles.grid(height, width, plan.tile)
        )
        return crops * 4 / 3

    def _render(self, image: Tensor) -> Image.Image:
        image = image.detach()
        if self.regions is not None:
            photo = self.objective.content_at(max(image.shape[-2:]))
            image = self.regions.keep_photo(image, photo)
        return finish(image, self.content, self.opts.preserve_color)

    # -- the loop ------------------------------------------------------------------------

    def _initial(self, content: Tensor) -> Tensor:
        opts = self.opts
        init = self.init if self.init is not None else opts.init
        h, w = content.shape[-2:]
        if isinstance(init, str) and init == "content":
            return content.clone()
        if isinstance(init, str) and init == "instant":
            if self.instant is None:
                raise OptionError(
                    "init 'instant' needs an instant start; run through StyleTransfer"
                )
            start = self.instant(self.content, self.styles, max(h, w), self.regions)
            return F.interpolate(start, size=(h, w), mode="bicubic", align_corners=False).clamp(
                0, 1
            )
        if isinstance(init, str) and init == "noise":
            generator = torch.Generator().manual_seed(self.opts.seed)
            return torch.rand(content.shape, generator=generator).to(self.device)
        if isinstance(init, Tensor) and init.dim() == 4 and init.shape[1] == 3:
            # Kept in float: a warped video frame would lose detail through 8 bits.
            # Contiguous: L-BFGS views the image as one flat vector.
            start = init.detach().to(self.device, torch.float32).contiguous()
            if start.shape[-2:] != (h, w):
                start = F.interpolate(start, size=(h, w), mode="bicubic", align_corners=False)
            start = start.clamp(0, 1)
        else:
            image = as_image(init, what="init image").convert("RGB")
            start = to_tensor(image.resize((w, h), Image.Resampling.LANCZOS)).to(self.device)
        return color.luminance(start) if self.opts.preserve_color == "luminance" else start

    def execute(self) -> Result:
        torch.manual_seed(self.opts.seed)
        image: Tensor | None = None
        try:
            if self.opts.time is not None:
                self._start_clock(self.opts.time)
            for index, long_side in enumerate(self.sizes):
                self.schedule.share_time(index)
                content = self.objective.content_at(long_side)
                if image is None:
                    image = self._initial(content)
                else:
                    image = F.interpolate(
                        image, size=content.shape[-2:], mode="bicubic", align_corners=False
                    ).clamp(0, 1)
                image = self._optimise(index, image, content)
                # Tiled scales hand memory back tile by tile (see tiles); an untiled one
                # would pay ~10% in page faults for doing so per evaluation at 512 px.
                memory.release(self.device)
        except KeyboardInterrupt:
            raise Interrupted(self._result(interrupted=True)) from None
        return self._result(interrupted=False)

    # -- a time budget ------------------------------------------------------------------

    def _start_clock(self, seconds: float) -> None:
        """Measure one evaluation at the first scale, and start the clock of --time."""
        content = self.objective.content_at(self.sizes[0])
        targets = self.objective.targets(content, self.sizes[0], self.plans[0].tile)
        self.probed = targets  # the first scale starts with them
        x = content.clone().requires_grad_(True)
        started = time.perf_counter()
        self.objective.evaluate(x, targets, self.plans[0].tile, 1.0)
        self.schedule.start_clock(seconds, time.perf_counter() - started, self.sizes[-1])

    def _optimise(self, index: int, image: Tensor, content: Tensor) -> Tensor:
        opts = self.opts
        long_side = self.sizes[index]
        schedule = self.schedule
        limit = schedule.limit(index)
        plan = self.plans[index]
        if index == 0 and self.probed is not None:
            targets = self.probed
            self.probed = None
        else:
            targets = self.objective.targets(content, long_side, plan.tile)
        x = image.detach().clone().requires_grad_(True)
        # The terms are scale-free, so each pixel's gradient shrinks as the image grows;
        # L-BFGS drops curvature pairs whose y.s falls under a fixed 1e-10 and would then
        # crawl along the gradient. Optimising loss x pixels keeps gradients the same size
        # at every scale; the reported loss stays unscaled.
        gradient_scale = float(x.shape[-1] * x.shape[-2])
        optimiser: torch.optim.Optimizer
        lbfgs = opts.optimizer == "lbfgs"
        if lbfgs:
            # The whole scale is one step() call so that L-BFGS can line-search (without
            # it, its second step overshoots by orders of magnitude); the closure keeps
            # the budget of `steps` evaluations and reports progress per evaluation.
            optimiser = torch.optim.LBFGS(
                [x],
                lr=opts.learning_rate,
                max_iter=limit,
                max_eval=limit,
                history_size=plan.history,
                line_search_fn="strong_wolfe",
                tolerance_grad=0.0,
                tolerance_change=0.0,
            )
        else:
            optimiser = torch.optim.Adam([x], lr=opts.learning_rate)
        # Until this scale's first evaluation, the best image is the one it starts from
        # (the previous scales' result), with the previous scale's loss.
        self.best = image.detach().clone()
        scale_start = time.perf_counter()
        size = (int(x.shape[-1]), int(x.shape[-2]))
        step = 0

        def closure() -> Tensor:
            nonlocal step
            if step == limit:  # a line search would overrun the budget: stop here
                raise _BudgetSpent
            if step and schedule.time_is_up():
                raise _BudgetSpent  # this scale's share of --time is spent
            step += 1
            optimiser.zero_grad()
            began = time.perf_counter()
            value, terms = self.objective.evaluate(x, targets, plan.tile, gradient_scale)
            schedule.evaluated(index, time.perf_counter() - began)
            if step == 1 or value < self.best_loss:
                self.best_loss, self.best_terms = value, dict(terms)
                self.best = x.detach().clone()
            if self.callback is not None:
                self.callback(self._progress(index, size, step, value, terms, x))
            return torch.tensor(value * gradient_scale)

        if lbfgs:
            with contextlib.suppress(_BudgetSpent):
                # Torch's first L-BFGS step has an L1 norm of lr over the whole image,
                # i.e. ~lr/N per pixel: negligible. One iteration at a larger lr moves the
                # mean pixel by ~_FIRST_STEP instead (the line search adjusts it); the
                # rest run at the given lr with the history that iteration started.
                group = optimiser.param_groups[0]
                group.update(lr=group["lr"] * _FIRST_STEP * x.numel(), max_iter=1)
                optimiser.step(closure)  # type: ignore[no-untyped-call]
                group.update(lr=opts.learning_rate, max_iter=limit)
                optimiser.step(closure)  # type: ignore[no-untyped-call]
                # L-BFGS stops by itself when a line search finds no lower point, which
                # float noise makes likely late in a long run. With --time, and time left,
                # it starts afresh (a new curvature history) until a fresh start, too,
                # stalls at once.
                while schedule.scale_deadline is not None and step < limit:
                    before = step
                    optimiser.state.clear()
                    optimiser.step(closure)  # type: ignore[no-untyped-call]
                    if step - before < 3:
                        break
        else:
            with contextlib.suppress(_BudgetSpent):
                for _ in range(limit):
                    optimiser.step(closure)  # type: ignore[no-untyped-call]
                    with torch.no_grad():  # Adam keeps no curvature: clamping is harmless
                        x.clamp_(0, 1)
        self.reports.append(
            ScaleReport(size, step, time.perf_counter() - scale_start, self.best_loss, plan.tile)
        )
        return self.best.clamp(0, 1)

    def _progress(
        self,
        index: int,
        size: tuple[int, int],
        step: int,
        loss: float,
        terms: dict[str, float],
        x: Tensor,
    ) -> Progress:
        schedule = self.schedule
        snapshot = x.detach().clone()  # a record of this step, not a view of the next
        return Progress(
            scale=index + 1,
            scales=len(self.sizes),
            size=size,
            step=step,
            steps=schedule.steps[index],
            done_steps=schedule.done_steps(index, step),
            total_steps=sum(schedule.steps),
            loss=loss,
            losses=dict(terms),
            elapsed=time.perf_counter() - schedule.start,
            eta=schedule.eta(index, step),
            render=lambda: self._render(snapshot),
        )

    def _result(self, *, interrupted: bool) -> Result:
        best = self.best
        if best is None:  # interrupted before the first evaluation
            best = self.objective.content_at(self.sizes[0])
        width, height = scaled_size(self.content.size, self.sizes[-1])
        if best.shape[-2:] != (height, width):
            best = F.interpolate(best, size=(height, width), mode="bicubic", align_corners=False)
        image = self._render(best.clamp(0, 1))
        if self.alpha is not None:
            image.putalpha(self.alpha.resize(image.size, Image.Resampling.LANCZOS))
        return Result(
            image=image,
            loss=self.best_loss,
            losses=dict(self.best_terms),
            scales=tuple(self.reports),
            seconds=time.perf_counter() - self.schedule.start,
            device=str(self.device),
            options=self.opts,
            interrupted=interrupted,
            notes=(
                *(self.regions.notes if self.regions is not None else ()),
                *self.objective.notes,
            ),
        )
