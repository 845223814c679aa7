"""How a picture scores against its photo and painting (docs/evaluation.md has the anchors).

The features come from an independent VGG-19 scorer: max pooling, as the network was
trained, so not the optimisation's own average-pooled objective. A large image goes
through it tile by tile, and what the scores need of its features (a `Summary`) is
gathered from the tiles, so that memory follows the tile and the numbers stay the whole
image's.

Content fidelity, against the photo at the picture's size:
- similarity: cosine of the relu4_2 features; 1 for the photo itself.
- feature error: their relative squared error; 0 for the photo itself.
- SSIM of the luminance (pytorch-msssim, 11 px Gaussian window); 1 for the photo itself.
- edge overlap: F1 of the Canny edges of both, matched within one pixel; 1 for the photo.

Style match, against each painting at the picture's long side:
- distance: relative squared error between Gram matrices, per layer relu1_1..relu5_1 and
  their mean; 0 for the painting itself.
- reduction: the photo's distance over the picture's, how many times closer to the
  painting's style the picture is than the photo was.
- statistics distance and reduction: the same for the channels' means and standard
  deviations at relu1_1..relu4_1 (what AdaIN matches).
- colour distance: Hellinger distance between the CIELAB colour histograms; 0 for the
  same colours, 1 for colours that share nothing.

Regions (masks), for pictures painted only where a mask says:
- region distance: the style distance of the picture inside a mask (a Gram matrix
  weighted by it) to a whole painting.
- kept PSNR: the picture against the photo where the mask is black, a few pixels away
  from where it is not (the feather).
"""

from __future__ import annotations

import hashlib
import importlib
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from PIL import Image, ImageFilter
from torch import Tensor

from ..io.image import resize_long_side, to_tensor
from .errors import StyleshiftError
from .losses import relative_mse
from .tiling import grid, vgg_margin
from .vgg import VGGFeatures, stride

CONTENT_LAYER = "relu4_2"
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
STATISTICS_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
MIN_SIDE = 32  # below this the SSIM window and the deepest features mean little
# CIELAB histogram: L in 0..100, a and b clipped to -100..100 (natural colours lie inside).
LAB_BINS = (10, 16, 16)
LAB_RANGE = ((0.0, 100.0), (-100.0, 100.0), (-100.0, 100.0))


@dataclass(frozen=True)
class Scores:
    """The quick pair the benchmarks report (no SSIM, edges or colour)."""

    content_similarity: float
    style_distance: float
    style_reduction: float  # the photo's style distance / the picture's
    statistics_reduction: float  # likewise for channel means and standard deviations


@dataclass(frozen=True)
class ContentScores:
    similarity: float
    feature_error: float
    ssim: float
    edge_overlap: float


@dataclass(frozen=True)
class StyleScores:
    distance: float
    layers: dict[str, float]
    reduction: float
    statistics_distance: float
    statistics_reduction: float
    colour_distance: float


def _optional(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError:
        raise StyleshiftError(
            f"scoring needs {name.split('.')[0]}; pip install 'styleshift[evaluate]'"
        ) from None


def _rgb(image: Image.Image) -> npt.NDArray[np.uint8]:
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def luminance_ssim(picture: Image.Image, photo: Image.Image) -> float:
    """SSIM of the BT.601 luminance of two pictures of the same size."""
    ssim = _optional("pytorch_msssim").ssim
    weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    x, y = (
        (to_tensor(im.convert("RGB")) * weights).sum(1, keepdim=True) for im in (picture, photo)
    )
    return float(ssim(x, y, data_range=1.0, size_average=True))


def _edges(rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_]:
    cv2: Any = _optional("cv2")
    gray = cv2.GaussianBlur(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), (5, 5), 1.0)
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1)
    # Thresholds follow each picture's own gradients (the strongest tenth are edges), so
    # a painterly texture's many weak strokes do not count as the photo's outlines; the
    # floor keeps a flat picture edgeless.
    high = max(float(np.percentile(np.hypot(gx, gy), 90)), 40.0)
    return np.asarray(cv2.Canny(gray, high / 2, high, L2gradient=True) > 0)


