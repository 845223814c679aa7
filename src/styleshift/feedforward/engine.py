"""Instant stylisation: encode, transform the features, decode; one pass, no optimisation.

`FeedForward` keeps the decoders it has loaded; `StyleTransfer` owns one and calls `run`
for the feed-forward methods, which report the same `Progress` and `Result` as the
optimisation.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from ..core.errors import InputError
from ..core.options import DEFAULT_TRANSFORM, ResolvedOptions, normalised
from ..core.pipeline import finish, open_inputs, prepare, sizes
from ..core.regions import Regions, open_painting_masks, open_regions
from ..core.results import Progress, ProgressFn, Result, ScaleReport
from ..core.vgg import LEVELS, VGGFeatures, stride
from ..io.image import ImageLike
from . import tiles
from .decoder import Decoder, ModelInfo, load_model, pad_to_multiple, padded_side
from .transforms import stylise_features, stylise_regions

# The decoders shipped inside the package (docs/model-card.md) and their sha256, checked
# on every load so that a damaged install fails by name instead of painting noise.
SHIPPED: dict[str, tuple[str, str]] = {
    "relu4_1": (
        "decoder-relu4_1.safetensors",
        "56ede771eade969328b2ebdc4b2eadb7b41e934a24fab2055a253ab53a62bf4b",
    ),
    "relu3_1": (
        "decoder-relu3_1.safetensors",
        "f0ce2b47f3a241831000f5b9171452bc09ca6ab743d00ee7d584e3a2ebef83a6",
    ),
}


def shipped_model(level: str = "relu4_1") -> Path:
    return Path(str(resources.files("styleshift") / "models" / SHIPPED[level][0]))


STYLE_CACHE = 8  # paintings x levels whose features are kept
# Larger features (a painting past about 2900 px square at relu4_1) are not kept: a
# print-size run would otherwise hold them long after it ended.
STYLE_CACHE_BYTES = 2**28
# The least side of a painting: what every decoder level encodes to two feature pixels.
MIN_SIDE = 2 * stride(LEVELS[-1])


class FeedForward:
    """Stylises in one pass per level with decoders; `stylise` works on tensors in 0..1."""

    def __init__(self, vgg_state: Mapping[str, Tensor], device: torch.device) -> None:
        self.device = device
        self._vgg = vgg_state
        self._models: dict[str, tuple[Decoder, ModelInfo]] = {}
        self._encoders: dict[tuple[str, str, torch.dtype], VGGFeatures] = {}
        self._styles: OrderedDict[tuple[object, ...], Tensor] = OrderedDict()
        self._lock = threading.Lock()

    def _style_features(
        self,
        encoder: VGGFeatures,
        style: Tensor,
        model: tuple[Decoder, ModelInfo],
        budget: int | None,
    ) -> Tensor:
        """A painting's features, kept for the next calls (unless they are large): a
        video or a batch encodes its painting once, not once a frame."""
        decoder, info = model
        digest = hashlib.blake2b(style.detach().cpu().numpy().tobytes(), digest_size=16)
        key = (info.level, info.pooling, encoder.dtype, tuple(style.shape), digest.hexdigest())
        with self._lock:  # the web page runs jobs in several threads
            if key in self._styles:
                self._styles.move_to_end(key)
                return self._styles[key]
        features = self._encode(encoder, style, decoder, budget)
        if features.numel() * features.element_size() <= STYLE_CACHE_BYTES:
            with self._lock:
                self._styles[key] = features
                while len(self._styles) > STYLE_CACHE:
                    self._styles.popitem(last=False)
        return features

    def _encode(
        self, encoder: VGGFeatures, image: Tensor, decoder: Decoder, budget: int | None
    ) -> Tensor:
        """(C, h, w) features of one image, padded so that the decoder gives back its
        size, in tiles where the whole would not fit the memory budget (None: the
        default share of what is available)."""
        s = stride(decoder.level)
        # Two feature pixels at least: the decoder's first reflection padding needs them.
        padded = pad_to_multiple(image.to(self.device), s, minimum=2 * s)
        h, w = padded.shape[-2:]
        return tiles.encode(encoder, padded, decoder.level, self._plan(h, w, decoder, budget))

    def _plan(self, h: int, w: int, decoder: Decoder, budget: int | None) -> int | None:
        if budget is None:
            budget = tiles.default_budget(h, w, decoder, self.device)
        return tiles.plan(h, w, decoder, budget)

    def memory_plan(
        self,
        sizes: Sequence[tuple[int, int]],
        levels: Sequence[str],
        models: Sequence[str] = (),
        budget: int | None = None,
    ) -> tuple[int, int | None]:
        """The memory budget for pictures of these (width, height) sizes, the photo's
        first (`budget`, or the default for the largest), and the photo's tile side at
        the first level (None: whole). Raises OptionError, before any of them exists,
        where one would not fit the budget even in the smallest tiles."""
        shapes = [
            (decoder, padded_side(h, s, 2 * s), padded_side(w, s, 2 * s))
            for decoder, _ in self.decoders(levels, models)
            for s in [stride(decoder.level)]
            for w, h in sizes
        ]
        if budget is None:
            budget = max(tiles.default_budget(h, w, d, self.device) for d, h, w in shapes)
        plans = [tiles.plan(h, w, decoder, budget) for decoder, h, w in shapes]
        return budget, plans[0]

    def _encoder(self, info: ModelInfo, dtype: torch.dtype) -> VGGFeatures:
        """VGG-19 to the decoder's level, built once: in bfloat16 building it copies the
        weights to channels-last, which a video would otherwise pay every frame."""
        key = (info.level, info.pooling, dtype)
        with self._lock:
            if key not in self._encoders:
                self._encoders[key] = VGGFeatures(self._vgg, (info.level,), info.pooling, dtype)
            return self._encoders[key]

    def _load(self, path: Path, sha256: str | None = None) -> tuple[Decoder, ModelInfo]:
        key = str(path)
        if key not in self._models:
            decoder, info = load_model(path, sha256=sha256)
            self._models[key] = (decoder.to(self.device), info)
        return self._models[key]

    def decoders(
        self, levels: Sequence[str], models: Sequence[str] = ()
    ) -> list[tuple[Decoder, ModelInfo]]:
        """A decoder for each level: the user's files for the levels they were trained
        at, the shipped ones for the others. Raises InputError for a level without one."""
        given = {}
        for path in models:
            decoder, info = self._load(Path(path))
            given[info.level] = (decoder, info)
        found = []
        for level in levels:
            if level in given:
                found.append(given[level])
            elif level in SHIPPED:
                found.append(self._load(shipped_model(level), SHIPPED[level][1]))
            else:
                raise InputError(
                    f"no decoder for level {level}; train one with `styleshift train "
                    f"--level {level}` and pass it with --model"
                )
        return found

    @torch.no_grad()
    def stylise(
        self,
        content: Tensor,
        styles: Sequence[Tensor],
        weights: Sequence[float],
        *,
        transform: str,
        strength: float = 1.0,
        levels: Sequence[str] = ("relu4_1",),
        models: Sequence[str] = (),
        dtype: torch.dtype = torch.float32,
        on_stage: Callable[[str], None] | None = None,
        regions: Regions | None = None,
        painting_regions: Sequence[Regions | None] = (),
        budget: int | None = None,
    ) -> Tensor:
        """(1, 3, H, W) content and styles in 0..1 -> the stylised (1, 3, H, W) in 0..1.

        With several levels (deepest first) the picture of each is the content of the
        next, so the coarse structures of the style come first and the fine ones last
        (universal style transfer's multi-level stylisation). With `regions`, each region
        is moved towards its own styles, and the photo is kept where no region reaches;
        with `painting_regions` (one per style, None for all of it), each style's
        statistics come from its painting's masked part only. The networks run in tiles
        where a pass over the whole picture would not fit `budget` bytes (None: a share
        of the memory available)."""
        h, w = content.shape[-2:]
        x = content.to(self.device)
        for decoder, info in self.decoders(levels, models):
            encoder = self._encoder(info, dtype)
            style_features = [
                _inside(
                    self._style_features(encoder, s, (decoder, info), budget), where, s, info.level
                )
                for s, where in zip(styles, painting_regions or [None] * len(styles), strict=True)
            ]
            content_features = self._encode(encoder, x, decoder, budget)
            if regions is None:
                mixed = stylise_features(
                    transform, content_features, style_features, weights, strength
                )
            else:
                share = regions.at_features(h, w, 1)
                share = pad_to_multiple(share, stride(info.level), minimum=2 * stride(info.level))
                mixed = stylise_regions(
                    transform,
                    content_features,
                    style_features,
                    weights,
                    strength,
                    [r.styles for r in regions.regions],
                    F.avg_pool2d(share, stride(info.level)).to(content_features.device),
                )
            if on_stage is not None:
                on_stage(f"{info.level} transformed")
            del content_features
            s = stride(info.level)
            plan = self._plan(mixed.shape[-2] * s, mixed.shape[-1] * s, decoder, budget)
            out = tiles.decode(decoder, mixed.unsqueeze(0), plan, dtype)
            x = out[..., :h, :w].clamp(0, 1).contiguous()
            if regions is not None:
                x = regions.keep_photo(x, content)
            if on_stage is not None:
                on_stage(f"{info.level} decoded")
        return x


def _inside(features: Tensor, where: Regions | None, painting: Tensor, level: str) -> Tensor:
    """A painting's (C, h, w) features at the positions its mask covers (at least half),
    as (C, 1, n): every transform takes its statistics from the positions it is given."""
    if where is None:
        return features
    h, w = painting.shape[-2:]
    share = pad_to_multiple(where.weights(h, w), stride(level), minimum=2 * stride(level))
    share = F.avg_pool2d(share, stride(level))[0, 0].to(features.device)
    keep = share >= 0.5
    if int(keep.sum()) < 2:  # a sliver at this level's coarse grid: its best positions
        keep = share >= share.max() * 0.5
    return features[:, keep].unsqueeze(1)


def start_image(
    feedforward: FeedForward,
    content: Image.Image,
    styles: Sequence[Image.Image],
    long_side: int,
    regions: Regions | None,
    *,
    opts: ResolvedOptions,
) -> Tensor:
    """The instant picture at `long_side` as a (1, 3, H, W) tensor in 0..1: the start
    image the optimisation's `--init instant` asks for."""
    c, s = prepare(content, styles, long_side, opts.style_scale, opts.preserve_color, MIN_SIDE)
    return feedforward.stylise(
        c,
        s,
        normalised(opts.style_blend, len(s)),
        transform=DEFAULT_TRANSFORM,
        levels=opts.levels,
        models=opts.model or (),
        dtype=torch.bfloat16 if opts.precision == "bfloat16" else torch.float32,
        budget=opts.memory_budget(),
        regions=regions,
        painting_regions=open_painting_masks(opts.style_mask, styles)[0],
    )


def run(
    feedforward: FeedForward,
    content: ImageLike,
    styles: Sequence[ImageLike],
    opts: ResolvedOptions,
    callback: ProgressFn | None,
) -> Result:
    """One pass per level: encode and transform, then decode, each reported as a step
    of one scale, and a last step for the finished picture."""
    start = time.perf_counter()
    image, alpha, style_images = open_inputs(content, styles)
    budget, tile = feedforward.memory_plan(  # before the large images are made
        sizes(image, style_images, opts.size, opts.style_scale, MIN_SIDE),
        opts.levels,
        opts.model or (),
        opts.memory_budget(),
    )
    c, s = prepare(image, style_images, opts.size, opts.style_scale, opts.preserve_color, MIN_SIDE)
    size = (int(c.shape[-1]), int(c.shape[-2]))
    regions = open_regions(opts.mask, image, len(s)) if opts.mask else None
    painting_regions, notes = open_painting_masks(opts.style_mask, style_images)
    picture: list[Image.Image] = []
    steps = 2 * len(opts.levels) + 1
    done = [0]

    def stage(name: str) -> None:
        done[0] += 1
        if callback is None:
            return
        step = done[0]
        callback(
            Progress(
                scale=1,
                scales=1,
                size=size,
                step=step,
                steps=steps,
                done_steps=step,
                total_steps=steps,
                loss=math.nan,  # a pass has no loss to report
                losses={},
                elapsed=time.perf_counter() - start,
                eta=None,  # each stage is a fraction of a second
                render=(lambda: picture[0]) if picture else (lambda: image.resize(size)),
                stage=name,
            )
        )

    out = feedforward.stylise(
        c,
        s,
        normalised(opts.style_blend, len(s)),
        transform=opts.method,
        strength=opts.strength,
        levels=opts.levels,
        models=opts.model or (),
        dtype=torch.bfloat16 if opts.precision == "bfloat16" else torch.float32,
        budget=budget,
        on_stage=stage,
        regions=regions,
        painting_regions=painting_regions,
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
        scales=(ScaleReport(size, 0, seconds, math.nan, tile),),
        seconds=seconds,
        device=str(feedforward.device),
        options=opts,
        notes=(*(regions.notes if regions is not None else ()), *notes),
    )
