"""Command-line arguments: one-line parse errors, and flags derived from settings dataclasses.

Each flag of `Options` (and of `TrainSettings`) has the field's name, type, choices, default
and help; its value is read by `settings_text`, as the web form's and manifests' are.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from ..core.errors import closest
from ..core.options import Options
from ..core.settings_text import check_choice, choices_of, converter, field_type, format_value

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors that suggest the option that was probably meant."""

    def error(self, message: str) -> NoReturn:
        if message.startswith("unrecognized arguments:"):
            # Subcommands leave unknown options to the top parser, so look in them all.
            known = sorted(_long_options(self))
            for arg in message.split(":", 1)[1].split():
                near = closest(arg.split("=")[0], known)
                if near:
                    message += f" (did you mean {near}?)"
                    break
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message}\n")


def _long_options(parser: argparse.ArgumentParser) -> set[str]:
    found: set[str] = set()
    for action in parser._actions:
        found.update(s for s in action.option_strings if s.startswith("--"))
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found |= _long_options(sub)
    return found


def _argument_type(convert: Callable[[str], Any], name: str) -> Callable[[str], Any]:
    """argparse's form of a converter: its ValueError becomes a usage error."""

    def parse(text: str) -> Any:
        try:
            return convert(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    parse.__name__ = name  # argparse names the type in some messages
    return parse


def choice(choices: Sequence[str]) -> Callable[[str], str]:
    return _argument_type(lambda text: check_choice(text, choices), "choice")


def list_of(kind: Callable[[str], Any]) -> Callable[[str], tuple[Any, ...]]:
    def convert(text: str) -> tuple[Any, ...]:
        return tuple(kind(part.strip()) for part in text.split(",") if part.strip())

    return _argument_type(convert, "list")


_GROUPS = {
    "common": "options of every method",
    "gatys": "optimisation (method gatys: presets fast, balanced, high)",
    "feedforward": "feed-forward (methods adain, wct, efdm: preset instant)",
}


def add_option_arguments(parser: argparse.ArgumentParser, exclude: Sequence[str] = ()) -> None:
    """One flag per field of Options (but those in `exclude`), grouped by the method each
    belongs to."""
    groups = {key: parser.add_argument_group(title) for key, title in _GROUPS.items()}
    add_settings_arguments(groups, Options, lambda f: str(f.metadata["method"]), exclude)


def add_settings_arguments(
    groups: dict[str, argparse._ArgumentGroup],
    cls: Any,
    group_of: Callable[[dataclasses.Field[Any]], str],
    exclude: Sequence[str] = (),
) -> None:
    for f in dataclasses.fields(cls):
        if f.name in exclude:
            continue
        flag = "--" + f.name.replace("_", "-")
        help_text = f.metadata["help"]
        if f.default is not None:
            help_text += f" (default: {format_value(f.default)})"
        kwargs: dict[str, Any] = {
            "dest": f.name,
            "default": f.default,
            "help": help_text.replace("%", "%%"),  # argparse %-formats help
        }
        kind = field_type(cls, f.name)
        if kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            choices = choices_of(cls, f.name)
            if choices:
                metavar = "{" + ",".join(choices) + "}"
            else:
                metavar = "LIST" if typing.get_origin(kind) is tuple else kind.__name__.upper()
            kwargs.update(type=_argument_type(converter(cls, f.name), f.name), metavar=metavar)
        groups[group_of(f)].add_argument(flag, **kwargs)


def options_from_args(args: argparse.Namespace) -> Options:
    return Options(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Options)})
