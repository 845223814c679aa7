"""The file layer: atomic writes, no clobbering, the mode of a new file, removal by name,
and outputs confined to their folder."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from styleshift.core.errors import OutputError
from styleshift.io.files import atomic_path, inside, remove_own, write_bytes


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_write_appears_whole_with_an_ordinary_files_mode(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        write_bytes(tmp_path / "out.mp4", b"video")
    finally:
        os.umask(old)
    assert (tmp_path / "out.mp4").read_bytes() == b"video"
    assert (tmp_path / "out.mp4").stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600
    assert _names(tmp_path) == ["out.mp4"]


def test_an_existing_file_is_replaced_only_when_asked(tmp_path: Path) -> None:
    target = tmp_path / "out.png"
    target.write_bytes(b"mine")
    target.chmod(0o640)
    with pytest.raises(OutputError, match=r"exists now .* result is in '.*out-1\.png'"):
        write_bytes(target, b"new")
    assert target.read_bytes() == b"mine" and (tmp_path / "out-1.png").read_bytes() == b"new"
    (tmp_path / "out-1.png").unlink()
    write_bytes(target, b"new", overwrite=True)
    assert target.read_bytes() == b"new"
    assert target.stat().st_mode & 0o777 == 0o640  # the replaced file's mode is kept


def test_a_file_that_appears_during_the_work_is_kept_and_so_is_the_work(tmp_path: Path) -> None:
    target = tmp_path / "out.png"
    (tmp_path / "out-1.png").write_bytes(b"an older one")
    appeared = r"'.*out\.png' exists now and was left as it is; .* in '.*out-2\.png'"
    with pytest.raises(OutputError, match=appeared), atomic_path(target) as tmp:
        tmp.write_bytes(b"the work")
        target.write_bytes(b"mine")  # another program, meanwhile
    assert target.read_bytes() == b"mine" and (tmp_path / "out-2.png").read_bytes() == b"the work"
    assert _names(tmp_path) == ["out-1.png", "out-2.png", "out.png"]


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), "no space left on device while"),
        (KeyboardInterrupt(), None),
    ],
)
def test_every_failure_leaves_no_temporary_file(
    tmp_path: Path, error: BaseException, message: str | None
) -> None:
    (tmp_path / "out.bin").write_bytes(b"mine")
    expected = OutputError if message else KeyboardInterrupt
    with (
        pytest.raises(expected, match=message),
        atomic_path(tmp_path / "out.bin", overwrite=True) as tmp,
    ):
        tmp.write_bytes(b"half")
        raise error
    assert _names(tmp_path) == ["out.bin"] and (tmp_path / "out.bin").read_bytes() == b"mine"


def test_removal_takes_only_styleshifts_own_files(tmp_path: Path) -> None:
    folder = tmp_path / "work"
    folder.mkdir()
    for name in ("frame_000001.png", "manifest.json", ".styleshift-x.png", "thesis.txt"):
        (folder / name).write_text(name)
    (folder / "photos").mkdir()
    left = remove_own(folder, [r"frame_\d{6}\.png", r"manifest\.json"])
    assert [p.name for p in left] == ["photos", "thesis.txt"] == _names(folder)
    (folder / "thesis.txt").unlink()
    (folder / "photos").rmdir()
    (folder / "frame_000002.png").write_text("")
    assert remove_own(folder, [r"frame_\d{6}\.png"]) == [] and not folder.exists()


def test_outputs_are_confined_to_their_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    (out / "away").symlink_to(tmp_path, target_is_directory=True)
    assert inside(out, "sub/a.png") == out / "sub" / "a.png"
    assert inside(out, "new/deeper/a.png") == out / "new" / "deeper" / "a.png"
    for bad in ("../a.png", "sub/../../a.png", str(tmp_path / "a.png"), ""):
        with pytest.raises(OutputError, match="relative path inside the output folder"):
            inside(out, bad)
    with pytest.raises(OutputError, match="through a symbolic link"):
        inside(out, "away/a.png")
