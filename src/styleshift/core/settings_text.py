"""Settings to and from text, for every interface that takes them as text or loose values.

The CLI flags, the web form, `compare`'s sweeps and batch manifests all turn what a person
typed (or a JSON value) into a field of a settings dataclass (`Options`, `TrainSettings`)
here, so a new field reaches all of them through its type and default alone, and every
one refuses a bad value or a misspelt name with the same message.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from .errors import OptionError, choice_hint

T = TypeVar("T")

_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")
_WHAT = {int: "whole numbers", float: "numbers", str: "names"}


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    # Evaluating a class's annotations costs about a millisecond, and the parser asks for
    # every field of Options in four commands: once per class keeps `--help` instant.
    return typing.get_type_hints(cls)


def field_type(cls: type, name: str) -> Any:
    """The type of a field, without the `| None` of a field whose default is decided later."""
    kind = _hints(cls)[name]
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        rest = [a for a in typing.get_args(kind) if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return kind


def choices_of(cls: type, name: str) -> list[str] | None:
    """The values a field may take, when its type lists them."""
    kind = field_type(cls, name)
    if typing.get_origin(kind) is typing.Literal:
        return [str(c) for c in typing.get_args(kind)]
    return None


def format_value(value: Any) -> str:
    """A value as it is typed: lists comma-separated."""
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value)
    return str(value)


def check_choice(text: str, choices: Sequence[str]) -> str:
    """`text` if it is one of `choices`; else a ValueError that suggests the one meant."""
    if text in choices:
        return text
    hint = choice_hint(text, choices, "")
    raise ValueError(
        f"invalid choice '{text}' (choose from {', '.join(choices)})" + (hint and f"; {hint}")
    )


def check_names(cls: type, names: Iterable[str]) -> None:
    """Refuse a name that is not a field, suggesting the one probably meant."""
    known = [f.name for f in dataclasses.fields(cls)]
    for name in names:
        if name not in known:
            raise OptionError(f"unknown option '{name}'; {choice_hint(name, known, 'see --help')}")


def converter(cls: type, name: str) -> Callable[[Any], Any]:
    """The function that turns one value of field `name` (text, or a JSON or form value)
    into its type; it raises ValueError with a message that does not name the field."""
    kind = field_type(cls, name)
    if typing.get_origin(kind) is tuple:
        item = typing.get_args(kind)[0]

        def convert_list(value: Any) -> tuple[Any, ...]:
            parts = value if isinstance(value, (list, tuple)) else str(value).split(",")
            try:
                return tuple(_scalar(item, p) for p in parts if str(p).strip())
            except ValueError:
                raise ValueError(
                    f"'{value}' is not a valid value; give a list of {_WHAT.get(item, 'values')}"
                    " separated by ','"
                ) from None

        return convert_list

    def convert(value: Any) -> Any:
        return _scalar(kind, value)

    return convert


def parse_value(cls: type, name: str, value: Any) -> Any:
    """Field `name` from text or a loose value; blank or None means the field's default."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return _default(cls, name)
    try:
        return converter(cls, name)(value)
    except ValueError as e:
        raise OptionError(f"{name}: {e}") from None


def from_values(cls: type[T], values: Mapping[str, Any], base: T | None = None) -> T:
    """A settings object from values by field name (text or loose values), over `base`
    (or the defaults); a misspelt name gets a suggestion."""
    check_names(cls, values)
    parsed = {name: parse_value(cls, name, value) for name, value in values.items()}
    return dataclasses.replace(base if base is not None else cls(), **parsed)  # type: ignore[type-var]


def _default(cls: type, name: str) -> Any:
    return next(f.default for f in dataclasses.fields(cls) if f.name == name)


def _scalar(kind: Any, value: Any) -> Any:
    text = value.strip() if isinstance(value, str) else value
    invalid = ValueError(f"'{value}' is not a valid value")
    if typing.get_origin(kind) is typing.Literal:
        return check_choice(str(text), [str(c) for c in typing.get_args(kind)])
    if kind is bool:
        if isinstance(text, bool):
            return text
        if str(text).lower() in _TRUE + _FALSE:
            return str(text).lower() in _TRUE
        raise ValueError(f"'{value}' is not a valid value; give true or false")
    if isinstance(text, bool) and kind in (int, float):
        raise invalid  # JSON true is not a number
    if kind is int:
        try:
            number = float(text)
        except (TypeError, ValueError):
            raise ValueError(f"'{value}' is not a valid value; give a whole number") from None
        if not number.is_integer():
            raise ValueError(f"'{value}' is not a valid value; give a whole number")
        return int(number)
    if kind is float:
        try:
            return float(text)
        except (TypeError, ValueError):
            raise ValueError(f"'{value}' is not a valid value; give a number") from None
    if kind is str:
        if not isinstance(text, (str, int, float)):
            raise invalid
        return str(text)
    raise invalid
