"""`styleshift serve` over real HTTP: the upload limit, server paths, the temporary folder
after Ctrl-C, and no connection to anything but loopback (an audit hook on connect)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from optional import need

need("gradio")
pytestmark = pytest.mark.slow

# Runs the CLI with an audit hook that writes every socket connection's address to a file.
LAUNCHER = """
import sys
log = open(sys.argv[1], "a", buffering=1)
def hook(event, args):
    if event == "socket.connect":
        log.write(repr(args[1]) + "\\n")
sys.addaudithook(hook)
from styleshift.cli import main
sys.exit(main(sys.argv[2:]))
"""


@dataclass
class Served:
    url: str
    proc: subprocess.Popen[str]
    tmp: Path
    connections: Path


@pytest.fixture(scope="module")
def served(
    weights_file: Path, tmp_path_factory: pytest.TempPathFactory, launch_server: Any
) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("server-tmp")
    connections = tmp_path_factory.mktemp("audit") / "connections.txt"
    proc, url = launch_server(
        ["-c", LAUNCHER, str(connections), "serve", "--device", "cpu", "--max-upload-mb", "1"],
        {"STYLESHIFT_HOME": str(weights_file.parent), "TMPDIR": str(tmp)},
    )
    served = Served(url, proc, tmp, connections)
    try:
        yield served
    finally:
        if proc.poll() is None:
            proc.kill()


def _request(url: str, data: bytes | None = None, headers: dict[str, str] | None = None):
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _multipart(name: str, payload: bytes) -> tuple[bytes, dict[str, str]]:
    boundary = uuid.uuid4().hex
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"'
            f"\r\nContent-Type: image/png\r\n\r\n").encode() + payload + (
            f"\r\n--{boundary}--\r\n").encode()  # fmt: skip
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def test_an_upload_over_the_limit_is_refused_and_a_small_one_taken(served: Served) -> None:
    body, headers = _multipart("big.png", b"\x89PNG" + os.urandom(1_300_000))
    status, answer = _request(f"{served.url}/gradio_api/upload", body, headers)
    assert status == 413, (status, answer[:200])
    assert b"size" in answer.lower()
    body, headers = _multipart("small.png", b"\x89PNG" + os.urandom(1000))
    status, answer = _request(f"{served.url}/gradio_api/upload", body, headers)
    assert status == 200, answer[:200]
    (stored,) = json.loads(answer)
    assert Path(stored).is_relative_to(served.tmp)  # inside the server's private folder


@pytest.mark.parametrize(
    "path",
    ["/gradio_api/file=/etc/passwd", "/gradio_api/file=../../../../etc/passwd",
     "/file=/etc/passwd", "/gradio_api/file=%2Fetc%2Fpasswd"],
)  # fmt: skip
def test_server_paths_are_not_served(served: Served, path: str) -> None:
    status, answer = _request(served.url + path)
    assert status in (403, 404), (status, answer[:200])
    assert b"root:" not in answer


def test_ctrl_c_removes_the_temporary_folder_and_nothing_went_outside(served: Served) -> None:
    assert [p.name for p in served.tmp.iterdir() if p.name.startswith("styleshift-web-")]
    served.proc.send_signal(signal.SIGINT)
    out, _ = served.proc.communicate(timeout=60)
    assert served.proc.returncode == 0 and "stopped" in out
    assert not [p for p in served.tmp.iterdir() if p.name.startswith("styleshift-web-")]
    addresses = served.connections.read_text().splitlines() if served.connections.exists() else []
    outside = [a for a in addresses if not re.match(r"\('(127\.0\.0\.1|::1|localhost)'", a)]
    assert not outside, f"serve connected outside: {outside}"
    assert addresses, "the audit hook saw no connection at all (not even the self-check)"
