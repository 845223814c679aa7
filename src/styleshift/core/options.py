"""Every setting of a run, what each preset decides, and how a run's options are checked.

The options of both method families live in one `Options`; each field names the method
it affects (`FIELD_METHODS`), so the CLI groups its flags by method, the web page shows
only what applies, and a value given to a method it does not affect is refused.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal, TypeVar, cast, get_args

import torch

from .device import Device, Precision, resolve_precision
from .errors import OptionError, choice_hint
from .regions import check_count
from .settings_text import check_names
from .vgg import Pooling, check_layers, check_level

Preset = Literal["fast", "balanced", "high", "instant"]
Method = Literal["auto", "gatys", "adain", "wct", "efdm"]
OptimizerName = Literal["lbfgs", "adam"]
ColorMode = Literal["none", "luminance", "histogram"]

# The named start images of the optimisation; any other `init` is a path to an image.
INIT_STARTS = ("content", "noise", "instant")
PRESETS: tuple[str, ...] = get_args(Preset)
R = TypeVar("R", bound="ResolvedOptions")
METHODS: tuple[str, ...] = get_args(Method)
FEEDFORWARD: tuple[str, ...] = ("adain", "wct", "efdm")
# The transform `instant` uses; chosen by bench/instant.py (docs/performance.md).
DEFAULT_TRANSFORM = "adain"
DEFAULT_LEVELS = ("relu4_1",)
# The default share of free memory a run budgets for: enough for 1024 px without tiles on
# a 24 GB machine, where a 2048 px run then peaks at 3.6 GiB (docs/performance.md).
MEMORY_FRACTION = 0.25


@dataclass(frozen=True)
class PresetSpec:
    """What a preset decides: the output size, how the iterations are spent, and how
    much the photo weighs against the painting."""

    size: int
    start_size: int = 0
    iterations: tuple[int, ...] = ()  # per scale, coarse to fine (see iterations_for)
    method: str = "gatys"
    content_weight: float = 0.08


# Iterations are L-BFGS function evaluations (one network pass each). The coarse scales
# settle the composition cheaply; most of the budget goes to the finest scale, where
# the detail that the eye (and the full-size objective) sees is made. balanced and high
# start at 256 px: from 128 px the composition drifts further from the photo, and the
# finest scale spent up to twice the evaluations pulling it back. fast starts near 256
# px (272, then 384) for the same reason: on 24 of bench/faithful.py's pairs its 10th
# percentile of content similarity went 0.59 (from 136 px), 0.63 (from 192 px), 0.65
# (from 272 px), with the style-loss reduction 23, 24 and 26 times, for 3% more time than
# from 192 px. On all 72 pairs, 60 evaluations at 384 px instead of 40 bought style
# (31.7 -> 34.8 times), which a content weight of 0.095 turns into photo: 10th percentile
# 0.635 -> 0.652 at 30.9 times, for 40% more time (0.1 gave 0.655 but 29.7 times).
# balanced at 0.08 had style to spare (45 times) but lost the subject on more than a
# tenth of the pairs (10th percentile 0.640); 0.11 gives 0.660 at 35.5 times. high at
# 0.08 had more style still (54 times) and lost more photo (0.631): 0.13.
# Measured on 2 CPU cores and, for high's whole grid, on a GPU with the same schedule
# (the same scores to 3 decimals): see docs/performance.md. instant is one feed-forward
# pass. A GPU runs the next CPU preset's measured schedule: its own, from 128 px with
# weight 0.08, had lost the photo as the CPU's had (10th percentile 0.609 for fast).
_CPU_BALANCED = PresetSpec(size=512, start_size=256, iterations=(20, 20, 160), content_weight=0.11)
_CPU_HIGH = PresetSpec(size=768, start_size=256, iterations=(20, 20, 20, 200), content_weight=0.13)
_PRESETS: dict[str, dict[str, PresetSpec]] = {
    "cpu": {
        "fast": PresetSpec(size=384, start_size=256, iterations=(20, 60), content_weight=0.095),
        "balanced": _CPU_BALANCED,
        "high": _CPU_HIGH,
        "instant": PresetSpec(size=512, method=DEFAULT_TRANSFORM),
    },
    "gpu": {
        "fast": _CPU_BALANCED,
        "balanced": _CPU_HIGH,
        # high's schedule one scale further (its first entry repeats, iterations_for).
        # At 1024 px 0.13 kept less of the photo than at 768 (0.569 against 0.582 on
        # high's worst pair); 0.15 keeps as much (0.580; 0.622 against 0.610 on the next).
        # 39 of the grid's 72 pairs are run; it meets issue 12's target unless an unrun
        # pair changes more than every run pair of its painting did (docs/performance.md).
        "high": replace(_CPU_HIGH, size=1024, content_weight=0.15),
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
    content_weight: float | None = _opt(
        None,
        "weight of the content loss (default: from the preset, "
        + "; ".join(
            ", ".join(
                f"{name} {spec.content_weight:g}"
                for name, spec in _PRESETS[kind].items()
                if spec.method == GATYS
            )
            + f" on a {kind.upper()}"
            for kind in _PRESETS
        )
        + ")",
    )
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
        "decoder (the shipped relu3_1 one only rebuilds photos: a second level now carries "
        "less of the painting than one)",
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
    mask: tuple[str, ...] | None = _opt(
        None,
        "mask images, one per style, comma-separated: each style paints where its mask is "
        "white, and the photo stays where every mask is black (grey between; the border is "
        "feathered); give two styles the same mask to blend them there; auto:subject or "
        "auto:background finds the photo's subject (GrabCut) instead of a drawn mask; for "
        "a video, a folder of numbered masks or a video of masks gives each frame its own "
        "(default: the whole picture)",
        COMMON,
    )
    style_mask: tuple[str, ...] | None = _opt(
        None,
        "masks over the paintings, one per style, comma-separated: each style's statistics "
        "come only from where its mask is white (guided Gram matrices, Gatys et al. 2017; "
        "the feed-forward methods take the features under it); with --mask, the photo's sky "
        "can take the painting's sky and its ground the painting's ground (default: the "
        "whole painting)",
        COMMON,
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
        "arithmetic of the network: bfloat16 is about twice as fast on CPUs with AMX and "
        "1.6 times on those with AVX512-BF16 (AMD Zen 4 and later); auto picks it there "
        "and float32 elsewhere",
        COMMON,
    )
    max_memory: float | None = _opt(
        None,
        "memory budget in GiB; a picture (or an optimisation's scale) that needs more is "
        "computed in overlapping tiles "
        f"(default: {MEMORY_FRACTION:.0%} of the memory available when the run starts, "
        "up to 75% where an output needs more)",
        COMMON,
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

    def memory_budget(self) -> int | None:
        """--max-memory in bytes; None leaves the budget to the engine."""
        return None if self.max_memory is None else int(self.max_memory * 2**30)

    def input_files(self) -> list[str]:
        """The files a run reads besides its photo and paintings: the masks, the
        painting masks and an init picture."""
        init = [] if self.init in INIT_STARTS else [self.init]
        return [*(self.mask or ()), *(self.style_mask or ()), *init]

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> Options:
        """Options from keyword arguments; a misspelt name gets a suggestion, not a TypeError."""
        check_names(cls, kwargs)
        return cls(**kwargs)


FIELD_METHODS: dict[str, str] = {f.name: f.metadata["method"] for f in fields(Options)}


@dataclass(frozen=True, kw_only=True)
class ResolvedOptions(Options):
    """Options for one device and set of styles, with what the preset decides filled in and
    every value checked: what the engines take. Only `resolve_options` makes them."""

    size: int = field()


@dataclass(frozen=True, kw_only=True)
class OptimisationOptions(ResolvedOptions):
    """Resolved options of the optimisation (method gatys), its schedule decided."""

    start_size: int = field()
    iterations: tuple[int, ...] = field()
    content_weight: float = field()
    learning_rate: float = field()


def resolve_options(
    options: Options, device: torch.device, styles: int | None = None
) -> ResolvedOptions:
    """Fill in what the preset decides and check every value; raises OptionError.

    `styles` is the number of style images, which the blend weights and masks must match,
    if known. Options resolved already are only checked against that number.
    """
    _check_counts(options, styles)
    if isinstance(options, ResolvedOptions):
        return options
    method = method_of(options)
    spec = _PRESETS["cpu" if device.type == "cpu" else "gpu"][options.preset]
    common = _with(
        ResolvedOptions,
        options,
        mask=(options.mask,) if isinstance(options.mask, str) else _as_tuple(options.mask),
        style_mask=(options.style_mask,)
        if isinstance(options.style_mask, str)
        else _as_tuple(options.style_mask),
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
    resolved = _with(
        OptimisationOptions,
        common,
        start_size=options.start_size if options.start_size is not None else spec.start_size,
        content_weight=options.content_weight
        if options.content_weight is not None
        else spec.content_weight,
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


def _with(cls: type[R], options: Options, **changes: Any) -> R:
    """`options` as a `cls`, with `changes`."""
    return cls(**{f.name: getattr(options, f.name) for f in fields(Options)} | changes)


def _check_counts(options: Options, styles: int | None) -> None:
    if styles is None:
        return
    if styles < 1:
        raise OptionError("no style image given; give at least one")
    if options.style_blend is not None and len(options.style_blend) != styles:
        raise OptionError(
            f"{len(options.style_blend)} blend weights given for {styles} style images; "
            "give one per style image"
        )
    for masks, what in ((options.mask, "mask"), (options.style_mask, "painting mask")):
        if masks is not None:
            check_count(1 if isinstance(masks, str) else len(masks), styles, what)


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
        hint = choice_hint(str(options.method), METHODS)
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


def _validate_common(o: ResolvedOptions) -> None:
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
    if o.max_memory is not None and (not math.isfinite(o.max_memory) or o.max_memory <= 0):
        raise OptionError(f"max memory must be more than zero GiB, got {o.max_memory}")


def _validate(o: OptimisationOptions) -> None:
    """The optimisation method's own options."""
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
    if o.time is not None and (not math.isfinite(o.time) or o.time <= 0):
        raise OptionError(f"time must be more than zero seconds, got {o.time}")
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


def normalised(weights: Sequence[float] | None, count: int) -> list[float]:
    """Blend or layer weights summing to one; equal where none are given."""
    if weights is None:
        return [1.0 / count] * count
    total = float(sum(weights))
    return [w / total for w in weights]
