"""How a picture scores against its photo and painting: the numbers the benchmarks report.

An independent VGG-19 scorer (max pooling, as the network was trained, so not the
optimisation's own average-pooled objective):

- content similarity: cosine of the picture's and the photo's relu4_2 features; 1 for
  the photo itself, about 0.2-0.3 for an unrelated painting.
- style distance: the mean over relu1_1..relu5_1 of the relative squared error between
  Gram matrices, the painting's taken at the picture's size; 0 for the painting itself.
- style reduction: the photo's style distance over the picture's: how many times closer
  to the painting's style the picture is than the photo was.
- statistics reduction: the same for the channels' means and standard deviations at
  relu1_1..relu4_1 (what AdaIN matches), relative to the painting's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from PIL import Image
from torch import Tensor

from .image import resize_long_side, to_tensor
from .losses import gram_matrix, relative_mse
from .vgg import VGGFeatures

CONTENT_LAYER = "relu4_2"
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
STATISTICS_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")


@dataclass(frozen=True)
class Scores:
    content_similarity: float
    style_distance: float
    style_reduction: float  # the photo's style distance / the picture's
    statistics_reduction: float  # likewise for channel means and standard deviations


class Scorer:
    """Scores pictures against one photo and one painting, at the picture's size."""

    def __init__(self, vgg_state: Mapping[str, Tensor]) -> None:
        self.model = VGGFeatures(vgg_state, (CONTENT_LAYER, *STYLE_LAYERS), "max")

    @torch.no_grad()
    def _features(self, image: Tensor) -> dict[str, Tensor]:
        out: dict[str, Tensor] = self.model(image)
        return out

    @torch.no_grad()
    def style_distance(self, features: Mapping[str, Tensor], style: Mapping[str, Tensor]) -> float:
        return sum(
            float(relative_mse(gram_matrix(features[n]), gram_matrix(style[n])))
            for n in STYLE_LAYERS
        ) / len(STYLE_LAYERS)

    @torch.no_grad()
    def statistics_distance(
        self, features: Mapping[str, Tensor], style: Mapping[str, Tensor]
    ) -> float:
        total = 0.0
        for n in STATISTICS_LAYERS:
            x, s = features[n].flatten(2), style[n].flatten(2)
            gap = (x.mean(2) - s.mean(2)).norm() + (x.std(2) - s.std(2)).norm()
            total += float(gap / (s.mean(2).norm() + s.std(2).norm()).clamp_min(1e-12))
        return total / len(STATISTICS_LAYERS)

    @torch.no_grad()
    def score(self, picture: Image.Image, photo: Image.Image, painting: Image.Image) -> Scores:
        """The photo is resized to the picture's size, the painting to its long side."""
        x = to_tensor(picture.convert("RGB"))
        h, w = x.shape[-2:]
        c = to_tensor(photo.convert("RGB").resize((w, h), Image.Resampling.LANCZOS))
        s = to_tensor(resize_long_side(painting.convert("RGB"), max(h, w)))
        fx, fc, fs = self._features(x), self._features(c), self._features(s)
        similarity = float(
            torch.nn.functional.cosine_similarity(
                fx[CONTENT_LAYER].flatten(), fc[CONTENT_LAYER].flatten(), dim=0
            )
        )
        distance = self.style_distance(fx, fs)
        statistics = self.statistics_distance(fx, fs)
        return Scores(
            similarity,
            distance,
            self.style_distance(fc, fs) / max(distance, 1e-12),
            self.statistics_distance(fc, fs) / max(statistics, 1e-12),
        )
