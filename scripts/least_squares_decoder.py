"""A relu1_1 decoder in seconds: the least-squares inverse of VGG-19's first layer.

    .venv/bin/python scripts/least_squares_decoder.py training-data/train -o relu1_1.safetensors

The relu1_1 decoder is one 3x3 convolution from 64 channels to 3, so its best weights
solve a linear least-squares problem: each output pixel from the 3x3 patch of features
around it. `styleshift train` cannot find them: relu1_1's activations reach hundreds, and
Adam's steps, of the learning rate's size whatever the gradient, leave the decoder at
6 dB after 600 steps where this fit reaches 40 dB (docs/performance.md, the cascade).
The solution is exact up to a tiny ridge that keeps the normal equations invertible.
"""

from __future__ import annotations

import argparse
import math
import random
from pathlib import Path

import torch
import torch.nn.functional as F

from styleshift.core.vgg import VGGFeatures
from styleshift.core.weights import ensure_weights, load_state_dict
from styleshift.feedforward.decoder import Decoder, ModelInfo, save_model
from styleshift.io.image import load_image, resize_long_side, to_tensor

PICTURES = (".jpg", ".jpeg", ".png")


def pictures(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in PICTURES)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="a folder of photos (searched recursively)")
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--validation", type=Path, help="photos to report the PSNR on")
    parser.add_argument("--photos", type=int, default=40)
    parser.add_argument("--size", type=int, default=192)
    parser.add_argument("--samples", type=int, default=20000, help="pixels per photo")
    parser.add_argument("--ridge", type=float, default=1e-7, help="relative to the mean diagonal")
    args = parser.parse_args()

    encoder = VGGFeatures(load_state_dict(ensure_weights()), ("relu1_1",), "max")
    files = pictures(args.data)
    random.Random(0).shuffle(files)
    generator = torch.Generator().manual_seed(0)
    inputs = 64 * 9 + 1  # a 3x3 patch of 64 channels, and the bias
    normal = torch.zeros(inputs, inputs, dtype=torch.float64)
    target = torch.zeros(inputs, 3, dtype=torch.float64)
    for path in files[: args.photos]:
        image = to_tensor(resize_long_side(load_image(path).convert("RGB"), args.size))
        with torch.no_grad():
            features = encoder(image)["relu1_1"]
        patches = F.unfold(F.pad(features, (1, 1, 1, 1), mode="reflect"), 3)[0].double()
        patches = torch.cat([patches, torch.ones(1, patches.shape[1], dtype=torch.float64)])
        chosen = torch.randperm(patches.shape[1], generator=generator)[: args.samples]
        x = patches[:, chosen]
        normal += x @ x.T
        target += x @ image.flatten(2)[0][:, chosen].double().T
    ridge = args.ridge * normal.diagonal().mean() * torch.eye(inputs, dtype=torch.float64)
    weights = torch.linalg.solve(normal + ridge, target)

    decoder = Decoder("relu1_1")
    conv = decoder.net[1]
    assert isinstance(conv, torch.nn.Conv2d)
    conv.weight.data = weights[:-1].T.reshape(3, 64, 3, 3).float()
    assert conv.bias is not None
    conv.bias.data = weights[-1].float()
    if args.validation is not None:
        scores = []
        for path in pictures(args.validation):
            image = to_tensor(resize_long_side(load_image(path).convert("RGB"), 256))
            with torch.no_grad():
                rebuilt = decoder(encoder(image)["relu1_1"]).clamp(0, 1)
            scores.append(10 * math.log10(1 / float((rebuilt - image).pow(2).mean())))
        print(f"validation PSNR {sum(scores) / len(scores):.2f} dB on {len(scores)} photos")
    extra = {"fit": "least squares", "photos": str(min(args.photos, len(files)))}
    save_model(decoder, ModelInfo("relu1_1", "max", 0, extra), args.output)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
