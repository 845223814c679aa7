"""VGG-19's convolutional stack as a frozen feature extractor."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Literal, cast, get_args

import torch
from torch import Tensor, nn

from .errors import OptionError, choice_hint
from .weights import CONV_LAYERS

Pooling = Literal["avg", "max"]
# The levels a decoder can invert from: the first ReLU of each block.
Level = Literal["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
LEVELS: tuple[str, ...] = get_args(Level)

# The Oxford/Caffe preprocessing the weights were trained with: RGB in 0..255 minus the
# ImageNet mean, no division by a standard deviation.
MEAN_RGB = (123.68, 116.779, 103.939)


def _layer_names() -> tuple[str, ...]:
    """Every layer in network order: each conv followed by its ReLU, a pool per block."""
    names: list[str] = []
    for conv, following in zip(CONV_LAYERS, (*CONV_LAYERS[1:], ""), strict=True):
        block = conv.split("_")[0].removeprefix("conv")
        names += [conv, f"relu{conv.removeprefix('conv')}"]
        if not following.startswith(f"conv{block}_"):
            names.append(f"pool{block}")
    return tuple(names)


LAYERS: tuple[str, ...] = _layer_names()


def stride(layer: str) -> int:
    """How many input pixels one step of the layer's feature map spans (1, 2, 4, 8, 16)."""
    return int(2 ** sum(name.startswith("pool") for name in LAYERS[: LAYERS.index(layer) + 1]))


def check_layers(names: Iterable[str], what: str) -> tuple[str, ...]:
    """Return the names as a tuple, or raise with the closest valid name for a typo."""
    names = tuple(names)
    if not names:
        raise OptionError(f"no {what} given; name at least one VGG-19 layer such as relu4_2")
    for name in names:
        if name not in LAYERS:
            hint = choice_hint(name, LAYERS, f"valid names: {', '.join(LAYERS)}")
            raise OptionError(f"unknown {what[:-1]} '{name}'; {hint}")
    return names


def check_level(level: str) -> Level:
    if level not in LEVELS:
        raise OptionError(f"unknown decoder level '{level}'; {choice_hint(level, LEVELS)}")
    return cast(Level, level)


class VGGFeatures(nn.Module):
    """VGG-19 truncated after the deepest requested layer, returning those activations.

    Takes RGB images in 0..1 of shape (N, 3, H, W); the preprocessing lives here so that
    callers never handle the network's input convention. With `dtype` bfloat16 or float16
    the convolutions run in that precision (autocast, channels-last); the activations come
    back in float32 either way, so that losses and Gram matrices keep full precision.
    """

    mean: Tensor

    def __init__(
        self,
        state_dict: Mapping[str, Tensor],
        layers: Sequence[str],
        pooling: Pooling = "avg",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        self.dtype = dtype
        if pooling not in ("avg", "max"):
            raise OptionError(f"unknown pooling '{pooling}'; use 'avg' or 'max'")
        self.layers = check_layers(layers, "layers")
        deepest = max(LAYERS.index(n) for n in self.layers)
        # The least side an input may have: each pooling halves it, down to one pixel.
        self.min_side = stride(LAYERS[deepest])
        wanted = set(self.layers)
        modules: dict[str, nn.Module] = {}
        # oneDNN's reduced-precision kernels want channels-last (24% faster in bfloat16
        # on CPU); in float32 it made no difference (docs/performance.md).
        layout = torch.contiguous_format if dtype == torch.float32 else torch.channels_last
        for index, name in enumerate(LAYERS[: deepest + 1]):
            if name.startswith("conv"):
                conv = nn.Conv2d(*_conv_shape(state_dict, name), kernel_size=3, padding=1)
                weight = state_dict[f"{name}.weight"].contiguous(memory_format=layout)
                conv.weight = nn.Parameter(weight, requires_grad=False)
                conv.bias = nn.Parameter(state_dict[f"{name}.bias"], requires_grad=False)
                modules[name] = conv
            elif name.startswith("relu"):
                # In place saves a full activation per layer; unsafe only when the
                # conv output it overwrites was itself requested.
                modules[name] = nn.ReLU(inplace=LAYERS[index - 1] not in wanted)
            elif pooling == "max":
                modules[name] = nn.MaxPool2d(2, 2)
            else:
                modules[name] = nn.AvgPool2d(2, 2)
        self.net = nn.ModuleDict(modules)
        # On the weights' device: callers hand over weights already moved to a GPU and
        # never call .to() (a CPU mean broke every CUDA run).
        device = state_dict["conv1_1.weight"].device
        mean = torch.tensor(MEAN_RGB, device=device).view(1, 3, 1, 1)
        self.register_buffer("mean", mean, persistent=False)
        self.requires_grad_(False)
        self.eval()

    def forward(self, image: Tensor) -> dict[str, Tensor]:
        x = image * 255.0 - self.mean
        reduced = self.dtype != torch.float32
        if reduced:
            x = x.contiguous(memory_format=torch.channels_last)
        out: dict[str, Tensor] = {}
        with torch.autocast(x.device.type, dtype=self.dtype, enabled=reduced):
            for name, module in self.net.items():
                x = module(x)
                if name in self.layers:
                    out[name] = x
        return {name: value.float() for name, value in out.items()} if reduced else out


def _conv_shape(state_dict: Mapping[str, Tensor], name: str) -> tuple[int, int]:
    weight = state_dict[f"{name}.weight"]
    return int(weight.shape[1]), int(weight.shape[0])