def edge_overlap(picture: Image.Image, photo: Image.Image) -> float:
    """F1 score of the picture's Canny edges against the photo's, within one pixel."""
    cv2: Any = _optional("cv2")
    a, b = _edges(_rgb(picture)), _edges(_rgb(photo))
    if not a.any() and not b.any():
        return 1.0
    if not a.any() or not b.any():
        return 0.0
    kernel = np.ones((3, 3), np.uint8)
    near_a = cv2.dilate(a.astype(np.uint8), kernel) > 0
    near_b = cv2.dilate(b.astype(np.uint8), kernel) > 0
    precision = float((a & near_b).sum() / a.sum())
    recall = float((b & near_a).sum() / b.sum())
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def _lab_histogram(rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.float64]:
    cv2: Any = _optional("cv2")
    lab = cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab).reshape(-1, 3)
    lows = np.array([r[0] for r in LAB_RANGE])
    highs = np.array([r[1] for r in LAB_RANGE])
    counts, _ = np.histogramdd(np.clip(lab, lows, highs), bins=LAB_BINS, range=LAB_RANGE)
    return np.asarray(counts / counts.sum(), dtype=np.float64)


def colour_distance(picture: Image.Image, painting: Image.Image) -> float:
    """Hellinger distance between the CIELAB histograms: 0 same colours, 1 disjoint."""
    p, q = _lab_histogram(_rgb(picture)), _lab_histogram(_rgb(painting))
    return float(np.sqrt(max(0.0, 1.0 - float(np.sqrt(p * q).sum()))))


def _gram_errors(features: Summary, style: Summary) -> dict[str, float]:
    return {n: float(relative_mse(features.grams[n], style.grams[n])) for n in STYLE_LAYERS}


def _statistics_distance(features: Summary, style: Summary) -> float:
    total = 0.0
    for n in STATISTICS_LAYERS:
        gap = (features.means[n] - style.means[n]).norm() + (
            features.stds[n] - style.stds[n]
        ).norm()
        total += float(gap / (style.means[n].norm() + style.stds[n].norm()).clamp_min(1e-12))
    return total / len(STATISTICS_LAYERS)


def fit_photo(photo: Image.Image, size: tuple[int, int]) -> Image.Image:
    """The photo at the picture's (width, height), which is where content is compared."""
    photo = photo.convert("RGB")
    return photo if photo.size == size else photo.resize(size, Image.Resampling.LANCZOS)


def fit_painting(painting: Image.Image, size: tuple[int, int]) -> Image.Image:
    """The painting at the picture's long side, keeping its own shape (Gram statistics do
    not need the same shape, only a comparable scale of strokes)."""
    return resize_long_side(painting.convert("RGB"), max(size))


@dataclass(frozen=True)
class Summary:
    """What the scores need of an image's features: the content layer's map, each style
    layer's Gram matrix (weighted by a mask, if one was given) and each statistics
    layer's channel means and standard deviations, all float32."""

    content: Tensor  # (1, C, h, w)
    grams: dict[str, Tensor]  # (1, C, C)
    means: dict[str, Tensor]  # (1, C)
    stds: dict[str, Tensor]  # (1, C)


