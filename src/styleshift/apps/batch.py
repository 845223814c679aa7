"""Many pictures and clips in one resumable run, on local worker processes or a Ray cluster.

A batch is a list of `Job`s (a content, its styles, its options, its output). The driver
(the process that calls `run_batch`) decides what is left to do from the results manifest,
hands the work out, writes every output atomically and appends a line to the manifest as
each job finishes, so a rerun after a crash or Ctrl-C does only what is left. Workers get
the inputs as bytes and give the output back as bytes: they need no shared storage, and
only the driver touches the output folder.
"""

from __future__ import annotations

import concurrent.futures as cf
import csv
import functools
import hashlib
import io
import json
import multiprocessing
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Protocol

from PIL import Image

from ..core.errors import InputError, StyleshiftError, one_line
from ..core.options import Options
from ..core.regions import AUTO
from ..core.settings_text import from_values
from ..io.files import inside, provenance, refuse_inputs, write_bytes, write_error
from ..io.image import OUTPUT_FORMATS, save_image
from ..io.media import Kind, kind_of
from ..transfer import StyleTransfer
from .batch_worker import Outcome, Payload, init_worker, work, work_in_process

MANIFEST_SUFFIXES = frozenset({".csv", ".jsonl"})
RESULTS = "batch-results.jsonl"
TEMPLATE = "{content}__{style}.{ext}"
"""Output names: the content's path below the folder it was found in (without its
extension; subfolders are kept), the style names joined by '+', and png for pictures or
mp4 for videos. A manifest row may name its own output instead."""


@dataclass(frozen=True)
class Job:
    content: Path
    styles: tuple[Path, ...]
    output: Path  # relative to the output folder
    options: Options = field(default_factory=Options)
    kind: Kind = "image"
    error: str | None = None  # a manifest row that cannot run: it fails alone, in one line

    def key(self) -> str:
        """What the result depends on (the inputs' bytes, not their paths, so a moved
        folder still resumes): a rerun skips a job whose recorded key matches."""
        try:
            record = {
                "content": _file_digest(self.content),
                "styles": [_file_digest(s) for s in self.styles],
                "options": self.options.to_dict(),
                "kind": self.kind,
            }
        except OSError:
            return ""  # an input that cannot be read matches nothing
        return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:16]


@functools.lru_cache(maxsize=4096)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _file_digest(path: Path) -> str:
    # A style is shared by many jobs; size and time keep the cache honest if it changes.
    st = path.stat()
    return _digest(str(path.resolve()), st.st_size, st.st_mtime_ns)


@dataclass(frozen=True)
class JobResult:
    job: Job
    status: Literal["done", "failed", "skipped"]
    seconds: float = 0.0
    device: str | None = None
    loss: float | None = None
    error: str | None = None


# --- Planning: inputs to jobs ------------------------------------------------------------


def _kind(path: Path) -> Kind | None:
    """A file's kind; a folder is neither here (a batch's contents are files)."""
    return None if path.is_dir() else kind_of(path)


def _output_name(content: Path, root: Path | None, styles: Sequence[Path], kind: Kind) -> Path:
    stem = content.with_suffix("") if root is None else content.relative_to(root).with_suffix("")
    if root is None:
        stem = Path(stem.name)
    name = TEMPLATE.format(
        content=stem.name,
        style="+".join(s.stem for s in styles),
        ext="png" if kind == "image" else "mp4",
    )
    return stem.parent / name


