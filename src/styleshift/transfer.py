"""The style transfer engine: Gatys et al. (2016), coarse to fine, and the way in to the
feed-forward methods (`feedforward`), which share its options, results and progress.

`StyleTransfer` loads the network once and repaints any number of images; `stylize` is
the one-call form. Progress is reported through a callback with a `Progress` record, so
the engine never prints; a Ctrl-C raises `Interrupted`, which carries the best image so
far.
"""

from __future__ import annotations

import contextlib
import difflib
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, cast, get_args

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from . import color, memory, tiles
from .device import Device, Precision, resolve_device, resolve_precision
from .errors import OptionError
from .feedforward.decoder import check_level
from .feedforward.engine import FeedForward, finish, open_inputs, prepare
from .image import (
    ImageLike,
    as_image,
    resize_long_side,
    scaled_size,
    split_alpha,
    to_tensor,
)
from .losses import ContentLoss, RangeLoss, StyleLoss, TVLoss, gram_matrix, mix_grams, relative_mse
from .vgg import Pooling, VGGFeatures, check_layers
from .weights import ensure_weights, load_state_dict

Preset = Literal["fast", "balanced", "high", "instant"]
Method = Literal["auto", "gatys", "adain", "wct", "efdm"]
OptimizerName = Literal["lbfgs", "adam"]
ColorMode = Literal["none", "luminance", "histogram"]

PRESETS: tuple[str, ...] = get_args(Preset)
METHODS: tuple[str, ...] = get_args(Method)
FEEDFORWARD: tuple[str, ...] = ("adain", "wct", "efdm")
# The transform `instant` uses; chosen by bench/instant.py (docs/performance.md).
DEFAULT_TRANSFORM = "adain"
DEFAULT_LEVELS = ("relu4_1",)
SCALE_RATIO = math.sqrt(2.0)
# The default share of free memory a run budgets for: enough for 1024 px without tiles on
# a 24 GB machine, where a 2048 px run then peaks at 3.6 GiB (docs/performance.md).
MEMORY_FRACTION = 0.25
# The median style loss of a photo against a painting over bench/faithful.py's 72 pairs
# at 384 px: an adaptive style weight leaves such a pair's balance as it was.
TYPICAL_PHOTO_STYLE_LOSS = 0.78


@dataclass(frozen=True)
class PresetSpec:
    """What a preset decides: the output size and how the iterations are spent."""

    size: int
    start_size: int = 0
    iterations: tuple[int, ...] = ()  # per scale, coarse to fine (see iterations_for)
    method: str = "gatys"


# Iterations are L-BFGS function evaluations (one network pass each). The coarse scales
# settle the composition cheaply; most of the budget goes to the finest scale, where
# the detail that the eye (and the full-size objective) sees is made. balanced and high
# start at 256 px: from 128 px the composition drifts further from the photo, and the
# finest scale spent up to twice the evaluations pulling it back. fast starts near 256
# px (272, then 384) for the same reason: on 24 of bench/faithful.py's pairs its 10th
# percentile of content similarity went 0.59 (from 136 px), 0.63 (from 192 px), 0.65
# (from 272 px), with the style-loss reduction 23, 24 and 26 times, for 3% more time than
# from 192 px. Measured on 2 CPU cores: see docs/performance.md. instant is one
# feed-forward pass.
_PRESETS: dict[str, dict[str, PresetSpec]] = {
    "cpu": {
        "fast": PresetSpec(size=384, start_size=256, iterations=(20, 40)),
        "balanced": PresetSpec(size=512, start_size=256, iterations=(20, 20, 160)),
        "high": PresetSpec(size=768, start_size=256, iterations=(20, 20, 20, 200)),
        "instant": PresetSpec(size=512, method=DEFAULT_TRANSFORM),
    },
    "gpu": {
        "fast": PresetSpec(size=512, start_size=128, iterations=(40, 30, 30, 30, 50)),
        "balanced": PresetSpec(size=768, start_size=128, iterations=(60, 40, 40, 40, 60, 100)),
        "high": PresetSpec(size=1024, start_size=128, iterations=(100, 80, 60, 60, 80, 100, 200)),
        "instant": PresetSpec(size=1024, method=DEFAULT_TRANSFORM),
    },
}

# Which method an option belongs to: the CLI groups its flags so, the web page shows
# only what applies, and an option given to a method it does not affect is refused.
COMMON, GATYS, FEEDFORWARD_ONLY = "common", "gatys", "feedforward"


def _opt(default: Any, help: str, method: str = GATYS) -> Any:
    return field(default=default, metadata={"help": help, "method": method})


