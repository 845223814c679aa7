"""Running several configurations on one photo and its paintings, and scoring each result.

The runs go through one `StyleTransfer` (VGG-19 loaded once); each is timed, its peak
memory sampled and its loss traced, and its picture scored by evaluate.py. report.py turns
the `Comparison` into a page.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import platform
import re
import shutil
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..core.device import fast_bfloat16_unit
from ..core.errors import OptionError, OutputError, StyleshiftError, choice_hint, one_line
from ..core.memory import PeakMemory
from ..core.metrics import Scorer
from ..core.options import FIELD_METHODS, Options, Preset, method_of, without_foreign
from ..core.results import Progress
from ..core.settings_text import field_type, format_value, parse_value
from ..core.version import __version__
from ..io.files import refuse_inputs
from ..io.image import load_image, save_image, split_alpha
from ..transfer import StyleTransfer
from .evaluate import Evaluation, evaluate_image


@dataclass(frozen=True)
class Configuration:
    label: str  # what the report calls it: "fast", "balanced style_weight=3", ...
    options: Options


def parse_sweep(text: str) -> tuple[str, list[Any]]:
    """`OPTION=V1,V2`: the option's name and its values (a list option's separated by ';')."""
    name, sep, values = text.partition("=")
    name = name.strip().lstrip("-").replace("-", "_")
    known = [f.name for f in dataclasses.fields(Options) if f.name != "preset"]
    if not sep or name not in known:
        hint = choice_hint(name, known, "see styleshift stylize --help")
        raise OptionError(f"sweep '{text}' must be OPTION=V1,V2 with a stylize option; {hint}")
    list_valued = typing.get_origin(field_type(Options, name)) is tuple
    parts = [p for p in values.split(";" if list_valued else ",") if p.strip()]
    if not parts:
        raise OptionError(f"sweep {name} has no values")
    return name, [parse_value(Options, name, part) for part in parts]


def configurations(
    presets: Sequence[Preset], sweeps: Sequence[str], base: Options
) -> list[Configuration]:
    """Every preset times every combination of the sweeps' values, over `base`; options of
    another method family are left out of a preset's runs (as stylize would refuse them)."""
    parsed = [parse_sweep(text) for text in sweeps]
    found = []
    for preset in presets:
        options = without_foreign(dataclasses.replace(base, preset=preset))
        group = "gatys" if method_of(options) == "gatys" else "feedforward"
        applies = [(n, v) for n, v in parsed if FIELD_METHODS[n] in ("common", group)]
        for combo in itertools.product(*[[(n, x) for x in v] for n, v in applies]):
            label = " ".join([preset] + [f"{n}={format_value(x)}" for n, x in combo])
            found.append(Configuration(label, dataclasses.replace(options, **dict(combo))))
    return found


@dataclass(frozen=True)
class Run:
    label: str
    painting: str  # the painting's file name in inputs/
    image: str  # the picture, relative to the report folder
    evaluation: Evaluation
    seconds: float | None = None  # None for an output made elsewhere
    peak_bytes: int | None = None
    device: str | None = None
    trace: tuple[tuple[float, float], ...] = ()  # (seconds, loss) of an optimisation
    options: dict[str, Any] | None = None  # with the preset's values filled in


@dataclass
class Comparison:
    photo: str  # relative to the report folder
    paintings: list[str]
    runs: list[Run] = field(default_factory=list)
    machine: dict[str, str] = field(default_factory=dict)
    interrupted: bool = False
    error: str | None = None  # why the runs stopped early, when a configuration could not run


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", text).strip("_") or "run"


