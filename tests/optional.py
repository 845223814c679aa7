"""Optional dependencies of tested features: skipped where missing on a developer's
machine, a failure in CI (the CI variable set), where .ci/run installs them all, so that a
broken install cannot pass by skipping what it broke."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest


def need(module: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as e:
        if os.environ.get("CI"):
            pytest.fail(f"{module} is missing in CI ({e}); .ci/run installs it", pytrace=False)
        pytest.skip(f"needs {module}: pip install -e '.[dev]'")
