"""Shared fixtures: where the shared test images live, and the real VGG-19 weights."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED = Path(os.environ.get("STYLESHIFT_SHARED", Path(__file__).resolve().parents[2] / "shared"))
IMAGES = SHARED / "images"
REFERENCE = SHARED / "reference"


@pytest.fixture(scope="session")
def images() -> Path:
    if not IMAGES.is_dir():
        pytest.fail(f"shared test images not found at {IMAGES}; set STYLESHIFT_SHARED")
    return IMAGES


@pytest.fixture(scope="session")
def reference() -> Path:
    return REFERENCE
