"""The way in: `StyleTransfer` loads VGG-19 once and repaints any number of images by
either method family, image optimisation (`gatys`) or a feed-forward pass
(`feedforward`); `stylize` is the one-call form.

Both families take the same `Options` and report through the same `Progress` and
`Result`, so the engine never prints; a Ctrl-C raises `Interrupted`, which carries the
best image so far.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from .core.device import resolve_device
from .core.errors import OptionError
from .core.options import OptimisationOptions, Options, resolve_options
from .core.results import ExtraTerm, ProgressFn, Result
from .core.weights import ensure_weights, load_state_dict
from .feedforward import engine as feedforward
from .gatys.engine import Run
from .io.image import ImageLike, as_list


class StyleTransfer:
    """Loads VGG-19 once; `run` and `stylize` then repaint as many images as wanted."""

    def __init__(self, device: str = "auto", weights: Path | None = None) -> None:
        self.device = resolve_device(device)
        path = weights if weights is not None else ensure_weights()
        self._state = {k: v.to(self.device) for k, v in load_state_dict(path).items()}
        self.feedforward = feedforward.FeedForward(self._state, self.device)

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
        if not isinstance(opts, OptimisationOptions):
            if init is not None or terms:
                raise OptionError(f"the feed-forward method {opts.method} takes no start image")
            return feedforward.run(self.feedforward, content, style_list, opts, callback)
        instant = functools.partial(feedforward.start_image, self.feedforward, opts=opts)
        return Run(
            self._state, self.device, content, style_list, opts, callback, init, terms or {},
            instant,
        ).execute()  # fmt: skip


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
