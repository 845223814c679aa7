"""The README's defaults are the code's: each default it states is read from the README
and compared with what the command and the library do, so neither can drift alone."""

from __future__ import annotations

import argparse
import dataclasses
import re
from pathlib import Path

import pytest
import torch

from optional import need
from styleshift.cli import build_parser
from styleshift.core.options import MEMORY_FRACTION, Options, resolve_options
from styleshift.gatys import tiles

README = (Path(__file__).parents[1] / "README.md").read_text()


def _defaults() -> dict[str, set[object]]:
    """Every flag of every command (and subcommand) with the defaults it has there."""
    found: dict[str, set[object]] = {}

    def walk(parser: argparse.ArgumentParser) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    walk(sub)
            for flag in action.option_strings:
                default = action.default
                found.setdefault(flag, set()).add(
                    tuple(default) if isinstance(default, list) else default
                )

    walk(build_parser())
    # The video command's flags default to None, meaning VideoSettings' values.
    for f in dataclasses.fields(need("styleshift.apps.video").VideoSettings):
        found.setdefault("--" + f.name.replace("_", "-"), set()).add(f.default)
    return found


def _same(text: str, default: object) -> bool:
    if isinstance(default, tuple):
        return text == ",".join(str(v) for v in default)
    if isinstance(default, bool) or not isinstance(default, (int, float)):
        return text == str(default)
    try:
        return float(text) == float(default)
    except ValueError:
        return False


# "`--blend` (0.7)", "`--max-size` (1024 px)", "`--cleanup-after` seconds (3600)",
# "`--max-pixels` (50 million)", "`--concurrency K` of them at a time (default 1)"
IN_PROSE = re.compile(
    r"`(--[a-z][a-z-]*)[^`]*`(?: [a-z]+| of them at a time)? "
    r"\((?:default:? )?([0-9][0-9.]*)( million)?(?: px| s)?\)"
)
# A row of the options table: | `--flag ...` | what it does | `default` |
IN_TABLE = re.compile(r"^\| `(--[a-z][a-z-]*)[^|]*\|.*\| `?([\w.,]+)`? \|$", re.M)


def _stated() -> list[tuple[str, str]]:
    found = []
    for flag, number, million in IN_PROSE.findall(README):
        found.append((flag, str(float(number) * 1e6) if million else number))
    for flag, value in IN_TABLE.findall(README):
        if re.fullmatch(r"[0-9.]+", value) or f"`{value}` |" in README:
            found.append((flag, value))
    return found


def test_the_readme_states_defaults_worth_checking():
    flags = {flag for flag, _ in _stated()}
    assert len(flags) >= 20, sorted(flags)  # the table and the video and web sections


@pytest.mark.parametrize(("flag", "value"), _stated(), ids=lambda v: str(v))
def test_each_default_the_readme_states_is_the_commands(flag, value):
    defaults = _defaults()
    assert flag in defaults, f"the README names {flag}, which no command has"
    assert any(_same(value, d) for d in defaults[flag]), (
        f"README says {flag} defaults to {value}; the commands have {defaults[flag]}"
    )


def test_the_preset_sizes_and_content_weights_are_the_readmes():
    sizes = re.search(r"preset: CPU (\d+) / (\d+) / (\d+), GPU (\d+) / (\d+) / (\d+)", README)
    weights = re.search(
        r"preset: CPU `fast` ([\d.]+), `balanced` ([\d.]+), `high` ([\d.]+); "
        r"GPU `fast` ([\d.]+), `balanced` ([\d.]+), `high` ([\d.]+)",
        README,
    )
    assert sizes and weights
    presets = [
        (device, preset)
        for device in (torch.device("cpu"), torch.device("cuda"))
        for preset in ("fast", "balanced", "high")
    ]
    for (device, preset), size, weight in zip(
        presets, sizes.groups(), weights.groups(), strict=True
    ):
        resolved = resolve_options(Options(preset=preset), device)  # type: ignore[arg-type]
        assert resolved.size == int(size), (device, preset)
        assert resolved.content_weight == float(weight), (device, preset)


def test_the_memory_budget_and_tile_margin_are_the_readmes():
    budget = re.search(r"default: (\d+)% of the\s+memory available .*?up to (\d+)%", README, re.S)
    assert budget
    assert int(budget.group(1)) / 100 == MEMORY_FRACTION
    gib = 2**30
    assert tiles.default_budget(64_000, 64_000, 16 * gib, MEMORY_FRACTION) == int(
        16 * gib * int(budget.group(2)) / 100
    )
    margin = re.search(r"with a (\d+) px margin of context", README)
    assert margin and int(margin.group(1)) == tiles.MARGIN


def test_the_video_frame_rate_of_a_folder_is_the_readmes(tmp_path):
    videoio = need("styleshift.io.videoio")
    stated = re.search(r"folder of numbered\s+frames \(`--fps`, default (\d+)\)", README)
    assert stated
    from PIL import Image

    for i in range(2):
        Image.new("RGB", (32, 32)).save(tmp_path / f"{i:04d}.png")
    assert videoio.probe(tmp_path).fps == int(stated.group(1))


def test_serve_flags_default_to_the_web_configs():
    web = need("styleshift.apps.web")
    args = build_parser().parse_args(["serve"])
    for f in dataclasses.fields(web.WebConfig):
        if hasattr(args, f.name):
            assert getattr(args, f.name) == f.default, f.name
