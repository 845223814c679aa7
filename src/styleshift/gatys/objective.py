"""What an optimisation run minimises: a content term on deep VGG-19 features, a style
term on Gram matrices, and terms on the pixels themselves, evaluated on the whole image
or, where memory is short, in tiles (`tiles`) with the same value and gradient.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from PIL import Image
from torch import Tensor

from ..core import color
from ..core.losses import (
    ContentLoss,
    RangeLoss,
    StyleLoss,
    TVLoss,
    gram_matrix,
    mix_grams,
    relative_mse,
)
from ..core.options import OptimisationOptions, normalised
from ..core.regions import SUPPORT, Regions, open_painting_masks
from ..core.results import ExtraTerm
from ..core.tiling import Tile
from ..core.vgg import VGGFeatures, stride
from ..io.image import long_side_for, resize_long_side, to_tensor
from . import tiles

# The median style loss of a photo against a painting over bench/faithful.py's 72 pairs
# at 384 px: an adaptive style weight leaves such a pair's balance as it was.
TYPICAL_PHOTO_STYLE_LOSS = 0.78


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
    style: list[list[StyleLoss]]  # per region (one, the whole picture, without masks), per layer
    style_weight: float
    # Per region and style layer, how much each position of the layer counts (None: all
    # alike), and each region's share of the picture, which its style term is scaled by
    # so that a pixel is pulled as hard in a small region as in a large one.
    weights: list[dict[str, Tensor] | None]
    areas: list[float]


class Objective:
    """The loss of an image against one photo and its paintings, at any scale."""

    def __init__(
        self,
        model: VGGFeatures,
        opts: OptimisationOptions,
        content: Image.Image,
        styles: Sequence[Image.Image],
        terms: Mapping[str, ExtraTerm],
        budget: int,
        device: torch.device,
        regions: Regions | None = None,
    ) -> None:
        self.model = model
        self.opts = opts
        self.content_weight = opts.content_weight
        self.content = content
        self.styles = list(styles)
        self.terms = dict(terms)
        self.budget = budget
        self.overhead = tiles.pass_overhead(model)
        self.device = device
        self.blend = normalised(opts.style_blend, len(self.styles))
        self.regions = regions
        # Where each painting's statistics come from (--style-mask); None: all of it.
        self.painting_regions, self.notes = open_painting_masks(opts.style_mask, self.styles)
        # Which styles paint each region: all of them over the whole picture without masks.
        self.groups = (
            [r.styles for r in regions.regions] if regions else [tuple(range(len(self.styles)))]
        )
        self.layer_weights = normalised(opts.style_layer_weights, len(opts.style_layers))
        # Tiled evaluations shift their grid at random; seeded, a run repeats exactly.
        self.grid_generator = torch.Generator().manual_seed(opts.seed)
        self.tv = TVLoss()
        self.range = RangeLoss()

    # -- images at a scale -------------------------------------------------------------

    def _tensor(self, image: Image.Image, long_side: int) -> Tensor:
        return to_tensor(resize_long_side(image, long_side)).to(self.device)

    def content_at(self, long_side: int) -> Tensor:
        """The photo at a scale, as the objective sees it (luminance only, if so asked)."""
        c = self._tensor(self.content, long_side)
        return color.luminance(c) if self.opts.preserve_color == "luminance" else c

    def _style_at(self, style: Image.Image, long_side: int, content: Tensor) -> Tensor:
        # Gram matrices do not depend on the size, so a narrow painting is enlarged until
        # the network can pool it.
        side = long_side_for(
            style.size, round(long_side * self.opts.style_scale), self.model.min_side
        )
        s = self._tensor(style, side)
        if self.opts.preserve_color == "histogram":
            return color.match_color(s, content)
        if self.opts.preserve_color == "luminance":
            return color.match_luminance(color.luminance(s), content)
        return s

    # -- targets -----------------------------------------------------------------------

    def targets(self, content: Tensor, long_side: int, tile: int | None) -> Targets:
        """The targets at a scale: the photo's features and, per region, the blended Gram
        matrices of its paintings, computed in tiles of `tile` pixels where that is given."""
        opts = self.opts
        h, w = content.shape[-2:]
        weights, areas = self._region_weights(h, w)
        with torch.no_grad():
            if tile is None:
                feats = self.model(content)
            else:
                feats = tiles.features(
                    self.model, content, opts.content_layers, tiles.grid(h, w, tile)
                )
            content_losses = [ContentLoss(feats[name]) for name in opts.content_layers]
            grams: dict[str, list[Tensor]] = {name: [] for name in opts.style_layers}
            for style, where in zip(self.styles, self.painting_regions, strict=True):
                painting = self._style_at(style, long_side, content)
                (whole,) = self.grams(painting, [self._painting_weights(where, painting)])
                for name, gram in whole.items():
                    grams[name].append(gram)
        style_losses = []
        for group in self.groups:
            blend = [self.blend[i] for i in group]
            style_losses.append(
                [
                    StyleLoss(mix_grams([grams[n][i] for i in group], blend))
                    for n in opts.style_layers
                ]
            )
        targets = Targets(content_losses, style_losses, opts.style_weight, weights, areas)
        if opts.adaptive_weight:
            with torch.no_grad():
                # Untiled, the photo's style features came with its content features.
                own = (
                    [self._grams_of(feats, weight) for weight in weights]
                    if tile is None
                    else self.grams(content, weights)
                )
            # Per unit of painted area: a small region's term is small because the region
            # is, not because its photo is close to the painting.
            painted = sum(a for a in areas if a >= SUPPORT) or 1.0
            distance = float(self._style_distance(own, targets)) / painted
            targets.style_weight *= adaptive_factor(distance)
        return targets

    def _region_weights(self, h: int, w: int) -> tuple[list[dict[str, Tensor] | None], list[float]]:
        """Each region's weight at every style layer's resolution, and its area share."""
        if self.regions is None:
            return [None], [1.0]
        areas = [float(p.mean()) for p in self.regions.weights(h, w)]
        layers = {
            n: self.regions.at_features(h, w, stride(n)).to(self.device)
            for n in self.opts.style_layers
        }
        weights: list[dict[str, Tensor] | None] = [
            {n: layer[index : index + 1] for n, layer in layers.items()}
            for index in range(len(areas))
        ]
        return weights, areas

    def _painting_weights(
        self, where: Regions | None, painting: Tensor
    ) -> dict[str, Tensor] | None:
        """A painting mask's weight at every style layer's resolution (None: no mask)."""
        if where is None:
            return None
        h, w = painting.shape[-2:]
        return {
            n: where.at_features(h, w, stride(n)).to(self.device) for n in self.opts.style_layers
        }

    def _grams_of(
        self, feats: Mapping[str, Tensor], weight: Mapping[str, Tensor] | None
    ) -> dict[str, Tensor]:
        return {
            n: gram_matrix(feats[n], None if weight is None else weight[n])
            for n in self.opts.style_layers
        }

    def grams(
        self, image: Tensor, weights: Sequence[Mapping[str, Tensor] | None] = (None,)
    ) -> list[dict[str, Tensor]]:
        """The style layers' Gram matrices of an image, one set per region of `weights`
        (None: the whole image), in tiles if a forward pass needs them."""
        h, w = image.shape[-2:]
        tile = tiles.plan(h, w, self.budget, optimise=False, overhead=self.overhead).tile
        if tile is not None:
            layout = tiles.grid(h, w, tile)
            return tiles.grams(self.model, image, self.opts.style_layers, layout, weights)
        feats = self.model(image)
        return [self._grams_of(feats, weight) for weight in weights]

    # -- evaluation --------------------------------------------------------------------

    def _style_distance(self, grams: Sequence[Mapping[str, Tensor]], targets: Targets) -> Tensor:
        """The unweighted style term: how far each region's Gram matrices are from its
        targets, the regions weighted by their areas."""
        total = torch.zeros((), device=self.device)
        for region, style, area in zip(grams, targets.style, targets.areas, strict=True):
            if area < SUPPORT:
                continue  # an empty mask paints nothing
            layers = zip(self.opts.style_layers, style, self.layer_weights, strict=True)
            distance = sum(
                (lw * relative_mse(region[n], loss.target) for n, loss, lw in layers),
                torch.zeros((), device=self.device),
            )
            total = total + (distance if area == 1.0 else area * distance)
        return total

    def _pixel_terms(self, image: Tensor) -> dict[str, Tensor]:
        """The terms computed on the image itself rather than on its features."""
        terms = {
            "tv": self.opts.tv_weight * self.tv(image),
            "range": self.opts.range_weight * self.range(image),
        }
        terms.update((name, term(image)) for name, term in self.terms.items())
        return terms

    def evaluate(
        self, x: Tensor, targets: Targets, tile: int | None, gradient_scale: float
    ) -> tuple[float, dict[str, float]]:
        """The objective at `x` and its weighted terms, with its gradient (times
        `gradient_scale`) added to x.grad; in tiles of `tile` pixels where that is given."""
        if tile is not None:
            return self._evaluate_tiled(x, targets, tile, gradient_scale)
        opts = self.opts
        feats = self.model(x)
        content = sum(
            (loss(feats[n]) for loss, n in zip(targets.content, opts.content_layers, strict=True)),
            torch.zeros((), device=x.device),
        ) / len(targets.content)
        grams = [self._grams_of(feats, weight) for weight in targets.weights]
        terms = {
            "content": self.content_weight * content,
            "style": targets.style_weight * self._style_distance(grams, targets),
            **self._pixel_terms(x),
        }
        total: Tensor = sum(terms.values(), torch.zeros((), device=x.device))
        (total * gradient_scale).backward()  # type: ignore[no-untyped-call]
        return float(total.detach()), {k: float(v.detach()) for k, v in terms.items()}

    def _evaluate_tiled(
        self, x: Tensor, targets: Targets, tile: int, gradient_scale: float
    ) -> tuple[float, dict[str, float]]:
        opts = self.opts
        h, w = x.shape[-2:]
        image = x.detach()
        layout = tiles.shifted_grid(h, w, tile, self.grid_generator)
        # Pass 1: the global Gram matrices, the style term, and its gradient with respect
        # to each Gram matrix (they are small: channels x channels).
        global_grams = [
            {n: g.requires_grad_(True) for n, g in region.items()}
            for region in tiles.grams(self.model, image, opts.style_layers, layout, targets.weights)
        ]
        style = targets.style_weight * self._style_distance(global_grams, targets)
        style.backward()  # type: ignore[no-untyped-call]
        gram_grads = [{n: g.grad for n, g in region.items()} for region in global_grams]
        content_weight = self.content_weight / len(targets.content)
        content = 0.0

        # Pass 2: each tile's share of the gradient. The style part is the Gram gradient
        # dotted with the tile's share of the Gram matrix, whose gradient is exactly the
        # tile's part of the whole image's style gradient.
        def tile_loss(feats: dict[str, Tensor], t: Tile) -> Tensor:
            nonlocal content
            share = torch.zeros((), device=x.device)
            for region, weight in zip(gram_grads, targets.weights, strict=True):
                for n, g in region.items():
                    if g is not None:
                        part = t.interior(feats[n], n)
                        share = share + (g * tiles.gram_share(part, t, n, h, w, weight)).sum()
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
