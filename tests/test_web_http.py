"""`styleshift serve` over real HTTP: the upload limit, server paths (in a URL and in a job's
payload), a load of concurrent visitors, the temporary folder after Ctrl-C, and no
connection to anything but loopback (an audit hook on connect)."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from optional import need

need("gradio")
pytestmark = pytest.mark.slow
MAX_QUEUE = 2

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
        [
            "-c",
            LAUNCHER,
            str(connections),
            "serve",
            "--device",
            "cpu",
            "--max-upload-mb",
            "1",
            "--max-queue",
            str(MAX_QUEUE),
        ],
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


def _post_json(url: str, body: dict[str, Any]) -> tuple[int, Any]:
    status, answer = _request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    return status, json.loads(answer)


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


def _upload(url: str, image: Image.Image, name: str) -> dict[str, Any]:
    data = io.BytesIO()
    image.save(data, "PNG")
    status, answer = _request(f"{url}/gradio_api/upload", *_multipart(name, data.getvalue()))
    assert status == 200, answer[:200]
    (path,) = json.loads(answer)
    return _file(path, name)


def _file(path: str, name: str) -> dict[str, Any]:
    return {"path": path, "orig_name": name, "meta": {"_type": "gradio.FileData"}}


class Page:
    """The page's /stylise endpoint as a client calls it: its fields by label, each at the
    page's default, and its index for /cancel."""

    def __init__(self, url: str) -> None:
        self.url = url
        status, answer = _request(f"{url}/gradio_api/info")
        assert status == 200
        parameters = json.loads(answer)["named_endpoints"]["/stylise"]["parameters"]
        self.labels = [p["label"] for p in parameters]
        self.defaults = {p["label"]: p.get("parameter_default") for p in parameters}
        _, config = _request(f"{url}/config")
        (self.fn_index,) = [d["id"] for d in json.loads(config)["dependencies"]
                            if d.get("api_name") == "stylise"]  # fmt: skip

    def submit(self, session: str, **fields: Any) -> tuple[int, str]:
        """Queues a job: (200, its event id), or (the HTTP status, the refusal)."""
        values = self.defaults | {label.lower(): v for label, v in fields.items()}
        data = [values.get(label.lower(), values.get(label)) for label in self.labels]
        status, answer = _post_json(
            f"{self.url}/gradio_api/call/stylise", {"data": data, "session_hash": session}
        )
        return status, answer["event_id"] if status == 200 else str(answer)

    def events(
        self, event: str, cancel_when: Callable[[str], bool] | None = None, session: str = ""
    ) -> list[Any]:
        """The job's stream of (event, data) until it ends; with `cancel_when`, the job is
        cancelled at the first status it is true of."""
        seen: list[Any] = []
        request = urllib.request.Request(f"{self.url}/gradio_api/call/stylise/{event}")
        with urllib.request.urlopen(request, timeout=120) as stream:
            name = ""
            for raw in stream:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    data = json.loads(line[6:])
                    seen.append((name, data))
                    status = data[0] if isinstance(data, list) and data else ""
                    if cancel_when and isinstance(status, str) and cancel_when(status):
                        cancel_when = None
                        _post_json(f"{self.url}/gradio_api/cancel",
                                   {"session_hash": session, "fn_index": self.fn_index,
                                    "event_id": event})  # fmt: skip
        return seen


def _small(path: Path, side: int = 160) -> Image.Image:
    image = Image.open(path).convert("RGB")
    image.thumbnail((side, side))
    return image


@pytest.mark.parametrize("where", ["/etc/passwd", "content/tubingen.jpg"])
def test_a_server_path_in_a_jobs_payload_is_refused(
    served: Served, images: Path, where: str
) -> None:
    page = Page(served.url)
    painting = _upload(served.url, _small(images / "style" / "vangogh_starry_night.jpg"), "p.png")
    path = where if where.startswith("/") else str(images / where)
    before = _files(served.tmp)
    status, event = page.submit(
        uuid.uuid4().hex, **{"Photo (content)": _file(path, "x.jpg"), "Style 1": painting,
                             "Preset": "instant", "Size (long side, pixels)": 64}
    )  # fmt: skip
    outcome = page.events(event) if status == 200 else [("refused", event)]
    assert outcome[-1][0] in ("error", "refused"), outcome
    assert not [e for e, _ in outcome if e == "complete"]
    assert "root:" not in json.dumps(outcome)
    new = _files(served.tmp) - before
    assert not [p for p in new if p.suffix == ".png" and "results" in p.parts]


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def _rss(pid: int) -> int:
    found = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    assert found
    return int(found.group(1)) * 1024


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