def machine(engine: StyleTransfer) -> dict[str, str]:
    """What the report records so that its numbers can be put in context or reproduced."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "styleshift": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "system": platform.platform(),
        "cpu": f"{cpu} ({os.cpu_count()} logical cores, {torch.get_num_threads()} threads)",
        "fast bfloat16": fast_bfloat16_unit(torch.device("cpu")) or "no",
        "device": str(engine.device),
    }


def _copy_input(path: Path, folder: Path, used: set[str]) -> str:
    """Copies an input into inputs/ under a unique name and returns its relative path."""
    name = path.name
    stem, n = path.stem, 2
    while name in used:
        name, n = f"{stem}-{n}{path.suffix}", n + 1
    used.add(name)
    shutil.copyfile(path, folder / "inputs" / name)
    return f"inputs/{name}"


def prepare_folder(folder: Path, *, overwrite: bool, inputs: Sequence[object] = ()) -> None:
    """Makes the report folder, refusing one that holds any of the run's `inputs` (a
    photo already in its inputs/ would be copied onto itself)."""
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{folder} is a file; name a folder for the report")
    if folder.is_dir() and any(folder.iterdir()) and not overwrite:
        raise OutputError(f"{folder} is not empty; choose a new folder or pass --overwrite")
    refuse_inputs(folder, inputs)
    for sub in ("inputs", "results"):
        (folder / sub).mkdir(parents=True, exist_ok=True)


def remove_folder(folder: Path, comparison: Comparison) -> None:
    """Takes back a report folder that `prepare_folder` made for a comparison that ran
    nothing: the copies of its inputs, then the folders if they are empty (anything
    else put there meanwhile stays)."""
    for name in (comparison.photo, *comparison.paintings):
        (folder / name).unlink(missing_ok=True)
    for sub in (folder / "inputs", folder / "results", folder):
        try:
            sub.rmdir()
        except OSError:
            return


def compare(
    engine: StyleTransfer,
    scorer: Scorer,
    photo: Path,
    paintings: Sequence[Path],
    configurations: Sequence[Configuration],
    folder: Path,
    *,
    outputs: Sequence[Path] = (),
    on_run: Callable[[int, int, str], None] | None = None,
    callback: Callable[[Progress], None] | None = None,
) -> Comparison:
    """Runs every configuration on the photo with each painting, scores the results and
    the `outputs` made elsewhere (against every painting), and keeps the pictures in
    `folder` (made by `prepare_folder`). On Ctrl-C the finished runs are returned with
    `interrupted` set, and so they are with `error` set when a configuration cannot run
    (a size beyond the memory, a time too short on this machine): what is found only
    once a run has started. `on_run(done, total, label)` is called before each run."""
    # Loaded first, so a bad input fails with its own name and one line before any run.
    content = load_image(photo)
    pictures = [load_image(p) for p in paintings]
    used: set[str] = set()
    result = Comparison(
        photo=_copy_input(photo, folder, used),
        paintings=[_copy_input(p, folder, used) for p in paintings],
        machine=machine(engine),
    )
    styles = dict(zip(result.paintings, pictures, strict=True))
    for output in outputs:
        picture = load_image(output).convert("RGB")
        rel = f"results/{slug(output.name)}"
        shutil.copyfile(output, folder / rel)
        for painting, style in styles.items():
            evaluation = evaluate_image(scorer, picture, content, [style])
            result.runs.append(Run(output.name, Path(painting).name, rel, evaluation))
    total = len(configurations) * len(styles)
    try:
        for painting, style in styles.items():
            for configuration in configurations:
                if on_run is not None:
                    on_run(
                        len(result.runs) - len(outputs) * len(styles), total, configuration.label
                    )
                result.runs.append(
                    _run(engine, scorer, content, painting, style, configuration, folder, callback)
                )
    except KeyboardInterrupt:
        result.interrupted = True
    except StyleshiftError as e:
        result.error = one_line(e)
    return result


def _run(
    engine: StyleTransfer,
    scorer: Scorer,
    content: Any,
    painting: str,
    style: Any,
    configuration: Configuration,
    folder: Path,
    callback: Callable[[Progress], None] | None,
) -> Run:
    trace: list[tuple[float, float]] = []

    def on_step(p: Progress) -> None:
        if not p.stage:  # a feed-forward pass has stages, not losses
            trace.append((p.elapsed, p.loss))
        if callback is not None:
            callback(p)

    with PeakMemory(engine.device) as peak:
        done = engine.run(content, style, configuration.options, callback=on_step)
    rgb, alpha = split_alpha(done.image)
    rel = f"results/{Path(painting).stem}__{slug(configuration.label)}.png"
    save_image(rgb, folder / rel, overwrite=True, alpha=alpha)
    return Run(
        label=configuration.label,
        painting=Path(painting).name,
        image=rel,
        # A run with a mask is also scored inside it (its painting) and outside (the photo).
        evaluation=evaluate_image(scorer, rgb, content, [style], configuration.options.mask or ()),
        seconds=done.seconds,
        peak_bytes=peak.bytes,
        device=done.device,
        trace=tuple(trace),
        options=done.options.to_dict(),
    )