@dataclass(frozen=True)
class Options:
    """Every setting of a run. The CLI builds its options from these fields."""

    preset: Preset = _opt(
        "balanced",
        "quality preset: fast, balanced and high optimise the image (sizes and iterations "
        "for the device); instant is one feed-forward pass",
        COMMON,
    )
    method: Method = _opt(
        "auto",
        "gatys optimises the image; adain, wct and efdm are feed-forward transforms; "
        "auto follows the preset",
        COMMON,
    )
    size: int | None = _opt(
        None, "long side of the output in pixels (default: from the preset)", COMMON
    )
    iterations: tuple[int, ...] | None = _opt(
        None,
        "network evaluations per scale, coarse to fine, comma-separated; with fewer values "
        "than scales the first is repeated for the coarsest (default: from the preset)",
    )
    start_size: int | None = _opt(
        None, "long side of the first, coarsest scale (default: from the preset)"
    )
    multiscale: bool = _opt(True, "grow the image coarse to fine by sqrt(2) per scale")
    content_weight: float = _opt(0.08, "weight of the content loss")
    style_weight: float = _opt(1.0, "weight of the style loss (style strength)")
    adaptive_weight: bool = _opt(
        True,
        "divide the style weight by how far the photo's own style is from the painting's "
        "(relative to a typical pair), so one style weight paints every photo about as "
        "strongly and none is painted over",
    )
    tv_weight: float = _opt(2.0, "weight of the total variation (smoothness) term")
    # 30 to 300 all kept the saved picture's loss within 0.2% of the unclipped image's;
    # 1000 began to hold the optimiser back (docs/performance.md).
    range_weight: float = _opt(
        100.0, "weight of the penalty on pixels outside 0..1, which saving would clip"
    )
    strength: float = _opt(
        1.0,
        "style strength of a feed-forward method, 0..1: 1 is all style, 0 the photo",
        FEEDFORWARD_ONLY,
    )
    levels: tuple[str, ...] = _opt(
        DEFAULT_LEVELS,
        "encoder levels a feed-forward method stylises at, deepest first, each with its "
        "decoder; more levels carry finer strokes",
        FEEDFORWARD_ONLY,
    )
    model: tuple[str, ...] | None = _opt(
        None,
        "decoder files made by `styleshift train`, for the feed-forward methods and --init "
        "instant; each replaces the shipped decoder of its level (default: those shipped)",
        FEEDFORWARD_ONLY,
    )
    style_blend: tuple[float, ...] | None = _opt(
        None, "blend weights of the style images, comma-separated (default: equal)", COMMON
    )
    style_scale: float = _opt(
        1.0, "size of the style images relative to the output (smaller: finer strokes)", COMMON
    )
    content_layers: tuple[str, ...] = _opt(("relu4_2",), "VGG-19 layers for the content loss")
    style_layers: tuple[str, ...] = _opt(
        ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"),
        "VGG-19 layers for the style loss",
    )
    style_layer_weights: tuple[float, ...] | None = _opt(
        None, "weights of the style layers, comma-separated (default: equal)"
    )
    pooling: Pooling = _opt("avg", "pooling in the network: avg (Gatys) or max")
    optimizer: OptimizerName = _opt("lbfgs", "optimiser: lbfgs (converges fastest) or adam")
    learning_rate: float | None = _opt(None, "step size (default: 1 for L-BFGS, 0.02 for Adam)")
    init: str = _opt(
        "content",
        "start image: content, noise, instant (the feed-forward picture), or a path to an image",
    )
    seed: int = _opt(0, "random seed; the same seed gives the same result")
    preserve_color: ColorMode = _opt(
        "none",
        "keep the content's colours: luminance (transfer luminance only) or histogram "
        "(match the style's colours to the content first)",
        COMMON,
    )
    device: Device = _opt("auto", "where to compute: auto picks CUDA, then MPS, then CPU", COMMON)
    precision: Precision = _opt(
        "auto",
        "arithmetic of the network: bfloat16 is about twice as fast on CPUs with AMX; "
        "auto picks it there and float32 elsewhere",
        COMMON,
    )
    max_memory: float | None = _opt(
        None,
        "memory budget in GiB; scales that need more are computed in overlapping tiles "
        f"(default: {MEMORY_FRACTION:.0%} of the memory available when the run starts, "
        "up to 75% where an output needs more)",
    )
    time: float | None = _opt(
        None,
        "finish within about this many seconds: each scale gets the share of the time it "
        "has in the preset and stops when that is spent (measured on this machine as the "
        "run goes), instead of counting iterations (default: no limit)",
    )

    @property
    def feedforward(self) -> bool:
        """Whether this (resolved) run is one feed-forward pass rather than optimisation."""
        return self.method in FEEDFORWARD

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> Options:
        """Options from keyword arguments; a misspelt name gets a suggestion, not a TypeError."""
        names = [f.name for f in fields(cls)]
        for key in kwargs:
            if key not in names:
                close = difflib.get_close_matches(key, names, n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                raise OptionError(f"unknown option '{key}'{hint}")
        return cls(**kwargs)


FIELD_METHODS: dict[str, str] = {f.name: f.metadata["method"] for f in fields(Options)}


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


_FIRST_STEP = 0.01  # mean pixel change (in 0..1) of L-BFGS's first step
TIME_USE = 0.95  # the share of --time the optimisation may use; the rest renders and saves
TIME_MIN_STEPS = 4  # evaluations per scale below which --time refuses


class _BudgetSpent(Exception):
    """Ends an L-BFGS scale once its evaluations are spent, even inside a line search."""


class Interrupted(KeyboardInterrupt):
    """A run stopped by Ctrl-C; `result` holds the best image reached so far."""

    def __init__(self, result: Result) -> None:
        super().__init__("interrupted")
        self.result = result


def resolve_options(options: Options, device: torch.device, styles: int | None = None) -> Options:
    """Fill in what the preset decides and check every value; raises OptionError.

    `styles` is the number of style images, which the blend weights must match, if known.
    """
    if styles is not None and styles < 1:
        raise OptionError("no style image given; give at least one")
    if (
        styles is not None
        and options.style_blend is not None
        and len(options.style_blend) != styles
    ):
        raise OptionError(
            f"{len(options.style_blend)} blend weights given for {styles} style images; "
            "give one per style image"
        )
    method = method_of(options)
    spec = _PRESETS["cpu" if device.type == "cpu" else "gpu"][options.preset]
    common = replace(
        options,
        model=(options.model,) if isinstance(options.model, str) else _as_tuple(options.model),
        levels=(options.levels,) if isinstance(options.levels, str) else tuple(options.levels),
        method=cast(Method, method),
        size=options.size if options.size is not None else spec.size,
        style_blend=_as_tuple(options.style_blend),
        precision=resolve_precision(options.precision, device),
    )
    if method in FEEDFORWARD:
        _refuse_foreign(options, GATYS, f"the feed-forward method {method}")
        _validate_common(common)
        if not math.isfinite(common.strength) or not 0 <= common.strength <= 1:
            raise OptionError(f"strength must be between 0 and 1, got {common.strength}")
        if not common.levels or len(set(common.levels)) != len(common.levels):
            raise OptionError(f"levels must name each level once, got {common.levels}")
        for level in common.levels:
            check_level(level)
        return common
    _refuse_foreign(options, FEEDFORWARD_ONLY, "the optimisation method (gatys)")
    iterations = options.iterations if options.iterations is not None else spec.iterations
    resolved = replace(
        common,
        start_size=options.start_size if options.start_size is not None else spec.start_size,
        # From Python a plain number (one count for every scale) or a list is natural.
        iterations=(iterations,) if isinstance(iterations, int) else tuple(iterations),
        style_layer_weights=_as_tuple(options.style_layer_weights),
        content_layers=tuple(options.content_layers),
        style_layers=tuple(options.style_layers),
        learning_rate=options.learning_rate
        if options.learning_rate is not None
        else (1.0 if options.optimizer == "lbfgs" else 0.02),
    )
    _validate_common(resolved)
    _validate(resolved)
    return resolved


def instant_options(options: Options) -> Options:
    """The feed-forward run that shares `options`' size, styles and colours: a preview of
    an optimisation run, or its start image."""
    common = {f.name: getattr(options, f.name) for f in fields(Options)}
    kept = {
        name: value
        for name, value in common.items()
        if FIELD_METHODS[name] == COMMON and name not in ("preset", "method")
    }
    return Options(preset="instant", model=options.model, **kept)


def method_of(options: Options) -> str:
    """The method a run with `options` uses: gatys or a feed-forward transform."""
    if options.preset not in _PRESETS["cpu"]:
        raise OptionError(f"unknown preset '{options.preset}'; use one of {', '.join(PRESETS)}")
    return _resolve_method(options, _PRESETS["cpu"][options.preset])


def without_foreign(options: Options) -> Options:
    """`options` with the fields of the other method family back at their defaults: a form
    that hides what does not apply may still hold values from before a switch."""
    feedforward = method_of(options) in FEEDFORWARD
    return _reset(options, GATYS if feedforward else FEEDFORWARD_ONLY)


def _reset(options: Options, group: str) -> Options:
    defaults = Options()
    return replace(
        options,
        **{
            name: getattr(defaults, name)
            for name, method in FIELD_METHODS.items()
            if method == group and not (name == "model" and options.init == "instant")
        },
    )


def _resolve_method(options: Options, spec: PresetSpec) -> str:
    if options.method not in METHODS:
        close = difflib.get_close_matches(str(options.method), METHODS, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"use one of {', '.join(METHODS)}"
        raise OptionError(f"unknown method '{options.method}'; {hint}")
    if options.method == "auto":
        return spec.method
    if options.method == "gatys" and spec.method != "gatys":
        raise OptionError(
            f"preset {options.preset} is a feed-forward pass; for --method gatys choose "
            "the preset fast, balanced or high"
        )
    return options.method


def _refuse_foreign(options: Options, group: str, method: str) -> None:
    """Refuse an option set away from its default for a method it does not affect, so
    that nobody tunes a value that is silently ignored."""
    defaults = Options()
    for f in fields(Options):
        if f.metadata["method"] != group or getattr(options, f.name) == getattr(defaults, f.name):
            continue
        if f.name == "model" and options.init == "instant":
            continue  # the optimisation's start image comes from the decoder
        flag = "--" + f.name.replace("_", "-")
        raise OptionError(f"{flag} does not apply to {method}; leave it out")


def _as_tuple(values: Sequence[Any] | None) -> tuple[Any, ...] | None:
    return None if values is None else tuple(values)


def _validate_common(o: Options) -> None:
    assert o.size is not None
    if o.size < 16:
        raise OptionError(f"size must be at least 16 pixels, got {o.size}")
    if o.style_blend is not None and (any(v < 0 for v in o.style_blend) or sum(o.style_blend) <= 0):
        raise OptionError(
            f"style blend must be non-negative with a positive sum, got {o.style_blend}"
        )
    if not math.isfinite(o.style_scale) or o.style_scale <= 0:
        raise OptionError(f"style scale must be more than zero, got {o.style_scale}")
    if o.preserve_color not in ("none", "luminance", "histogram"):
        raise OptionError(
            f"unknown colour mode '{o.preserve_color}'; use none, luminance or histogram"
        )


def _validate(o: Options) -> None:
    """The optimisation method's own options."""
    assert o.start_size is not None and o.iterations is not None
    if o.start_size < 16:
        raise OptionError(f"start size must be at least 16 pixels, got {o.start_size}")
    if not o.iterations or any(i < 1 for i in o.iterations):
        raise OptionError(f"iterations must be positive whole numbers, got {o.iterations}")
    for name in ("content_weight", "style_weight", "tv_weight", "range_weight"):
        value = getattr(o, name)
        if not math.isfinite(value) or value < 0:
            raise OptionError(f"{name.replace('_', ' ')} must be zero or more, got {value}")
    values = o.style_layer_weights
    if values is not None and (any(v < 0 for v in values) or sum(values) <= 0):
        raise OptionError(
            f"style layer weights must be non-negative with a positive sum, got {values}"
        )
    if o.max_memory is not None and (not math.isfinite(o.max_memory) or o.max_memory <= 0):
        raise OptionError(f"max memory must be more than zero GiB, got {o.max_memory}")
    if o.time is not None and (not math.isfinite(o.time) or o.time <= 0):
        raise OptionError(f"time must be more than zero seconds, got {o.time}")
    assert o.learning_rate is not None
    if not math.isfinite(o.learning_rate) or o.learning_rate <= 0:
        raise OptionError(f"learning rate must be more than zero, got {o.learning_rate}")
    if o.optimizer not in ("lbfgs", "adam"):
        raise OptionError(f"unknown optimizer '{o.optimizer}'; use lbfgs or adam")
    if o.pooling not in ("avg", "max"):
        raise OptionError(f"unknown pooling '{o.pooling}'; use avg or max")
    check_layers(o.content_layers, "content layers")
    check_layers(o.style_layers, "style layers")
    if o.style_layer_weights is not None and len(o.style_layer_weights) != len(o.style_layers):
        raise OptionError(
            f"{len(o.style_layer_weights)} style layer weights given for "
            f"{len(o.style_layers)} style layers; give one per layer"
        )


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
    smaller output) the coarsest entries are dropped, for more the first one repeats.
    """
    its = list(iterations)
    if len(its) >= scales:
        return its[len(its) - scales :]
    return [its[0]] * (scales - len(its)) + its


def _normalised(weights: Sequence[float] | None, count: int) -> list[float]:
    if weights is None:
        return [1.0 / count] * count
    total = float(sum(weights))
    return [w / total for w in weights]


def as_list(styles: ImageLike | Sequence[ImageLike]) -> list[ImageLike]:
    """One style image or several, as a list."""
    if isinstance(styles, (str, os.PathLike, Image.Image, Tensor)):
        return [styles]
    return list(styles)


class StyleTransfer:
    """Loads VGG-19 once; `run` and `stylize` then repaint as many images as wanted."""

    def __init__(self, device: str = "auto", weights: Path | None = None) -> None:
        self.device = resolve_device(device)
        path = weights if weights is not None else ensure_weights()
        self._state = {k: v.to(self.device) for k, v in load_state_dict(path).items()}
        self.feedforward = FeedForward(self._state, self.device)

    def stylize(
        self,
        content: ImageLike,
        styles: ImageLike | Sequence[ImageLike],
        *,
        callback: ProgressFn | None = None,
        **options: Any,
    ) -> Image.Image:
        return self.run(content, styles, Options.from_kwargs(**options), callback=callback).image

    def run(
        self,
        content: ImageLike,
        styles: ImageLike | Sequence[ImageLike],
        options: Options | None = None,
        *,
        callback: ProgressFn | None = None,
        init: ImageLike | None = None,
        terms: Mapping[str, ExtraTerm] | None = None,
    ) -> Result:
        """Repaint `content` in the manner of `styles`; raises Interrupted on Ctrl-C.

        `init` (an image or a 0..1 tensor) replaces `options.init` as the start image;
        `terms` adds named terms to the objective, reported in `losses` under their names.
        """
        style_list = as_list(styles)
        opts = resolve_options(options or Options(), self.device, len(style_list))
        if opts.feedforward:
            if init is not None or terms:
                raise OptionError(f"the feed-forward method {opts.method} takes no start image")
            return self._run_feedforward(content, style_list, opts, callback)
        return _Run(self, content, style_list, opts, callback, init, terms or {}).execute()

    def _run_feedforward(
        self,
        content: ImageLike,
        styles: Sequence[ImageLike],
        opts: Options,
        callback: ProgressFn | None,
    ) -> Result:
        """One pass per level: encode and transform, then decode, each reported as a step
        of one scale, and a last step for the finished picture."""
        assert opts.size is not None
        start = time.perf_counter()
        image, alpha, style_images = open_inputs(content, styles)
        c, s = prepare(image, style_images, opts.size, opts.style_scale, opts.preserve_color)
        size = (int(c.shape[-1]), int(c.shape[-2]))
        self.feedforward.decoders(opts.levels, opts.model or ())  # bad files fail first
        picture: list[Image.Image] = []
        steps = 2 * len(opts.levels) + 1
        done = [0]

        def stage(name: str) -> None:
            done[0] += 1
            if callback is None:
                return
            render = (lambda: picture[0]) if picture else (lambda: image.resize(size))
            elapsed = time.perf_counter() - start
            step = done[0]
            callback(
                Progress(1, 1, size, step, steps, step, steps, math.nan, {}, elapsed, None,
                         render, stage=name)
            )  # fmt: skip

        out = self.feedforward.stylise(
            c,
            s,
            _normalised(opts.style_blend, len(s)),
            transform=opts.method,
            strength=opts.strength,
            levels=opts.levels,
            models=opts.model or (),
            dtype=torch.bfloat16 if opts.precision == "bfloat16" else torch.float32,
            on_stage=stage,
        )
        picture.append(finish(out, image, opts.preserve_color))
        if alpha is not None:
            picture[0].putalpha(alpha.resize(size, Image.Resampling.LANCZOS))
        stage("done")
        seconds = time.perf_counter() - start
        return Result(
            image=picture[0],
            loss=math.nan,
            losses={},
            scales=(ScaleReport(size, 0, seconds, math.nan),),
            seconds=seconds,
            device=str(self.device),
            options=opts,
        )


def adaptive_factor(photo_style_loss: float) -> float:
    """How much an adaptive style weight scales the style term, from the style loss of the
    photo itself: the photo's distance from the painting's style, relative to a typical
    pair's. A photo far from the painting (large flat areas against a busy painting) has a
    style gradient that swamps the content term and would be painted over; one close to it
    would hardly change. Dividing by that distance makes the style term the share of it
    that is left, so one style weight paints every photo about as strongly."""
    return TYPICAL_PHOTO_STYLE_LOSS / max(photo_style_loss, TYPICAL_PHOTO_STYLE_LOSS / 100)


@dataclass
class Targets:
    """The objective's targets at one scale: the content and style losses, and the
    weight the style term gets there."""

    content: list[ContentLoss]
    style: list[StyleLoss]
    style_weight: float


class _Run:
    """The state of one run; split out so the optimisation loop stays readable."""

    def __init__(
        self,
        engine: StyleTransfer,
        content: ImageLike,
        styles: Sequence[ImageLike],
        opts: Options,
        callback: ProgressFn | None,
        init: ImageLike | None,
        terms: Mapping[str, ExtraTerm],
    ) -> None:
        assert opts.size is not None and opts.start_size is not None
        assert opts.iterations is not None and opts.learning_rate is not None
        self.engine = engine
        self.device = engine.device
        self.opts = opts
        self.callback = callback
        self.init = init
        self.terms = dict(terms)
        self.content, self.alpha = split_alpha(as_image(content, what="content image"))
        self.styles = [split_alpha(as_image(s, what="style image"))[0] for s in styles]
        self.blend = _normalised(opts.style_blend, len(self.styles))
        self.layer_weights = _normalised(opts.style_layer_weights, len(opts.style_layers))
        self.model = VGGFeatures(
            engine._state,
            (*opts.content_layers, *opts.style_layers),
            opts.pooling,
            torch.bfloat16 if opts.precision == "bfloat16" else torch.float32,
        )
        self.sizes = scale_sizes(opts.size, opts.start_size, opts.multiscale)
        self.steps = iterations_for(opts.iterations, len(self.sizes))
        self.budget = (
            int(opts.max_memory * 2**30)
            if opts.max_memory is not None
            else tiles.default_budget(
                *self._shape(self.sizes[-1]), tiles.available_memory(self.device), MEMORY_FRACTION
            )
        )
        # Planned up front, so a budget too small for the output fails before any work.
        # Largest first, so that the error names the output's size.
        self.plans = [tiles.plan(*self._shape(side), self.budget) for side in self.sizes[::-1]][
            ::-1
        ]
        self.grid_generator = torch.Generator().manual_seed(opts.seed)
        self.tv = TVLoss()
        self.range = RangeLoss()
        self.start = time.perf_counter()
        # ETA: a step costs about as much as the pixels it runs the network on.
        self.work = [
            self._work(side, plan) for side, plan in zip(self.sizes, self.plans, strict=True)
        ]
        self.work_total = sum(w * n for w, n in zip(self.work, self.steps, strict=True))
        self.work_done = 0.0
        # With a time budget: when the run and the current scale must end, and the
        # seconds per unit of work measured so far.
        self.deadline: float | None = None
        self.scale_deadline: float | None = None
        self.rate: float | None = None
        # The time and work of the evaluations after the run's first (which pays for
        # the kernels' one-time set-up): the machine's rate, for the ETA and --time.
        self.evaluating = 0.0
        self.rated_work = 0.0
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

    def _tensor(self, image: Image.Image, long_side: int) -> Tensor:
        return to_tensor(resize_long_side(image, long_side)).to(self.device)

    def _content_at(self, long_side: int) -> Tensor:
        c = self._tensor(self.content, long_side)
        return color.luminance(c) if self.opts.preserve_color == "luminance" else c

    def _style_at(self, style: Image.Image, long_side: int, content: Tensor) -> Tensor:
        s = self._tensor(style, max(16, round(long_side * self.opts.style_scale)))
        if self.opts.preserve_color == "histogram":
            return color.match_color(s, content)
        if self.opts.preserve_color == "luminance":
            return color.match_luminance(color.luminance(s), content)
        return s

    def _render(self, image: Tensor) -> Image.Image:
        return finish(image.detach(), self.content, self.opts.preserve_color)

    # -- the objective -------------------------------------------------------------------

    def _losses(self, content: Tensor, long_side: int, tile: int | None) -> Targets:
        opts = self.opts
        h, w = content.shape[-2:]
        with torch.no_grad():
            if tile is None:
                feats = self.model(content)
            else:
                feats = tiles.features(
                    self.model, content, opts.content_layers, tiles.grid(h, w, tile)
                )
            content_losses = [ContentLoss(feats[name]) for name in opts.content_layers]
            grams: dict[str, list[Tensor]] = {name: [] for name in opts.style_layers}
            for style in self.styles:
                for name, gram in self._grams(self._style_at(style, long_side, content)).items():
                    grams[name].append(gram)
        style_losses = [StyleLoss(mix_grams(grams[n], self.blend)) for n in opts.style_layers]
        weight = opts.style_weight
        if opts.adaptive_weight:
            with torch.no_grad():
                # Untiled, the photo's style features came with its content features.
                own = (
                    {n: gram_matrix(feats[n]) for n in opts.style_layers}
                    if tile is None
                    else self._grams(content)
                )
            photo = sum(
                lw * float(relative_mse(own[n], loss.target))
                for n, loss, lw in zip(
                    opts.style_layers, style_losses, self.layer_weights, strict=True
                )
            )
            weight *= adaptive_factor(photo)
        return Targets(content_losses, style_losses, weight)

    def _grams(self, image: Tensor) -> dict[str, Tensor]:
        """The style layers' Gram matrices of an image, in tiles if it needs them."""
        h, w = image.shape[-2:]
        tile = tiles.plan(h, w, self.budget, optimise=False).tile
        layers = self.opts.style_layers
        if tile is not None:
            return tiles.grams(self.model, image, layers, tiles.grid(h, w, tile))
        feats = self.model(image)
        return {name: gram_matrix(feats[name]) for name in layers}

    def _objective(self, image: Tensor, targets: Targets) -> tuple[Tensor, dict[str, float]]:
        opts = self.opts
        feats = self.model(image)
        c = sum(
            (loss(feats[n]) for loss, n in zip(targets.content, opts.content_layers, strict=True)),
            torch.zeros((), device=image.device),
        ) / len(targets.content)
        s = sum(
            (
                w * loss(feats[n])
                for loss, n, w in zip(
                    targets.style, opts.style_layers, self.layer_weights, strict=True
                )
            ),
            torch.zeros((), device=image.device),
        )
        terms = {
            "content": opts.content_weight * c,
            "style": targets.style_weight * s,
            **self._pixel_terms(image),
        }
        total = sum(terms.values(), torch.zeros((), device=image.device))
        return total, {k: float(v.detach()) for k, v in terms.items()}

    def _pixel_terms(self, image: Tensor) -> dict[str, Tensor]:
        """The terms computed on the image itself rather than on its features."""
        terms = {
            "tv": self.opts.tv_weight * self.tv(image),
            "range": self.opts.range_weight * self.range(image),
        }
        terms.update((name, term(image)) for name, term in self.terms.items())
        return terms

    def _evaluate(
        self, x: Tensor, targets: Targets, tile: int | None, gradient_scale: float
    ) -> tuple[float, dict[str, float]]:
        """The objective at `x`, with its gradient (times `gradient_scale`) in x.grad."""
        if tile is None:
            loss, terms = self._objective(x, targets)
            (loss * gradient_scale).backward()  # type: ignore[no-untyped-call]
            return float(loss.detach()), terms
        return self._evaluate_tiled(x, targets, tile, gradient_scale)

    def _evaluate_tiled(
        self, x: Tensor, targets: Targets, tile: int, gradient_scale: float
    ) -> tuple[float, dict[str, float]]:
        opts = self.opts
        h, w = x.shape[-2:]
        image = x.detach()
        layout = tiles.shifted_grid(h, w, tile, self.grid_generator)
        # Pass 1: the global Gram matrices, the style term, and its gradient with respect
        # to each Gram matrix (they are small: channels x channels).
        global_grams = {
            n: g.requires_grad_(True)
            for n, g in tiles.grams(self.model, image, opts.style_layers, layout).items()
        }
        style = targets.style_weight * sum(
            (
                lw * relative_mse(global_grams[n], loss.target)
                for loss, n, lw in zip(
                    targets.style, opts.style_layers, self.layer_weights, strict=True
                )
            ),
            torch.zeros((), device=x.device),
        )
        style.backward()  # type: ignore[no-untyped-call]
        gram_grads = {n: g.grad for n, g in global_grams.items()}
        content_weight = opts.content_weight / len(targets.content)
        content = 0.0

        # Pass 2: each tile's share of the gradient. The style part is the Gram gradient
        # dotted with the tile's share of the Gram matrix, whose gradient is exactly the
        # tile's part of the whole image's style gradient.
        def tile_loss(feats: dict[str, Tensor], t: tiles.Tile) -> Tensor:
            nonlocal content
            share = sum(
                (
                    (g * tiles.gram_share(t.interior(feats[n], n), tiles.positions(h, w, n))).sum()
                    for n, g in gram_grads.items()
                    if g is not None
                ),
                torch.zeros((), device=x.device),
            )
            c = torch.zeros((), device=x.device)
            for loss, n in zip(targets.content, opts.content_layers, strict=True):
                rows, cols = t.region(n)
                part = t.interior(feats[n], n) - loss.target[..., rows, cols]
                c = c + part.pow(2).sum() / loss.norm
            content += float(c.detach()) * content_weight
            return (share + content_weight * c) * gradient_scale

        grad = tiles.backward(self.model, image, layout, tile_loss)
        pixel_terms = self._pixel_terms(x)
        pixels = sum(pixel_terms.values(), torch.zeros((), device=x.device))
        (pixels * gradient_scale).backward()  # type: ignore[no-untyped-call]
        assert x.grad is not None
        x.grad.add_(grad)
        terms = {"content": content, "style": float(style.detach())}
        terms.update((k, float(v.detach())) for k, v in pixel_terms.items())
        return sum(terms.values()), terms

    # -- the loop ------------------------------------------------------------------------

    def _initial(self, content: Tensor) -> Tensor:
        opts = self.opts
        init = self.init if self.init is not None else opts.init
        h, w = content.shape[-2:]
        if isinstance(init, str) and init == "content":
            return content.clone()
        if isinstance(init, str) and init == "instant":
            c, s = prepare(
                self.content, self.styles, max(h, w), opts.style_scale, opts.preserve_color
            )
            start = self.engine.feedforward.stylise(
                c,
                s,
                self.blend,
                transform=DEFAULT_TRANSFORM,
                levels=opts.levels,
                models=opts.model or (),
                dtype=torch.bfloat16 if opts.precision == "bfloat16" else torch.float32,
            )
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
                if self.deadline is not None:
                    self._share_time(index)
                content = self._content_at(long_side)
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
        """Measure one evaluation at the first scale; refuse a budget too short for a few
        evaluations at every scale, naming the least that would do."""
        content = self._content_at(self.sizes[0])
        targets = self._losses(content, self.sizes[0], self.plans[0].tile)
        self.probed = targets  # the first scale starts with them
        x = content.clone().requires_grad_(True)
        started = time.perf_counter()
        self._evaluate(x, targets, self.plans[0].tile, 1.0)
        self.rate = (time.perf_counter() - started) / self.work[0]
        spent = time.perf_counter() - self.start
        least = spent + self.rate * TIME_MIN_STEPS * sum(self.work)
        if seconds < least:
            raise OptionError(
                f"--time {seconds:g} is too short for a {self.sizes[-1]} px picture here: it "
                f"needs at least about {math.ceil(least / TIME_USE)} s; allow that, choose a "
                "smaller --size, or --preset instant (seconds)"
            )
        self.deadline = self.start + seconds * TIME_USE

    def _share_time(self, index: int) -> None:
        """Give scale `index` the share of the time left that the preset's schedule gives
        it, and estimate how many evaluations that buys (for the progress display)."""
        assert self.deadline is not None and self.rate is not None
        if self.rated_work > 0:
            self.rate = self.evaluating / self.rated_work
        costs = [n * w for n, w in zip(self.steps, self.work, strict=True)]
        now = time.perf_counter()
        share = costs[index] / sum(costs[index:])
        self.scale_deadline = now + max(0.0, self.deadline - now) * share
        for i in range(index, len(self.steps)):
            seconds = max(0.0, self.deadline - now) * costs[i] / sum(costs[index:])
            self.steps[i] = max(TIME_MIN_STEPS, int(seconds / (self.rate * self.work[i])))
        self.work_total = self.work_done + sum(
            n * w for n, w in zip(self.steps[index:], self.work[index:], strict=True)
        )

    def _optimise(self, index: int, image: Tensor, content: Tensor) -> Tensor:
        opts = self.opts
        long_side = self.sizes[index]
        steps = self.steps[index]
        # With --time the clock stops a scale; the estimate of its steps may be short.
        limit = steps if self.scale_deadline is None else 4 * steps
        plan = self.plans[index]
        if index == 0 and self.probed is not None:
            targets = self.probed
            self.probed = None
        else:
            targets = self._losses(content, long_side, plan.tile)
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
                lr=opts.learning_rate or 1.0,
                max_iter=limit,
                max_eval=limit,
                history_size=plan.history,
                line_search_fn="strong_wolfe",
                tolerance_grad=0.0,
                tolerance_change=0.0,
            )
        else:
            optimiser = torch.optim.Adam([x], lr=opts.learning_rate or 0.02)
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
            if step and self.scale_deadline and time.perf_counter() >= self.scale_deadline:
                raise _BudgetSpent  # this scale's share of --time is spent
            step += 1
            optimiser.zero_grad()
            began = time.perf_counter()
            value, terms = self._evaluate(x, targets, plan.tile, gradient_scale)
            if self.work_done > 0 or self.deadline is not None:  # --time probed already
                self.evaluating += time.perf_counter() - began
                self.rated_work += self.work[index]
            if step == 1 or value < self.best_loss:
                self.best_loss, self.best_terms = value, dict(terms)
                self.best = x.detach().clone()
            self.work_done += self.work[index]
            if self.callback is not None:
                self.callback(self._progress(index, size, step, steps, value, terms, x))
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
                group.update(lr=opts.learning_rate or 1.0, max_iter=limit)
                optimiser.step(closure)  # type: ignore[no-untyped-call]
                # L-BFGS stops by itself when a line search finds no lower point, which
                # float noise makes likely late in a long run. With --time, and time left,
                # it starts afresh (a new curvature history) until a fresh start, too,
                # stalls at once.
                while self.scale_deadline is not None and step < limit:
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
        steps: int,
        loss: float,
        terms: dict[str, float],
        x: Tensor,
    ) -> Progress:
        elapsed = time.perf_counter() - self.start
        remaining = self.work_total - self.work_done
        # From the evaluations' own rate: the set-up before them (loading, style targets,
        # the first evaluation's one-time costs) says nothing about what is left.
        eta = None
        if (step > 2 or index > 0) and self.rated_work > 0:
            eta = self.evaluating / self.rated_work * remaining
        if self.deadline is not None:  # the clock, not the steps, ends a timed run
            eta = max(0.0, self.deadline - time.perf_counter())
        snapshot = x.detach().clone()  # a record of this step, not a view of the next
        return Progress(
            scale=index + 1,
            scales=len(self.sizes),
            size=size,
            step=step,
            steps=steps,
            done_steps=sum(self.steps[:index]) + step,
            total_steps=sum(self.steps),
            loss=loss,
            losses=dict(terms),
            elapsed=elapsed,
            eta=eta,
            render=lambda: self._render(snapshot),
        )

    def _result(self, *, interrupted: bool) -> Result:
        best = self.best
        if best is None:  # interrupted before the first evaluation
            best = self._content_at(self.sizes[0])
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
            seconds=time.perf_counter() - self.start,
            device=str(self.device),
            options=self.opts,
            interrupted=interrupted,
        )


def stylize(
    content: ImageLike,
    styles: ImageLike | Sequence[ImageLike],
    *,
    callback: ProgressFn | None = None,
    **options: Any,
) -> Image.Image:
    """Repaint `content` in the manner of `styles` and return the picture.

    Options are the fields of `Options`; for many images, build a `StyleTransfer` once.
    """
    opts = Options.from_kwargs(**options)  # check the names before loading the network
    engine = StyleTransfer(device=opts.device)
    return engine.run(content, styles, opts, callback=callback).image
