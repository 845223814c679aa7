"""Training a decoder to invert VGG-19 (`styleshift train`), on one process or many.

The decoder learns to rebuild a photo from its features at one level: a pixel loss plus
a feature loss at every ReLU block up to that level (the decoder's own level, as in
universal style transfer, and the shallower ones, which keep edges sharp). No paintings
are needed: any style is applied at run time by a feature transform.

With paintings (`styles`) and a style weight, part of each batch is stylised by AdaIN
before decoding and trained with Huang and Belongie's objective instead: the decoded
picture's features must keep the transformed ones (content) and its channel statistics
(or, with `style_loss="gram"`, its Gram matrices) at every level must match the
painting's (style). A decoder trained so paints more
strongly than one that only learnt to invert, since inverting alone rebuilds the deep
statistics that AdaIN set but not the shallow ones that carry strokes and colour.

Under `torchrun` each process trains on its own share of the files with
DistributedDataParallel (gloo on CPU, NCCL on CUDA); only rank 0 validates, writes
checkpoints and reports. A checkpoint holds everything needed to go on, so the same
command resumes after Ctrl-C or a kill.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.distributed as dist
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from ..core.device import Device, Precision, resolve_device, resolve_precision
from ..core.errors import InputError, OptionError, OutputError
from ..core.losses import gram_matrix, relative_mse
from ..core.results import time_left
from ..core.vgg import LAYERS, LEVELS, Level, Pooling, VGGFeatures, check_level, stride
from ..core.weights import ensure_weights, load_state_dict
from ..io.files import atomic_path, check_folder
from ..io.image import as_image, resize_long_side, to_tensor
from .data import image_files, load_photos, random_batch
from .decoder import Decoder, ModelInfo, load_model, pad_to_multiple, save_model
from .transforms import adain

CHECKPOINT_FORMAT = "styleshift-train-v1"
PREFETCH = 4  # batches cut ahead, each in its own thread


StyleMeasure = Literal["statistics", "gram"]


def _field(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class TrainSettings:
    """Every setting of a training run. `styleshift train` builds its flags from these."""

    level: Level = _field("relu4_1", "encoder level the decoder inverts")
    steps: int = _field(20000, "total optimiser steps (a resumed run goes on to this count)")
    batch_size: int = _field(8, "crops per step and process")
    crop: int = _field(128, "side of the square training crops in pixels")
    photo_size: int | None = _field(
        None, "short side the photos are scaled down to before cropping (default: 4 x crop)"
    )
    learning_rate: float = _field(2e-4, "Adam's step size at the start")
    lr_decay: float = _field(5e-5, "step size is learning_rate / (1 + lr_decay * step)")
    pixel_weight: float = _field(10.0, "weight of the pixel loss (mean squared error)")
    feature_weight: float = _field(1.0, "weight of the feature loss (relative squared error)")
    style_weight: float = _field(
        0.0,
        "weight of the style loss on crops stylised by AdaIN with the paintings of --styles "
        "(Huang and Belongie's objective); 0 trains reconstruction alone",
    )
    stylised_share: float = _field(
        0.5, "share of each batch stylised when --style-weight is set; the rest is rebuilt"
    )
    style_loss: StyleMeasure = _field(
        "statistics",
        "what the style loss matches at every level: the channels' means and spreads "
        "(statistics, as Huang and Belongie) or their Gram matrices (gram, as the "
        "optimisation and the quality scores do)",
    )
    start_from: str | None = _field(
        None,
        "a decoder to start from instead of random weights: one of the same level "
        "(fine-tuning), or of a shallower level, which becomes the new decoder's last layers",
    )
    pooling: Pooling = _field("max", "pooling in the encoder: max (as VGG-19 was trained) or avg")
    seed: int = _field(0, "random seed for the crops and the decoder's initial weights")
    checkpoint_minutes: float = _field(5.0, "minutes between checkpoints")
    validate_every: int = _field(250, "steps between validation scores")
    validation_size: int = _field(256, "long side of the validation images in pixels")
    device: Device = _field("auto", "where to train: auto picks CUDA, then MPS, then CPU")
    precision: Precision = _field(
        "auto", "bfloat16 autocast where it pays (CPUs with AMX or AVX512-BF16), else float32"
    )
    float16_model: bool = _field(True, "store the model in float16 (half the size)")

    # What a resumed run must share with its checkpoint.
    FIXED = (
        "level", "batch_size", "crop", "pooling", "pixel_weight", "feature_weight",
        "style_weight", "stylised_share", "style_loss",
    )  # fmt: skip


@dataclass(frozen=True)
class TrainProgress:
    step: int
    steps: int
    loss: float
    pixel: float
    feature: float
    style: float | None  # the style loss of the stylised crops, when there are any
    images_per_second: float
    elapsed: float
    eta: float | None
    psnr: float | None  # the latest validation score, dB
    checkpoint: bool  # a checkpoint was written at this step


@dataclass(frozen=True)
class TrainResult:
    model: Path
    checkpoint: Path
    steps: int
    seconds: float
    psnr: float | None
    history: list[dict[str, float]]
    skipped: list[str]
    images: int
    world_size: int
    digest: str  # sha256 of the decoder's weights; every process of a run ends with the same


class TrainingInterrupted(KeyboardInterrupt):
    def __init__(self, result: TrainResult) -> None:
        super().__init__("interrupted")
        self.result = result


def weights_digest(module: nn.Module) -> str:
    h = hashlib.sha256()
    for name, value in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(value.detach().cpu().float().contiguous().numpy().tobytes())
    return h.hexdigest()


def checkpoint_path(model: Path) -> Path:
    return model.with_name(model.name + ".ckpt")


def feature_layers(level: str) -> tuple[str, ...]:
    """relu1_1 .. `level`: the layers the feature loss compares."""
    return tuple(n for n in LAYERS[: LAYERS.index(level) + 1] if n.endswith("_1") and "relu" in n)


def _check(settings: TrainSettings) -> None:
    check_level(settings.level)
    if settings.pooling not in ("avg", "max"):
        raise OptionError(f"unknown pooling '{settings.pooling}'; use avg or max")
    for name in ("steps", "batch_size", "validate_every", "validation_size"):
        if getattr(settings, name) < 1:
            raise OptionError(f"{name.replace('_', ' ')} must be at least 1")
    if settings.crop < 2 * stride(settings.level):
        raise OptionError(f"crop must be at least {2 * stride(settings.level)} px")
    if settings.photo_size is not None and settings.photo_size < settings.crop:
        raise OptionError(
            f"photo size ({settings.photo_size} px) must be at least the crop ({settings.crop} px)"
        )
    for name in ("learning_rate", "checkpoint_minutes"):
        value = getattr(settings, name)
        if not math.isfinite(value) or value <= 0:
            raise OptionError(f"{name.replace('_', ' ')} must be more than zero, got {value}")
    for name in ("lr_decay", "pixel_weight", "feature_weight", "style_weight"):
        value = getattr(settings, name)
        if not math.isfinite(value) or value < 0:
            raise OptionError(f"{name.replace('_', ' ')} must be zero or more, got {value}")
    if not 0 < settings.stylised_share < 1:
        raise OptionError(f"stylised share must be between 0 and 1, got {settings.stylised_share}")
    if settings.style_weight > 0 and settings.batch_size < 2:
        raise OptionError("a style weight needs a batch size of at least 2 (some crops of each)")


def stylised_count(settings: TrainSettings) -> int:
    """How many crops of each batch are stylised: none without a style weight, else at
    least one, and at least one left to rebuild."""
    if settings.style_weight == 0:
        return 0
    share = round(settings.batch_size * settings.stylised_share)
    return min(settings.batch_size - 1, max(1, share))


def _statistics(features: Tensor) -> tuple[Tensor, Tensor]:
    """Each channel's mean and standard deviation over positions: (N, C) each."""
    flat = features.flatten(2)
    return flat.mean(2), flat.std(2)