class _Sums:
    """Sums over positions, gathered tile by tile in float64, that give the Gram
    matrices, means and standard deviations of the whole image."""

    def __init__(self) -> None:
        self.grams: dict[str, Tensor] = {}
        self.firsts: dict[str, Tensor] = {}
        self.seconds: dict[str, Tensor] = {}
        self.weights: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def add(self, name: str, features: Tensor, weight: Tensor | None) -> None:
        flat = features.flatten(2)  # (1, C, n)
        weighted = flat if weight is None else flat * weight.flatten(2)
        gram = (weighted @ flat.transpose(1, 2)).double()
        self.grams[name] = self.grams.get(name, 0) + gram
        self.weights[name] = self.weights.get(name, 0.0) + (
            flat.shape[2] if weight is None else float(weight.sum())
        )
        if name in STATISTICS_LAYERS:
            first, second = (
                flat.sum(2, dtype=torch.float64),
                flat.square().sum(2, dtype=torch.float64),
            )
            self.firsts[name] = self.firsts.get(name, 0) + first
            self.seconds[name] = self.seconds.get(name, 0) + second
            self.counts[name] = self.counts.get(name, 0) + flat.shape[2]

    def summary(self, content: Tensor) -> Summary:
        means, stds = {}, {}
        for n, count in self.counts.items():
            mean = self.firsts[n] / count
            # Unbiased, as torch.std over the positions of the whole image.
            var = (self.seconds[n] - count * mean.square()) / max(count - 1, 1)
            means[n], stds[n] = mean.float(), var.clamp_min(0).sqrt().float()
        grams = {n: (g / max(self.weights[n], 1e-12)).float() for n, g in self.grams.items()}
        return Summary(content, grams, means, stds)


# Images over this many pixels are scored tile by tile: memory then follows the tile
# (the whole 4096 x 3072 picture, photo and painting took 21 GB at once).
WHOLE_PIXELS = 1536 * 1536
# Summaries kept, least recently used out first: a video's painting stays while its frames
# come and go; at most this much of them (a 4096 px picture's content map is 400 MB).
CACHE_ENTRIES = 8
CACHE_BYTES = 2**30
TILE = 1024
MARGIN = vgg_margin(STYLE_LAYERS[-1])  # 112 px: VGG-19's reach to relu5_1


def _bytes(summary: Summary) -> int:
    tensors = [summary.content, *summary.grams.values()]
    return sum(t.numel() * t.element_size() for t in tensors)


