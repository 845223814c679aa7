"""The `styleshift` command as a real process: its progress bar on a terminal, and Ctrl-C
(a real SIGINT) during a run and during weight loading."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

pytestmark = pytest.mark.slow


def _env(weights_file: Path) -> dict[str, str]:
    return dict(os.environ, STYLESHIFT_HOME=str(weights_file.parent), PYTHONUNBUFFERED="1")


def _stylize(images: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "styleshift", "stylize",
            str(images / "content" / "tubingen.jpg"),
            str(images / "style" / "vangogh_starry_night.jpg"),
            "-o", str(out), *extra]  # fmt: skip


def _read_until_exit(fd: int, proc: subprocess.Popen[bytes], timeout: float) -> str:
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                data = os.read(fd, 65536)
            except OSError:  # the terminal closed with the process
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    proc.wait(timeout=30)
    return b"".join(chunks).decode(errors="replace")


def _on_a_terminal(command: list[str], weights_file: Path) -> str:
    """What `command` shows on a terminal; it must succeed."""
    leader, follower = pty.openpty()
    # 40 rows of 120 columns: a new pseudo-terminal has no size, and tqdm draws nothing
    # on a terminal zero columns wide.
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen(command, stdin=follower, stdout=follower, stderr=follower,
                            env=_env(weights_file), close_fds=True)  # fmt: skip
    os.close(follower)
    try:
        screen = _read_until_exit(leader, proc, timeout=180)
    finally:
        os.close(leader)
    assert proc.returncode == 0, screen
    return screen


def test_the_progress_bar_on_a_terminal_shows_scale_step_loss_and_eta(
    images: Path, weights_file: Path, tmp_path: Path
) -> None:
    command = _stylize(images, tmp_path / "out.png", "--preset", "fast", "--size", "96",
                       "--start-size", "64", "--iterations", "6,6")  # fmt: skip
    screen = _on_a_terminal(command, weights_file)
    assert re.search(r"about \d+:\d\d in all on this machine", screen), screen
    quiet = _on_a_terminal([*command, "--overwrite", "-q"], weights_file)
    assert quiet.strip() == "", quiet  # -q: no bar, no notes
    assert re.search(r"scale 1/2 \d+x\d+ .*\| *\d+/12 ", screen), screen
    assert re.search(r"scale 2/2 96x72 .*\| *12/12 ", screen), screen
    assert re.search(r"loss \d[\d.e+-]*, ETA (\d+:\d\d|\?)", screen), screen


def _interrupt_after(proc: subprocess.Popen[str], ready: object, timeout: float) -> str:
    """Send SIGINT once `ready()` holds; return what the process wrote to stderr."""
    deadline = time.monotonic() + timeout
    while not ready() and proc.poll() is None:  # type: ignore[operator]
        assert time.monotonic() < deadline, "the run never reached the point to interrupt"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    return err


def test_ctrl_c_after_a_saved_step_keeps_a_valid_picture_and_exits_130(
    images: Path, weights_file: Path, tmp_path: Path, sigint_default: Callable[[], None]
) -> None:
    out = tmp_path / "out.png"
    # Adam, which never stops early as L-BFGS may: the run is still going when interrupted.
    options = ["--preset", "fast", "--size", "128", "--start-size", "64", "--iterations",
               "4,2000", "--optimizer", "adam", "--save-every", "2"]  # fmt: skip
    command = _stylize(images, out, *options)
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            text=True, env=_env(weights_file),
                            preexec_fn=sigint_default)  # fmt: skip
    err = _interrupt_after(proc, lambda: any(tmp_path.glob("out_s2_*.png")), timeout=180)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    with Image.open(out) as im:
        im.load()
        assert max(im.size) == 128  # the best picture so far, at the scale it reached
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".") or p.suffix == ".tmp"]


def test_ctrl_c_while_the_weights_load_exits_130_without_a_traceback(
    images: Path, weights_file: Path, tmp_path: Path, sigint_default: Callable[[], None]
) -> None:
    out = tmp_path / "out.png"
    proc = subprocess.Popen(_stylize(images, out), stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, text=True, env=_env(weights_file),
                            preexec_fn=sigint_default)  # fmt: skip
    maps = Path(f"/proc/{proc.pid}/maps")

    def loading() -> bool:  # the weights file is mapped into the process
        try:
            return weights_file.name in maps.read_text()
        except OSError:
            return False

    err = _interrupt_after(proc, loading, timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and not out.exists()
    assert not list(tmp_path.iterdir())


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "styleshift", *args]


def test_ctrl_c_on_a_video_keeps_its_frames_and_the_same_command_resumes(
    images: Path, weights_file: Path, tmp_path: Path, sigint_default: Callable[[], None]
) -> None:
    out = tmp_path / "out.mp4"
    work = tmp_path / "frames-kept"
    command = _command("video", str(images / "video" / "big_buck_bunny_cut_10s_640x360.mp4"),
                       str(images / "style" / "picabia_udnie.jpg"), "-o", str(out), "--preset",
                       "instant", "--size", "64", "--duration", "2", "--work-dir", str(work),
                       "--precision", "float32")  # fmt: skip
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            text=True, env=_env(weights_file),
                            preexec_fn=sigint_default)  # fmt: skip
    err = _interrupt_after(proc, lambda: len(list(work.glob("frame_*.png"))) >= 3, timeout=180)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "run the same command again to resume" in err
    kept = len(list(work.glob("frame_*.png")))
    assert kept >= 3 and not out.exists()
    done = subprocess.run([*command, "--resume", "--keep-work", "--json", "-q"],
                          capture_output=True, text=True, env=_env(weights_file),
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["resumed_from"] >= kept - 1 and report["frames"] == 48
    assert len(list(work.glob("frame_*.png"))) == 48  # --keep-work kept them
    assert report["work_dir"] == str(work)


def test_ctrl_c_on_training_writes_a_checkpoint_that_the_same_command_resumes(
    images: Path, weights_file: Path, tmp_path: Path, sigint_default: Callable[[], None]
) -> None:
    model = tmp_path / "decoder.safetensors"
    command = _command("train", str(images / "content"), "-o", str(model), "--level",
                       "relu1_1", "--crop", "32", "--batch-size", "2", "--precision",
                       "float32", "-q")  # fmt: skip
    proc = subprocess.Popen([*command, "--steps", "100000"], stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, text=True, env=_env(weights_file),
                            preexec_fn=sigint_default)  # fmt: skip
    started = time.monotonic()
    # Past the start-up (weights, photos), well into the loop.
    err = _interrupt_after(proc, lambda: time.monotonic() - started > 25, timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    ckpt = torch_load(model.with_name(model.name + ".ckpt"))
    stopped = int(ckpt["step"])
    assert stopped >= 1 and model.is_file()
    done = subprocess.run([*command, "--steps", str(stopped + 2), "--resume", "--json"],
                          capture_output=True, text=True, env=_env(weights_file),
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["steps"] == stopped + 2


def torch_load(path: Path) -> dict[str, object]:
    import torch

    return dict(torch.load(path, map_location="cpu", weights_only=True))
