"""Settings to and from text: one reading of a value for the CLI, the web form, compare's
sweeps and batch manifests."""

from __future__ import annotations

import dataclasses

import pytest

from styleshift import Options
from styleshift.apps.compare import parse_sweep
from styleshift.apps.web import options_from_form
from styleshift.cli import build_parser
from styleshift.cli.arguments import options_from_args
from styleshift.core.errors import OptionError
from styleshift.core.settings_text import format_value, from_values, parse_value
from styleshift.feedforward.train import TrainSettings


@pytest.mark.parametrize("cls", [Options, TrainSettings])
def test_every_default_reads_back_from_its_text(cls):
    """A field's default, written as a user would type it, parses back to itself: a new
    field needs no parsing code of its own in any interface."""
    for f in dataclasses.fields(cls):
        if f.default is not None:
            assert parse_value(cls, f.name, format_value(f.default)) == f.default, f.name


@pytest.mark.parametrize(
    ("name", "text", "value"),
    [
        ("iterations", "100,200", (100, 200)),
        ("size", "256", 256),
        ("style_weight", "0.5", 0.5),
        ("preserve_color", "luminance", "luminance"),
        ("style_layers", "relu1_1,relu2_1", ("relu1_1", "relu2_1")),
        ("init", "noise", "noise"),
    ],
)
def test_every_interface_reads_a_value_alike(name, text, value):
    flag = "--" + name.replace("_", "-")
    args = build_parser().parse_args(["stylize", "c.jpg", "s.jpg", "-o", "o.png", flag, text])
    assert getattr(options_from_args(args), name) == value
    assert getattr(options_from_form({name: text}), name) == value
    assert getattr(from_values(Options, {name: text}), name) == value  # a manifest's row
    assert parse_sweep(f"{name}={text}") == (name, [value])  # a list's items: commas


def test_manifest_values_may_be_json_values():
    options = from_values(
        Options,
        {"iterations": [50, 60], "multiscale": False, "style_blend": [1, 3], "size": 128.0},
        base=Options(preset="fast", seed=7),
    )
    assert options.iterations == (50, 60) and options.multiscale is False
    assert options.style_blend == (1.0, 3.0) and options.size == 128
    assert options.preset == "fast" and options.seed == 7  # the base's values stay


@pytest.mark.parametrize(
    ("text", "value"),
    [("true", True), ("Yes", True), ("on", True), ("1", True), ("false", False), ("OFF", False)],
)
def test_a_flag_in_words(text, value):
    assert parse_value(Options, "multiscale", text) is value


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("seed", "1.5", "seed: '1.5' is not a valid value; give a whole number"),
        ("seed", True, "seed: 'True' is not a valid value"),
        ("size", "big", "give a whole number"),
        ("style_weight", "x", "style_weight: 'x' is not a valid value; give a number"),
        ("iterations", "3,x", "give a list of whole numbers separated by ','"),
        ("multiscale", "maybe", "give true or false"),
        (
            "preset",
            "fsat",
            "invalid choice 'fsat' (choose from fast, balanced, high, instant); "
            "did you mean 'fast'?",
        ),
        ("optimizer", "sgd", "invalid choice 'sgd' (choose from lbfgs, adam)"),
        ("init", {"a": 1}, "init: '{'a': 1}' is not a valid value"),
    ],
)
def test_a_bad_value_is_refused_by_name(name, value, message):
    with pytest.raises(OptionError) as refused:
        parse_value(Options, name, value)
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_a_misspelt_name_gets_a_suggestion():
    with pytest.raises(OptionError, match="unknown option 'strenght'; did you mean 'strength'"):
        from_values(Options, {"strenght": "0.5"})


def test_blank_means_the_default():
    assert parse_value(Options, "style_weight", "  ") == Options().style_weight
    assert parse_value(Options, "size", None) is None