VISITORS = 6


def test_concurrent_visitors_are_queued_served_and_cancelled(served: Served, images: Path) -> None:
    """Each round: one visitor's long job holds the worker and is cancelled once it is
    under way; meanwhile six visitors upload and ask for instant pictures at once. The
    queue holds MAX_QUEUE and refuses the rest with 503; a refused visitor tries again.
    Every job that finishes returns a valid PNG; the cancelled job returns nothing and
    its work stops; memory after a second round is where the first left it; no
    temporary file is left behind."""
    page = Page(served.url)
    photo = _small(images / "content" / "tubingen.jpg")
    painting = _small(images / "style" / "hokusai_great_wave.jpg")

    def long_job() -> list[Any]:
        session = uuid.uuid4().hex
        status, event = page.submit(
            session, **{"Photo (content)": _upload(served.url, photo, "long.png"),
                        "Style 1": _upload(served.url, painting, "wave.png"),
                        "Preset": "balanced", "Size (long side, pixels)": 160}
        )  # fmt: skip
        assert status == 200, event
        # Cancelled once under way and every visitor has been answered once.
        return page.events(
            event, lambda status: "step" in status and everyone_asked.wait(0), session
        )

    def visitor(number: int) -> tuple[int, list[Any]]:
        fields = {"Photo (content)": _upload(served.url, photo, f"visitor{number}.png"),
                  "Style 1": _upload(served.url, painting, "wave.png"),
                  "Preset": "instant", "Size (long side, pixels)": 128}  # fmt: skip
        status, event = page.submit(uuid.uuid4().hex, **fields)
        first_answers.wait(timeout=60)
        refusals, deadline = 0, time.monotonic() + 90
        while time.monotonic() < deadline:
            if status == 200:
                return refusals, page.events(event)
            assert status == 503, (status, event)
            refusals += 1
            time.sleep(0.5)
            status, event = page.submit(uuid.uuid4().hex, **fields)
        pytest.fail(f"visitor {number} was refused for 90 s")

    everyone_asked = threading.Event()
    first_answers = threading.Barrier(VISITORS, action=everyone_asked.set)

    def one_round() -> tuple[int, int]:
        everyone_asked.clear()
        first_answers.reset()
        with ThreadPoolExecutor(VISITORS + 1) as pool:
            cancelled = pool.submit(long_job)
            time.sleep(1.5)  # the long job is running before the visitors come
            outcomes = list(pool.map(visitor, range(VISITORS)))
            long_events = cancelled.result(timeout=120)
        # It was under way, and ended with nothing to download.
        assert [d for _, d in long_events if d and "step" in str(d[0])], long_events
        assert long_events[-1] == ("complete", None), long_events[-2:]
        assert not [d for _, d in long_events if d and isinstance(d[2], list)]
        pictures = 0
        for _, events in outcomes:
            name, data = events[-1]
            assert name == "complete", events[-3:]
            image = data[1]
            status, png = _request(image["url"])
            assert status == 200
            assert Image.open(io.BytesIO(png)).size == (128, 96)
            pictures += 1
        return sum(r for r, _ in outcomes), pictures

    for round_ in range(2):
        refused, pictures = one_round()
        assert pictures == VISITORS
        # Only MAX_QUEUE of the first asks could wait behind the long job.
        assert refused >= VISITORS - MAX_QUEUE, refused
        if round_ == 0:  # the first round also loaded the decoders
            baseline = _rss(served.proc.pid)
    assert _rss(served.proc.pid) < baseline * 1.1 + 64 * 2**20
    # The cancelled job's work stopped: the server idles.
    time.sleep(1)
    start = _cpu_seconds(served.proc.pid)
    time.sleep(2)
    assert _cpu_seconds(served.proc.pid) - start < 0.5
    files = _files(served.tmp)
    assert not [p for p in files if p.name.startswith(".styleshift-")]  # no half-written file
    results = [p for p in files if p.name.endswith("-styled.png")]
    assert len(results) == 2 * VISITORS  # the cancelled jobs saved nothing


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
