"""styleshift: neural style transfer on VGG-19.

>>> from styleshift import stylize
>>> stylize("photo.jpg", "painting.jpg", size=512).save("out.png")
"""

from .errors import InputError, OptionError, OutputError, StyleshiftError, WeightsError
from .options import Options
from .results import ExtraTerm, Interrupted, Progress, Result, ScaleReport
from .transfer import StyleTransfer, stylize

__version__ = "0.1.0"

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
