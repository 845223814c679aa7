"""styleshift: neural style transfer on VGG-19.

>>> from styleshift import stylize
>>> stylize("photo.jpg", "painting.jpg", size=512).save("out.png")
"""

from .core.errors import InputError, OptionError, OutputError, StyleshiftError, WeightsError
from .core.options import Options
from .core.results import ExtraTerm, Interrupted, Progress, Result, ScaleReport
from .core.version import __version__
from .transfer import StyleTransfer, stylize

__all__ = [
    "ExtraTerm",
    "InputError",
    "Interrupted",
    "OptionError",
    "Options",
    "OutputError",
    "Progress",
    "Result",
    "ScaleReport",
    "StyleTransfer",
    "StyleshiftError",
    "WeightsError",
    "__version__",
    "stylize",
]
