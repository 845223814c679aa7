"""Errors a user can cause and fix.

Every exception here carries a one-line message that says what was wrong and what to
do; the CLI prints it without a traceback and exits non-zero.
"""

from __future__ import annotations


def one_line(text: object) -> str:
    """Collapse a message (an OS or library error, say) onto one line."""
    return " ".join(str(text).split())


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
