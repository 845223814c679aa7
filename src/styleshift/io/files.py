"""Writing files: the one way every writer (pictures, videos, batch outputs, decoders,
checkpoints, reports) puts a file on disk, and the only way styleshift removes any.

A file appears complete or not at all: it is written to a temporary file in the same
folder, flushed to disk, given the mode an ordinary new file would get, and moved into
place in one step; whatever goes wrong (a full disk, Ctrl-C), the temporary file is
removed. Without `overwrite` an existing file is never replaced, even one that appears
while writing. Removal is by name: only files styleshift made are ever deleted, never a
folder whole, so a user's file in a folder given to styleshift survives every flag.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..core.errors import OutputError, one_line
from ..core.version import __version__

# Filesystems without hard links (FAT, some network and FUSE mounts) fail os.link with
# one of these; the no-clobber publish then falls back to check-and-replace.
_NO_LINK_ERRNOS = frozenset(
    code
    for code in (
        getattr(errno, name, None)
        for name in ("EPERM", "ENOTSUP", "EOPNOTSUPP", "ENOSYS", "EMLINK", "EXDEV")
    )
    if code is not None
)
_NO_SPACE_ERRNOS = frozenset(
    code for code in (errno.ENOSPC, getattr(errno, "EDQUOT", None)) if code is not None
)
TEMP_PREFIX = ".styleshift-"


def quoted(name: str) -> str:
    """Quote a file name for a message, escaping anything that would break the line."""
    return f"'{name}'" if name.isprintable() else repr(name)


def exists_error(name: str) -> OutputError:
    return OutputError(
        f"{quoted(name)} already exists; choose another name or pass --overwrite to replace it"
    )


def check_folder(path: str | os.PathLike[str]) -> None:
    """Raise OutputError unless the folder that `path` goes into exists and is writable,
    so a run fails before its work rather than when it saves."""
    name = quoted(os.fspath(path))
    parent = Path(path).parent
    if not parent.exists():
        raise OutputError(
            f"cannot write {name}: folder {quoted(str(parent))} does not exist; "
            "create it first or choose another location"
        )
    if not parent.is_dir():
        raise OutputError(
            f"cannot write {name}: {quoted(str(parent))} is not a folder; choose another location"
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(
            f"cannot write {name}: folder {quoted(str(parent))} is not writable; "
            "choose another location or change its permissions"
        )


def refuse_inputs(output: str | os.PathLike[str], inputs: Sequence[object]) -> None:
    """Raise OutputError if `output` is one of a run's own input files or folders, or a
    folder holding one: writing it would destroy what the run reads, with --overwrite
    or without."""
    folder = Path(output).is_dir()
    for spec in inputs:
        if not isinstance(spec, (str, os.PathLike)):
            continue
        if _same_file(output, spec) or (folder and _within(spec, output)):
            raise OutputError(
                f"output {quoted(os.fspath(output))} is also an input of this run "
                f"({quoted(os.fspath(spec))}); writing it would replace that input: choose "
                "another output name"
            )


def _within(path: str | os.PathLike[str], folder: str | os.PathLike[str]) -> bool:
    try:
        return Path(path).resolve().is_relative_to(Path(folder).resolve())
    except (OSError, ValueError, RuntimeError):
        return False


def _same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):  # either one missing (an output not yet written)
        return False


def write_error(e: OSError, name: str) -> OutputError:
    """The one-line message for an OSError met while writing `name`."""
    if e.errno in _NO_SPACE_ERRNOS:
        return OutputError(
            f"no space left on device while writing {quoted(name)}; "
            "free some space or choose another location"
        )
    if isinstance(e, PermissionError):
        return OutputError(
            f"cannot write {quoted(name)}: permission denied; "
            "choose another location or change its permissions"
        )
    return OutputError(
        f"could not write {quoted(name)}: {one_line(e.strerror or e)}; "
        "choose another location or try again"
    )


def new_file_mode(path: Path) -> int:
    """The mode of the file being replaced, else what the umask gives a new file
    (mkstemp's own 0600 would hide a shared output from everyone else)."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        pass
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; not possible everywhere (Windows), so best effort.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_file(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(tmp: str, out: Path, *, overwrite: bool = False, name: str | None = None) -> None:
    """Move a finished temporary file (in the same folder) to `out` in one step.

    Without `overwrite` an existing `out` is never replaced, nor is the work lost: it is
    kept beside it as `out`'s stem plus "-1" (or the first free number), named in the
    OutputError raised. The commands refuse an existing output before any work, so this
    is a file that appeared while they ran. An OSError is left to the caller.
    """
    shown = os.fspath(out) if name is None else name
    if overwrite:
        os.replace(tmp, out)
    elif not _claim(tmp, out):
        for n in range(1, 1000):
            aside = out.with_name(f"{out.stem}-{n}{out.suffix}")
            if _claim(tmp, aside):
                fsync_dir(out.parent)
                raise OutputError(
                    f"{quoted(shown)} exists now and was left as it is; this run's result "
                    f"is in {quoted(str(aside))}"
                )
        raise exists_error(shown)
    fsync_dir(out.parent)


def _claim(tmp: str, out: Path) -> bool:
    """Give the file `tmp` the name `out` unless something has it: False then."""
    try:
        # link() fails if the target exists, so a file created meanwhile is never lost.
        os.link(tmp, out)
    except FileExistsError:
        return False
    except OSError as e:
        if e.errno not in _NO_LINK_ERRNOS:
            raise
        if os.path.lexists(out):
            return False
        os.replace(tmp, out)
    else:
        os.unlink(tmp)
    return True


@contextlib.contextmanager
def atomic_path(
    target: str | os.PathLike[str], *, overwrite: bool = False, name: str | None = None
) -> Iterator[Path]:
    """Yield a temporary path beside `target` for the block to write; when the block
    ends normally it becomes `target`, else it is removed. OSErrors (the block's own
    too, a full disk say) become one-line OutputErrors that name `name` (default the
    target). The temporary file keeps the target's extension, for writers that read the
    format from it."""
    out = Path(target)
    shown = os.fspath(target) if name is None else name
    mode = new_file_mode(out)
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=out.suffix, dir=out.parent)
        os.close(fd)
        yield Path(tmp)
        _fsync_file(tmp)
        os.chmod(tmp, mode)
        publish(tmp, out, overwrite=overwrite, name=shown)
        tmp = None
    except OSError as e:
        raise write_error(e, shown) from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def write_bytes(target: str | os.PathLike[str], data: bytes, *, overwrite: bool = False) -> Path:
    with atomic_path(target, overwrite=overwrite) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def write_text(target: str | os.PathLike[str], text: str, *, overwrite: bool = False) -> Path:
    return write_bytes(target, text.encode("utf-8"), overwrite=overwrite)


def write_json(target: str | os.PathLike[str], value: Any, *, overwrite: bool = False) -> Path:
    return write_text(target, json.dumps(value, indent=2) + "\n", overwrite=overwrite)


def remove_own(folder: Path, patterns: Sequence[str]) -> list[Path]:
    """Delete the files in `folder` whose names match one of `patterns` (regular
    expressions, matched whole) and styleshift's leftover temporary files, then the
    folder itself if that leaves it empty. Returns what is left: the files that are not
    styleshift's are never touched."""
    own = [re.compile(p) for p in patterns]
    left = []
    for entry in sorted(folder.iterdir()):
        ours = entry.name.startswith(TEMP_PREFIX) or any(p.fullmatch(entry.name) for p in own)
        if ours and (entry.is_file() or entry.is_symlink()):
            entry.unlink()
        else:
            left.append(entry)
    if not left:
        folder.rmdir()
    return left


def inside(folder: Path, relative: str | os.PathLike[str]) -> Path:
    """`folder / relative`, refused unless it stays inside `folder`: no absolute path, no
    '..', and no symbolic link (of a folder on the way, or of the file itself) that
    leads out. Raises OutputError naming the path."""
    rel = Path(relative)
    shown = quoted(os.fspath(relative))
    if rel.is_absolute() or rel.drive or ".." in rel.parts or not rel.parts:
        raise OutputError(
            f"output {shown} must be a relative path inside the output folder (no '..', not "
            "absolute); name it relative to the folder"
        )
    root = folder.resolve()
    target = folder / rel
    if not target.resolve().is_relative_to(root):
        raise OutputError(
            f"output {shown} leads out of the output folder through a symbolic link; "
            "remove the link or choose another name"
        )
    return target


def provenance(content: str, styles: Sequence[str], options: Mapping[str, Any]) -> dict[str, str]:
    """The PNG text metadata that says how a picture was made (every writer of one)."""

    facts = {"version": __version__, "content": content, "styles": list(styles),
             "options": dict(options)}  # fmt: skip
    return {"styleshift": json.dumps(facts)}
