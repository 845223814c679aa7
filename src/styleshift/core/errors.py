"""Errors a user can cause and fix.

Every exception here carries a one-line message that says what was wrong and what to
do; the CLI prints it without a traceback and exits non-zero.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence


def one_line(text: object) -> str:
    """Collapse a message (an OS or library error, say) onto one line."""
    return " ".join(str(text).split())


def closest(value: str, choices: Sequence[str]) -> str | None:
    """The choice a typo most likely meant, or None when none is near."""
    found = difflib.get_close_matches(value, choices, n=1)
    return found[0] if found else None


def choice_hint(value: str, choices: Sequence[str], otherwise: str | None = None) -> str:
    """ "did you mean 'X'?" for a near miss, else `otherwise` (by default the choices)."""
    near = closest(value, choices)
    if near is not None:
        return f"did you mean '{near}'?"
    return otherwise if otherwise is not None else f"use one of {', '.join(choices)}"


class StyleshiftError(Exception):
    """Base class: a problem the user can fix, with a one-line message."""


class InputError(StyleshiftError):
    """An input image or file cannot be used."""


class OptionError(StyleshiftError, ValueError):
    """An option has an invalid value."""


class OutputError(StyleshiftError):
    """The output cannot be written where or how it was asked for."""


class WeightsError(StyleshiftError):
    """The VGG-19 weights cannot be fetched, verified or loaded."""