def gram_distance(features: Tensor, style: Tensor) -> Tensor:
    """How far features' Gram matrices are from the style's, relative to the style's own
    (the optimisation's style term, for a batch of pairs)."""
    return relative_mse(gram_matrix(features), gram_matrix(style))


def style_distance(features: Tensor, style: Tensor) -> Tensor:
    """How far features' channel statistics are from the style's, relative to the
    style's own (so that every layer counts alike)."""
    mean, std = _statistics(features)
    style_mean, style_std = _statistics(style)
    scale = (style_mean.pow(2) + style_std.pow(2)).mean().clamp_min(1e-8)
    return (F.mse_loss(mean, style_mean) + F.mse_loss(std, style_std)) / scale


class Reconstruction(nn.Module):
    """Encoder (frozen VGG-19) and decoder, with the training loss."""

    def __init__(
        self, encoder: VGGFeatures, decoder: Decoder, settings: TrainSettings, dtype: torch.dtype
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.settings = settings
        self.dtype = dtype

    def decode(self, features: Tensor) -> Tensor:
        reduced = self.dtype != torch.float32
        if reduced:
            features = features.contiguous(memory_format=torch.channels_last)
        with torch.autocast(features.device.type, dtype=self.dtype, enabled=reduced):
            out: Tensor = self.decoder(features)
        return out.float()

    def forward(
        self, images: Tensor, styles: Tensor | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """The loss of a batch and its terms. With `styles` (one painting crop for each
        of the batch's first crops), those crops are stylised by AdaIN before decoding
        and scored on content and style; the others are scored on rebuilding the photo."""
        s = self.settings
        k = 0 if styles is None else styles.shape[0]
        with torch.no_grad():
            targets = self.encoder(images)
            decoded = targets[s.level]
            if styles is not None:
                style_features = self.encoder(styles)
                stylised = torch.stack(
                    [adain(c, p) for c, p in zip(decoded[:k], style_features[s.level], strict=True)]
                )
                decoded = torch.cat([stylised, decoded[k:]])
        output = self.decode(decoded)
        features = self.encoder(output)
        zero = torch.zeros((), device=images.device)
        pixel = F.mse_loss(output[k:], images[k:])
        rebuilt = [relative_mse(features[n][k:], t[k:]) for n, t in targets.items()]
        feature = sum(rebuilt, zero) / len(rebuilt)
        terms = {"pixel": pixel, "feature": feature}
        loss = s.pixel_weight * pixel + s.feature_weight * feature
        if styles is not None:
            terms["content"] = relative_mse(features[s.level][:k], decoded[:k])
            distance = gram_distance if s.style_loss == "gram" else style_distance
            terms["style"] = sum(
                (distance(features[n][:k], style_features[n]) for n in targets), zero
            ) / len(targets)
            loss = loss + s.feature_weight * terms["content"] + s.style_weight * terms["style"]
        return loss, {name: value.detach() for name, value in terms.items()}


@torch.no_grad()
def psnr(model: Reconstruction, images: Sequence[Tensor]) -> float:
    """Mean reconstruction PSNR in dB over images (1, 3, H, W) in 0..1."""
    scores = []
    multiple = stride(model.settings.level)
    for image in images:
        h, w = image.shape[-2:]
        padded = pad_to_multiple(image, multiple)
        output = model.decode(model.encoder(padded)[model.settings.level])[..., :h, :w]
        mse = F.mse_loss(output.clamp(0, 1), image).item()
        scores.append(10 * math.log10(1 / max(mse, 1e-10)))
    return sum(scores) / len(scores)


def _distributed() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    if world > 1:
        return dist.get_rank(), world
    return 0, 1


def _step_generator(seed: int, rank: int, step: int) -> torch.Generator:
    # Seeded by (seed, rank, step): a resumed run draws the same crops it would have
    # drawn, with no generator state to save.
    return torch.Generator().manual_seed(((seed * 1_000_003 + rank) * 1_000_003 + step) % 2**63)


def train(
    data: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    settings: TrainSettings | None = None,
    *,
    validation: Sequence[str | os.PathLike[str]] = (),
    styles: Sequence[str | os.PathLike[str]] = (),
    resume: bool | None = None,
    callback: Callable[[TrainProgress], None] | None = None,
) -> TrainResult:
    """Train a decoder on the images in `data`; write it to `output` (safetensors).

    `styles` are the paintings that a style weight stylises crops with.

    A checkpoint `output`.ckpt is written every few minutes and at the end. With `resume`
    None, an existing compatible checkpoint is continued; True insists on one; False
    refuses to start over an existing one (remove it, or resume).
    """
    s = settings or TrainSettings()
    _check(s)
    if s.style_weight > 0 and not styles:
        raise OptionError("a style weight needs paintings to stylise with; give --styles DIR")
    if styles and s.style_weight == 0:
        raise OptionError("--styles is used only with a style weight; give --style-weight")
    model_path = Path(output)
    if model_path.suffix != ".safetensors":
        raise OptionError(f"the model file must end in .safetensors, got '{model_path.name}'")
    rank, world = _distributed()
    try:
        state = _shared_checkpoint(model_path, s, resume, rank, world)
        trainer = _Trainer(s, data, validation, styles, model_path, state, rank, world)
        return trainer.run(callback)
    finally:
        if world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _shared_checkpoint(
    model_path: Path, s: TrainSettings, resume: bool | None, rank: int, world: int
) -> Any:
    """Rank 0 alone reads the checkpoint and hands it (or its error) to the others, so
    machines without shared storage resume from the same state."""
    loaded: list[Any] = [None]
    if rank == 0:
        try:
            # Rank 0 writes the model: a missing folder must stop the run now, not at its
            # first checkpoint minutes later (or, for a short run, after all its work).
            check_folder(model_path)
            state = _load_checkpoint(checkpoint_path(model_path), s, resume)
            if state is None and model_path.exists():
                # Not this run's to continue: a model of the user's (or the one
                # --start-from names) would be replaced at the first checkpoint.
                raise InputError(
                    f"'{model_path}' exists and has no checkpoint to resume; choose another name"
                )
            loaded[0] = ("ok", state)
        except (InputError, OutputError) as e:
            loaded[0] = ("error", str(e))
    if world > 1:
        dist.broadcast_object_list(loaded, src=0)  # our own rank 0's objects
    if loaded[0][0] == "error":
        raise InputError(loaded[0][1])
    return loaded[0][1]


class _Trainer:
    """The state of one training run; split out so the loop stays readable."""

    def __init__(
        self,
        s: TrainSettings,
        data: Sequence[str | os.PathLike[str]],
        validation: Sequence[str | os.PathLike[str]],
        styles: Sequence[str | os.PathLike[str]],
        model_path: Path,
        state: Any,
        rank: int,
        world: int,
    ) -> None:
        self.s, self.model_path, self.rank, self.world = s, model_path, rank, world
        self.device = resolve_device(s.device)
        if world > 1 and self.device.type == "cuda":
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(self.device)
        if self.device.type == "cuda":
            # Every step has the same shapes, so cuDNN's search for the fastest kernels pays.
            torch.backends.cudnn.benchmark = True
        precision = resolve_precision(s.precision, self.device)
        dtype = torch.bfloat16 if precision == "bfloat16" else torch.float32

        files = image_files(data)
        if not files:
            raise InputError(f"no images found in {', '.join(str(d) for d in data)}")
        short_side = s.photo_size or s.crop * 4
        self.photos = load_photos(files[rank::world], short_side=short_side, min_side=s.crop)
        if not self.photos.images:
            raise InputError(
                f"none of the {len(files)} files could be used (unreadable, or smaller than "
                f"{s.crop} px); {self.photos.skipped[0] if self.photos.skipped else ''}"
            )
        self.paintings = None
        if s.style_weight > 0:
            # Every process draws from all of them: a few paintings are not worth sharding.
            self.paintings = load_photos(image_files(styles), short_side, min_side=s.crop)
            if not self.paintings.images:
                raise InputError(
                    f"no usable paintings in {', '.join(str(d) for d in styles)}; give "
                    f"folders of images at least {s.crop} px on their short side"
                )
        self.held_out = [
            to_tensor(resize_long_side(im, s.validation_size)).to(self.device)
            for im in _validation_images(validation)
        ]

        torch.manual_seed(s.seed)  # the decoder's initial weights, the same on every rank
        encoder = VGGFeatures(
            {k: v.to(self.device) for k, v in load_state_dict(ensure_weights()).items()},
            feature_layers(s.level),
            s.pooling,
            dtype,
        ).to(self.device)
        self.decoder = Decoder(s.level).to(self.device)
        if s.start_from is not None and state is None:
            self.decoder.load_state_dict(_start_weights(Path(s.start_from), s, self.decoder))
        if dtype != torch.float32:
            self.decoder = self.decoder.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.model = Reconstruction(encoder, self.decoder, s, dtype)
        self.optimiser = torch.optim.Adam(self.decoder.parameters(), lr=s.learning_rate)
        self.step = 0
        self.history: list[dict[str, float]] = []
        self.elapsed_before = 0.0
        if state is not None:
            self.decoder.load_state_dict(state["decoder"])
            self.optimiser.load_state_dict(state["optimiser"])
            self.step = int(state["step"])
            self.history = list(state["history"])
            self.elapsed_before = float(state["seconds"])
        if world > 1:
            # Averages the gradients; the plain decoder is what is saved.
            self.model.decoder = nn.parallel.DistributedDataParallel(self.decoder)  # type: ignore[assignment]
        self.psnr = self.history[-1].get("psnr") if self.history else None
        self.cutter = ThreadPoolExecutor(PREFETCH, thread_name_prefix="styleshift-crops")
        self.pending: dict[int, Future[tuple[Tensor, Tensor | None]]] = {}
        self.start = time.perf_counter()
        self.last_checkpoint = self.start

    def seconds(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.start

    def result(self) -> TrainResult:
        return TrainResult(
            self.model_path,
            checkpoint_path(self.model_path),
            self.step,
            self.seconds(),
            self.psnr,
            self.history,
            self.photos.skipped,
            len(self.photos),
            self.world,
            weights_digest(self.decoder),
        )

    def save(self) -> None:
        s = self.s
        if self.rank == 0:
            extra = {
                "psnr": f"{self.psnr:.2f}" if self.psnr else "",
                "seconds": f"{self.seconds():.0f}",
            }
            info = ModelInfo(s.level, s.pooling, self.step, extra)
            # The checkpoint first: a model file whose checkpoint is missing is not a
            # run's to resume (see `train`), so a kill between the two must not leave one.
            _save_checkpoint(
                checkpoint_path(self.model_path), s, self.decoder, self.optimiser, self.step,
                self.history, self.seconds(),
            )  # fmt: skip
            save_model(self.decoder, info, self.model_path, half=s.float16_model)
        self.last_checkpoint = time.perf_counter()

    def batch(self, step: int) -> tuple[Tensor, Tensor | None]:
        """The crops of `step` (and the painting crops for its stylised share); those of
        the next few steps are cut meanwhile in threads. On a GPU, cutting crops in the
        training loop took several times longer than the step itself (18 steps/s of 16
        crops of 256 px on an H200, against ~100 for the compute alone)."""
        for ahead in range(step, min(step + PREFETCH + 1, self.s.steps)):
            if ahead not in self.pending:
                self.pending[ahead] = self.cutter.submit(self._cut, ahead)
        return self.pending.pop(step).result()

    def _cut(self, step: int) -> tuple[Tensor, Tensor | None]:
        s = self.s
        generator = _step_generator(s.seed, self.rank, step)
        photos = random_batch(self.photos, s.batch_size, s.crop, generator)
        if self.paintings is None:
            return photos, None
        return photos, random_batch(self.paintings, stylised_count(s), s.crop, generator)

    def train_step(self) -> tuple[dict[str, float], float]:
        """One optimiser step; its record and the images per second it ran at."""
        s = self.s
        for group in self.optimiser.param_groups:
            group["lr"] = s.learning_rate / (1 + s.lr_decay * self.step)
        photos, paintings = self.batch(self.step)
        t0 = time.perf_counter()
        if paintings is not None:
            paintings = paintings.to(self.device)
        loss, terms = self.model(photos.to(self.device), paintings)
        self.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        self.optimiser.step()
        self.step += 1
        rate = s.batch_size * self.world / max(time.perf_counter() - t0, 1e-9)
        record = {
            "step": self.step,
            "loss": float(loss.detach()),
            **{name: float(value) for name, value in terms.items()},
        }
        validate = self.step % s.validate_every == 0 or self.step == s.steps
        if self.rank == 0 and self.held_out and validate:
            self.psnr = record["psnr"] = psnr(self.model, self.held_out)
        self.history.append(record)
        return record, rate

    def checkpoint_due(self) -> bool:
        due = time.perf_counter() - self.last_checkpoint > self.s.checkpoint_minutes * 60
        if self.world > 1:  # rank 0's clock decides, so every rank saves at the same step
            flag = torch.tensor([1.0 if due else 0.0], device=self.device)
            dist.broadcast(flag, 0)
            due = bool(flag.item())
        return due or self.step == self.s.steps

    def run(self, callback: Callable[[TrainProgress], None] | None) -> TrainResult:
        s = self.s
        first_step = self.step
        previous_term = _stop_on_sigterm()
        try:
            while self.step < s.steps:
                record, rate = self.train_step()
                saving = self.checkpoint_due()
                if saving:
                    self.save()
                if callback is not None and self.rank == 0:
                    done = self.step - first_step
                    spent = time.perf_counter() - self.start
                    callback(
                        TrainProgress(
                            step=self.step,
                            steps=s.steps,
                            loss=record["loss"],
                            pixel=record["pixel"],
                            feature=record["feature"],
                            style=record.get("style"),
                            images_per_second=rate,
                            elapsed=self.seconds(),
                            # From the second step on: the first pays for set-up.
                            eta=time_left(spent, done, s.steps - self.step) if done >= 2 else None,
                            psnr=self.psnr,
                            checkpoint=saving,
                        )
                    )
            if self.step == first_step:  # already trained this far: refresh the model file
                self.save()
        except KeyboardInterrupt:
            with contextlib.suppress(KeyboardInterrupt):
                self.save()
            raise TrainingInterrupted(self.result()) from None
        finally:
            self.cutter.shutdown(cancel_futures=True)
            if previous_term is not None:
                signal.signal(signal.SIGTERM, previous_term)
        return self.result()


def _start_weights(path: Path, s: TrainSettings, decoder: Decoder) -> dict[str, Tensor]:
    """The weights to start `decoder` from: those of a decoder of the run's level, or of a
    shallower one as its last layers (a decoder's layers below a level are the same as
    that level's decoder), the deeper layers keeping their initial weights."""
    if not path.is_file():
        raise InputError(f"decoder '{path}' to start from not found; check --start-from")
    start, info = load_model(path)
    shallower = LEVELS.index(info.level) <= LEVELS.index(s.level)
    if info.pooling != s.pooling or not shallower:
        raise InputError(
            f"'{path}' is a {info.level} decoder for {info.pooling} pooling; this run trains "
            f"{s.level} with {s.pooling} pooling: give a decoder of that level or a "
            "shallower one, for that pooling, or change --level"
        )
    state = dict(decoder.state_dict())
    offset = len(decoder.net) - len(start.net)
    for name, value in start.state_dict().items():
        _, index, kind = name.split(".")
        state[f"net.{int(index) + offset}.{kind}"] = value.float()
    return state


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _stop_on_sigterm() -> Any:
    """A plain `kill` (and a scheduler's stop) saves a checkpoint like Ctrl-C does; only
    the main thread can take signals."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _interrupt)


def _validation_images(sources: Sequence[str | os.PathLike[str]]) -> list[Image.Image]:
    return [as_image(p, what="validation image").convert("RGB") for p in image_files(sources)]


def _save_checkpoint(
    path: Path,
    settings: TrainSettings,
    decoder: Decoder,
    optimiser: torch.optim.Optimizer,
    step: int,
    history: list[dict[str, float]],
    seconds: float,
) -> None:
    with atomic_path(path, overwrite=True) as tmp:
        torch.save(
            {
                "format": CHECKPOINT_FORMAT,
                "settings": asdict(settings),
                "decoder": decoder.state_dict(),
                "optimiser": optimiser.state_dict(),
                "step": step,
                "history": history,
                "seconds": seconds,
            },
            tmp,
        )


def _load_checkpoint(path: Path, settings: TrainSettings, resume: bool | None) -> Any:
    if not path.exists():
        if resume:
            raise InputError(f"no checkpoint '{path}' to resume; run without --resume to start")
        return None
    if resume is False:
        raise InputError(
            f"a checkpoint '{path}' exists; pass --resume to continue it, or remove it"
        )
    try:
        # weights_only: a checkpoint is tensors, numbers and strings; nothing to unpickle.
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several kinds for a damaged file
        raise InputError(
            f"cannot read checkpoint '{path}' ({type(e).__name__}); remove it"
        ) from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise InputError(f"'{path}' is not a styleshift training checkpoint; remove it")
    saved = state["settings"]
    defaults = TrainSettings()
    for name in TrainSettings.FIXED:
        # A checkpoint from before a setting existed was trained at its default.
        if saved.get(name, getattr(defaults, name)) != getattr(settings, name):
            raise InputError(
                f"checkpoint '{path}' was trained with {name}={saved.get(name)!r}, not "
                f"{getattr(settings, name)!r}; use the same value or another output name"
            )
    return state