def _manifest_rows(path: Path) -> list[tuple[dict[str, Any] | None, str | None]]:
    """Each row of a manifest as the fields of a job, or None and why it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read the manifest {path}: {one_line(e)}") from None
    rows: list[tuple[dict[str, Any] | None, str | None]] = []
    if path.suffix.lower() == ".csv":
        for row in csv.DictReader(io.StringIO(text)):
            try:
                options = json.loads(row["options"]) if row.get("options") else {}
            except json.JSONDecodeError as e:
                rows.append((None, f"options are not a JSON object ({e.msg}); write them as "
                                   '{"strength": 0.5}'))  # fmt: skip
                continue
            rows.append(({"content": row.get("content"), "styles": row.get("styles") or
                          row.get("style") or "", "options": options,
                          "mask": row.get("mask") or None,
                          "output": row.get("output") or None}, None))  # fmt: skip
        return rows
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            rows.append((None, f"the line is not JSON ({e.msg})"))
            continue
        rows.append((record, None) if isinstance(record, dict) else (None, "the line is not "
                    'a JSON object such as {"content": "photo.jpg"}'))  # fmt: skip
    return rows


def _row_paths(value: Any, base: Path, what: str) -> list[str]:
    """A row's styles or masks: a list of paths, or text with ';' between paths (as in
    CSV), relative to the manifest; an automatic mask (auto:...) stays as it is."""
    if isinstance(value, str):
        value = [s for s in value.split(";") if s.strip()]
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise InputError(f'{what} must be a list of paths, such as ["a.png", "b.png"]')
    return [s.strip() if s.strip() in AUTO else str(base / s.strip()) for s in value]


def _row_jobs(
    row: dict[str, Any], base: Path, styles: Sequence[Path], options: Options
) -> list[Job]:
    if not row.get("content") or not isinstance(row["content"], str):
        raise InputError("no content; give each row a content path")
    content = base / row["content"]
    kind = _kind(content)
    if kind is None:
        raise InputError(f"{content.name} is neither a picture nor a video")
    own_styles = [Path(s) for s in _row_paths(row.get("styles") or [], base, "styles")]
    row_styles = own_styles or list(styles)
    if not row_styles:
        raise InputError("no styles, and no --style was given")
    given = row.get("options") or {}
    if not isinstance(given, dict):
        raise InputError("options must be a JSON object of stylize options")
    row_options = from_values(Options, given, base=options)
    if row.get("mask"):
        row_options = replace(row_options, mask=tuple(_row_paths(row["mask"], base, "mask")))
    output = row.get("output")
    if output is not None and not isinstance(output, str):
        raise InputError("output must be a path relative to the output folder")
    if output is not None and kind == "image" and Path(output).suffix.lower() not in OUTPUT_FORMATS:
        raise InputError(
            f"output '{output}' needs a picture's extension ({', '.join(sorted(OUTPUT_FORMATS))})"
        )
    groups = [row_styles] if own_styles else [[s] for s in row_styles]
    return [
        Job(content, tuple(group), Path(output or _output_name(content, None, group, kind)),
            row_options, kind)
        for group in groups
    ]  # fmt: skip


def _manifest_jobs(path: Path, styles: Sequence[Path], options: Options) -> list[Job]:
    """The jobs of every row; a row that cannot run becomes one failed job, and the rest
    of the batch goes on."""
    jobs = []
    for number, (row, error) in enumerate(_manifest_rows(path), 1):
        where = f"{path.name} row {number}"
        try:
            if row is None:
                raise InputError(str(error))
            jobs += _row_jobs(row, path.parent, styles, options)
        except StyleshiftError as e:
            jobs.append(Job(path, (), Path(where), error=f"{where}: {one_line(e)}"))
    return jobs


def plan(
    inputs: Sequence[Path],
    styles: Sequence[Path],
    options: Options | None = None,
    output_folder: Path | None = None,
) -> list[Job]:
    """Jobs for files, folders (searched recursively for pictures and videos) and
    manifests (.csv or .jsonl: content, styles, options, output per row). Every content is
    paired with every style, one style per job, unless a manifest row names its styles
    (then they are blended in one job). A folder's search passes over the results that
    `output_folder`'s manifest records, so a batch written into (or below) its own input
    folder does not paint its results again when it is run again."""
    options = options or Options()
    made: set[Path] = set()
    if output_folder is not None:
        made = {(output_folder / output).resolve() for output in finished(output_folder)}
    jobs: list[Job] = []
    for given in inputs:
        if given.suffix.lower() in MANIFEST_SUFFIXES and given.is_file():
            jobs += _manifest_jobs(given, styles, options)
            continue
        if given.is_dir():
            found = sorted(
                p
                for p in given.rglob("*")
                if p.is_file()
                and _kind(p) is not None
                and not any(part.startswith(".") for part in p.relative_to(given).parts)
                and p.resolve() not in made
            )
            root: Path | None = given
        elif given.exists():
            found, root = [given], None
        else:
            raise InputError(f"input {given} not found; check the path")
        if not styles:
            raise InputError("no style given; pass --style PAINTING (or a manifest with styles)")
        for content in found:
            kind = _kind(content)
            if kind is None:
                raise InputError(f"{content.name} is neither a picture nor a video")
            for style in styles:
                output = _output_name(content, root, [style], kind)
                jobs.append(Job(content, (style,), output, options, kind))
    outputs: dict[Path, Job] = {}
    for job in jobs:
        if job.error is not None:
            continue
        if job.output in outputs:
            raise InputError(
                f"{outputs[job.output].content} and {job.content} would both be written to "
                f"{job.output}; rename one or give the outputs in a manifest"
            )
        outputs[job.output] = job
    return jobs


# --- The results manifest -------------------------------------------------------------------


def finished(folder: Path) -> dict[str, str]:
    """output -> key of the jobs that the manifest in `folder` records as done."""
    done: dict[str, str] = {}
    path = folder / RESULTS
    if not path.exists():
        return done
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a crash
        if record.get("error") is None and "output" in record:
            done[record["output"]] = record.get("key", "")
    return done


def _record(folder: Path, result: JobResult) -> None:
    job = result.job
    record = {
        "content": str(job.content),
        "styles": [str(s) for s in job.styles],
        "output": str(job.output),
        "key": job.key(),
        "options": job.options.to_dict(),
        "seconds": round(result.seconds, 3),
        "device": result.device,
        "loss": result.loss,
        "error": result.error,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    with open(folder / RESULTS, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


# --- Payloads: a job as bytes for a worker -----------------------------------------------


def payload(job: Job) -> Payload:
    try:
        return Payload(
            job.content.name,
            job.content.read_bytes(),
            tuple((s.name, s.read_bytes()) for s in job.styles),
            job.options.to_dict(),
            job.kind,
            tuple(
                (Path(m).name, Path(m).read_bytes())
                for m in (*(job.options.mask or ()), *(job.options.style_mask or ()))
                if m not in AUTO
            ),
        )
    except OSError as e:
        raise InputError(f"cannot read {e.filename}: {e.strerror}") from None


# --- The driver -----------------------------------------------------------------------------


def default_workers() -> int:
    """One worker per core, each on one thread: on two cores that paints 11-33% more
    pictures per minute than one worker on two threads (docs/performance.md); as many as
    the memory holds at about 2 GB each (a 512 px optimisation peaks near 1.6 GB)."""
    cores = os.cpu_count() or 1
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        available = 2 << 30
    return max(1, min(cores, int(available // (2 << 30))))


def _write(folder: Path, job: Job, outcome: Outcome, overwrite: bool) -> JobResult:
    if outcome.error is not None or outcome.data is None:
        return JobResult(job, "failed", outcome.seconds, outcome.device, error=outcome.error)
    try:
        target = inside(folder, job.output)
        target.parent.mkdir(parents=True, exist_ok=True)
        if job.kind == "video":
            write_bytes(target, outcome.data, overwrite=overwrite)
        else:
            # Re-encoded here in the output's own format, with the provenance that
            # `stylize` writes too; workers send PNG, which loses nothing.
            with Image.open(io.BytesIO(outcome.data)) as picture:
                save_image(
                    picture, target, overwrite=overwrite,
                    metadata=provenance(str(job.content), [str(s) for s in job.styles],
                                        job.options.to_dict()),
                )  # fmt: skip
    except OSError as e:
        error = one_line(write_error(e, str(job.output)))
        return JobResult(job, "failed", outcome.seconds, outcome.device, error=error)
    except StyleshiftError as e:
        return JobResult(job, "failed", outcome.seconds, outcome.device, error=one_line(e))
    return JobResult(job, "done", outcome.seconds, outcome.device, outcome.loss)


def _todo(jobs: Sequence[Job], folder: Path, overwrite: bool) -> tuple[list[Job], list[JobResult]]:
    done = finished(folder)
    todo, settled = [], []
    for job in jobs:
        try:
            if job.error is not None:
                raise InputError(job.error)
            target = inside(folder, job.output)
            refuse_inputs(target, [job.content, *job.styles, *job.options.input_files()])
        except StyleshiftError as e:
            settled.append(JobResult(job, "failed", error=one_line(e)))
            continue
        if target.exists() and done.get(str(job.output)) == job.key():
            settled.append(JobResult(job, "skipped"))
        elif target.exists() and not overwrite:
            why = "was made with other options" if str(job.output) in done else "exists"
            settled.append(JobResult(job, "failed", error=f"{job.output} {why}; pass "
                                     "--overwrite to replace it"))  # fmt: skip
        else:
            todo.append(job)
    return todo, settled


def run_batch(
    jobs: Iterable[Job],
    folder: Path,
    *,
    workers: int | None = None,
    device: str = "auto",
    overwrite: bool = False,
    ray: bool = False,
    ray_address: str | None = None,
) -> Iterator[JobResult]:
    """Run the jobs not already done in `folder`, yielding each result as it finishes
    (skipped and refused ones first). Outputs are written atomically and recorded in
    folder/batch-results.jsonl as they finish, so a rerun does only what is left."""
    folder.mkdir(parents=True, exist_ok=True)
    todo, settled = _todo(list(jobs), folder, overwrite)
    for result in settled:
        if result.status == "failed":
            _record(folder, result)
        yield result
    if not todo:
        return
    pool: Pool
    if ray:
        from .cluster import RayPool  # Ray: the [ray] extra, loaded only when asked for

        pool = RayPool(workers, device, ray_address)
    elif (workers or default_workers()) == 1:
        pool = _InProcess(device)
    else:
        count = workers or default_workers()
        pool = _Processes(count, max(1, (os.cpu_count() or 1) // count), device)
    with pool:
        pending: dict[cf.Future[Outcome], Job] = {}
        queue = iter(todo)

        def feed() -> None:
            for job in queue:
                try:
                    item = payload(job)
                except InputError as e:
                    failed = JobResult(job, "failed", error=str(e))
                    _record(folder, failed)
                    early.append(failed)
                    continue
                pending[pool.submit(item)] = job
                if len(pending) >= pool.depth:  # the workers busy, the memory bounded
                    return

        early: list[JobResult] = []
        feed()
        while pending or early:
            yield from early
            early.clear()
            if not pending:
                break
            finished_now, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
            for future in finished_now:
                job = pending.pop(future)
                result = _write(folder, job, future.result(), overwrite)
                _record(folder, result)
                yield result
            feed()


class Pool(Protocol):
    depth: int  # payloads in flight at once

    def submit(self, item: Payload) -> cf.Future[Outcome]: ...
    def __enter__(self) -> Pool: ...
    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None: ...


class _InProcess:
    """One worker: this process, with no pool to start."""

    depth = 1

    def __init__(self, device: str) -> None:
        self.engine = StyleTransfer(device=device)

    def submit(self, item: Payload) -> cf.Future[Outcome]:
        future: cf.Future[Outcome] = cf.Future()
        future.set_result(work(self.engine, item))
        return future

    def __enter__(self) -> _InProcess:
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        pass


class _Processes:
    """Worker processes that each load the network once. They are spawned, not forked (a
    fork of a process whose PyTorch thread pool is running can deadlock), ignore Ctrl-C
    (the driver handles it) and are terminated when the driver stops early."""

    def __init__(self, count: int, threads: int, device: str) -> None:
        self.depth = 2 * count
        self.pool = multiprocessing.get_context("spawn").Pool(
            count, initializer=init_worker, initargs=(device, threads)
        )

    def submit(self, item: Payload) -> cf.Future[Outcome]:
        future: cf.Future[Outcome] = cf.Future()
        self.pool.apply_async(
            work_in_process, (item,), callback=future.set_result,
            error_callback=future.set_exception,
        )  # fmt: skip
        return future

    def __enter__(self) -> _Processes:
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        if kind is None:
            self.pool.close()
        else:
            self.pool.terminate()
        self.pool.join()