class Scorer:
    """Scores pictures against photos and paintings, at the picture's size."""

    def __init__(self, vgg_state: Mapping[str, Tensor], device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        state = {k: v.to(self.device) for k, v in vgg_state.items()}
        self.model = VGGFeatures(state, (CONTENT_LAYER, *STYLE_LAYERS), "max")
        self._cache: OrderedDict[str, Summary] = OrderedDict()

    @torch.no_grad()
    def summary(
        self, image: Image.Image, weight: Tensor | None = None, *, keep: bool = False
    ) -> Summary:
        """The summary of an image's features, tile by tile if it is large; with `weight`
        ((1, 1, H, W) in 0..1) the Gram matrices are the weighted region's. With `keep`,
        the last few are kept by the picture's bytes (a picture is scored against its
        photo and each painting, a photo or painting against many pictures of one size:
        the frames of a video, a comparison's runs)."""
        rgb = image.convert("RGB")
        key = hashlib.blake2b(rgb.tobytes(), digest_size=16).hexdigest() + str(rgb.size)
        if weight is None and key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        x = to_tensor(rgb).to(self.device)
        h, w = x.shape[-2:]
        tiles = (
            [None]
            if h * w <= WHOLE_PIXELS
            else grid(h, w, TILE, margin=MARGIN, align=stride(STYLE_LAYERS[-1]))
        )
        sums, content = _Sums(), None
        for tile in tiles:
            features = self.model(x if tile is None else tile.crop_of(x))
            for name, f in features.items():
                rows, cols = (slice(None), slice(None)) if tile is None else tile.region(name)
                if tile is not None:
                    f = tile.interior(f, name)
                if name == CONTENT_LAYER:
                    if content is None:
                        content = f.new_empty((*f.shape[:2], h // stride(name), w // stride(name)))
                    content[..., rows, cols] = f
                    continue
                where = None
                if weight is not None:
                    where = F.avg_pool2d(weight, stride(name))[..., rows, cols]
                sums.add(name, f, where)
        assert content is not None
        summary = sums.summary(content)
        if keep and weight is None:
            self._cache[key] = summary
            while len(self._cache) > CACHE_ENTRIES or (
                len(self._cache) > 1 and sum(map(_bytes, self._cache.values())) > CACHE_BYTES
            ):
                self._cache.popitem(last=False)
        return summary

    def content(self, picture: Image.Image, photo: Image.Image) -> ContentScores:
        """`photo` must already have the picture's size (see `fit_photo`)."""
        fx = self.summary(picture, keep=True).content.flatten()
        fc = self.summary(photo, keep=True).content.flatten()
        return ContentScores(
            similarity=float(torch.nn.functional.cosine_similarity(fx, fc, dim=0)),
            feature_error=float(relative_mse(fx, fc)),
            ssim=luminance_ssim(picture, photo),
            edge_overlap=edge_overlap(picture, photo),
        )

    def style(self, picture: Image.Image, photo: Image.Image, painting: Image.Image) -> StyleScores:
        """`photo` at the picture's size, `painting` at its long side (`fit_painting`)."""
        fx, fc, fs = (
            self.summary(picture, keep=True),
            self.summary(photo, keep=True),
            self.summary(painting, keep=True),
        )
        layers = _gram_errors(fx, fs)
        distance = sum(layers.values()) / len(layers)
        photo_distance = sum(_gram_errors(fc, fs).values()) / len(layers)
        statistics = _statistics_distance(fx, fs)
        return StyleScores(
            distance=distance,
            layers=layers,
            reduction=photo_distance / max(distance, 1e-12),
            statistics_distance=statistics,
            statistics_reduction=_statistics_distance(fc, fs) / max(statistics, 1e-12),
            colour_distance=colour_distance(picture, painting),
        )

    def region_distance(
        self, picture: Image.Image, painting: Image.Image, mask: Image.Image
    ) -> float:
        """The style distance to `painting` of the part of `picture` that `mask` (white:
        inside) covers, resized to the picture."""
        weight = _mask_tensor(mask, picture.size).to(self.device)
        fx = self.summary(picture, weight)
        fs = self.summary(fit_painting(painting, picture.size), keep=True)
        return sum(_gram_errors(fx, fs).values()) / len(STYLE_LAYERS)

    def score(self, picture: Image.Image, photo: Image.Image, painting: Image.Image) -> Scores:
        """The quick pair; the photo is resized to the picture's size, the painting to its
        long side."""
        photo = fit_photo(photo, picture.size)
        painting = fit_painting(painting, picture.size)
        fx, fc, fs = (self.summary(im) for im in (picture, photo, painting))
        distance = sum(_gram_errors(fx, fs).values()) / len(STYLE_LAYERS)
        photo_distance = sum(_gram_errors(fc, fs).values()) / len(STYLE_LAYERS)
        return Scores(
            float(
                torch.nn.functional.cosine_similarity(
                    fx.content.flatten(), fc.content.flatten(), dim=0
                )
            ),
            distance,
            photo_distance / max(distance, 1e-12),
            _statistics_distance(fc, fs) / max(_statistics_distance(fx, fs), 1e-12),
        )


def _mask_tensor(mask: Image.Image, size: tuple[int, int]) -> Tensor:
    grey = mask.convert("L").resize(size, Image.Resampling.BOX)
    return torch.from_numpy(np.asarray(grey, np.float32) / 255.0)[None, None]


def kept_psnr(picture: Image.Image, photo: Image.Image, mask: Image.Image, band: int) -> float:
    """PSNR (dB) of `picture` against `photo` (at the picture's size) where `mask` is
    black and at least `band` pixels from where it is not; infinity where they agree."""
    size = picture.size
    painted = mask.convert("L").resize(size, Image.Resampling.BOX).point(lambda v: 255 * (v > 0))
    if band > 0:
        painted = painted.filter(ImageFilter.MaxFilter(2 * band + 1))
    kept = np.asarray(painted) == 0
    if not kept.any():
        raise ValueError("the mask leaves nothing of the photo to compare")
    a = np.asarray(picture.convert("RGB"), np.float64)[kept]
    b = np.asarray(fit_photo(photo, size), np.float64)[kept]
    error = float(((a - b) ** 2).mean())
    return float("inf") if error == 0 else 10 * float(np.log10(255.0**2 / error))
