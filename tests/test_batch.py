"""`styleshift batch`: planning, local workers, resuming, failures, manifests, videos, Ray."""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from optional import need
from styleshift import InputError, Options
from styleshift.apps.batch import RESULTS, Job, plan, run_batch
from styleshift.cli import main

pytestmark = pytest.mark.slow
INSTANT = ["--preset", "instant", "--size", "64"]


@pytest.fixture
def photos(images: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    (folder / "city").mkdir(parents=True)
    for name in ("kodim21_lighthouse.png", "kodim23_parrots.png"):
        shutil.copy(images / "content" / name, folder / name)
    shutil.copy(images / "content" / "tubingen.jpg", folder / "city" / "tubingen.jpg")
    return folder


@pytest.fixture
def styles(images: Path) -> list[Path]:
    return [images / "style" / "hokusai_great_wave.jpg", images / "style" / "picabia_udnie.jpg"]


def _style_args(styles: list[Path]) -> list[str]:
    return [a for s in styles for a in ("--style", str(s))]


def _records(out: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (out / RESULTS).read_text().splitlines()]


def test_folders_pair_every_content_with_every_style(photos: Path, styles: list[Path]) -> None:
    jobs = plan([photos], styles)
    assert sorted(str(j.output) for j in jobs) == [
        "city/tubingen__hokusai_great_wave.png",
        "city/tubingen__picabia_udnie.png",
        "kodim21_lighthouse__hokusai_great_wave.png",
        "kodim21_lighthouse__picabia_udnie.png",
        "kodim23_parrots__hokusai_great_wave.png",
        "kodim23_parrots__picabia_udnie.png",
    ]
    assert all(len(j.styles) == 1 and j.kind == "image" for j in jobs)
    with pytest.raises(InputError, match="no style given"):
        plan([photos], [])
    with pytest.raises(InputError, match="not found"):
        plan([photos / "missing.png"], styles)
    (photos / "again").mkdir()
    shutil.copy(photos / "kodim23_parrots.png", photos / "again" / "kodim23_parrots.png")
    assert len(plan([photos], styles)) == 8  # subfolders keep outputs apart
    with pytest.raises(InputError, match="would both be written to"):
        plan([photos / "kodim23_parrots.png", photos / "again" / "kodim23_parrots.png"], styles)


def test_manifests_pair_explicitly_and_carry_options(
    photos: Path, styles: list[Path], tmp_path: Path
) -> None:
    jsonl = tmp_path / "jobs.jsonl"
    rows = [
        {"content": "photos/kodim23_parrots.png", "styles": [str(s) for s in styles],
         "options": {"strength": 0.5, "levels": ["relu4_1"]}, "output": "blend.png"},
        {"content": "photos/kodim21_lighthouse.png"},
    ]  # fmt: skip
    jsonl.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    jobs = plan([jsonl], styles[:1], Options(preset="instant"))
    assert [(str(j.output), len(j.styles)) for j in jobs] == [
        ("blend.png", 2),  # the row's styles, blended
        ("kodim21_lighthouse__hokusai_great_wave.png", 1),  # no styles: every --style
    ]
    assert jobs[0].options.strength == 0.5 and jobs[0].options.preset == "instant"
    assert jobs[0].options.levels == ("relu4_1",)
    csv_file = tmp_path / "jobs.csv"
    csv_file.write_text(
        "content,styles,output,options\nphotos/kodim23_parrots.png,"
        f'{styles[0]};{styles[1]},both.png,"{{""strength"": 0.25}}"\n'
    )
    (job,) = plan([csv_file], [])
    assert job.styles == tuple(styles) and job.options.strength == 0.25
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        json.dumps({"content": "photos/kodim23_parrots.png", "options": {"strenght": 1}})
    )
    (job,) = plan([bad], styles)  # a bad row fails alone, when the batch runs
    assert job.error == "bad.jsonl row 1: unknown option 'strenght'; did you mean 'strength'?"


def test_two_workers_resume_and_a_bad_file_fails_alone(
    photos: Path, styles: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (photos / "broken.png").write_bytes(b"not a picture")
    out = tmp_path / "out"
    argv = ["batch", str(photos), *_style_args(styles), "-o", str(out), "--workers", "2",
            *INSTANT]  # fmt: skip
    assert main(argv) == 2  # the broken file, once per style
    err = capsys.readouterr().err
    assert err.count("failed: ") == 2 and "'broken.png' is not a supported image" in err
    made = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert len(made) == 6 and "city/tubingen__picabia_udnie.png" in made
    for path in out.rglob("*.png"):
        with Image.open(path) as im:
            assert max(im.size) == 64
    records = _records(out)
    assert sum(r["error"] is None for r in records) == 6
    assert sum(r["error"] is not None for r in records) == 2

    (out / "kodim23_parrots__hokusai_great_wave.png").unlink()
    (photos / "broken.png").unlink()
    assert main([*argv, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["done"], report["failed"], report["skipped"]) == (1, 0, 5)
    assert [r["output"] for r in report["results"] if r["status"] == "done"] == [
        "kodim23_parrots__hokusai_great_wave.png"
    ]
    assert not list(out.rglob("*.tmp"))


def test_outputs_from_other_options_or_elsewhere_are_kept(
    photos: Path, styles: list[Path], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    jobs = plan([photos / "kodim23_parrots.png"], styles[:1], Options(preset="instant", size=64))
    assert [r.status for r in run_batch(jobs, out, workers=1)] == ["done"]
    first = (out / jobs[0].output).read_bytes()
    other = [Job(j.content, j.styles, j.output, Options(preset="instant", size=80)) for j in jobs]
    (result,) = run_batch(other, out, workers=1)
    assert result.status == "failed" and "made with other options" in str(result.error)
    assert (out / jobs[0].output).read_bytes() == first
    (result,) = run_batch(other, out, workers=1, overwrite=True)
    assert result.status == "done"
    with Image.open(out / jobs[0].output) as im:
        assert max(im.size) == 80


def _clip(av: Any, path: Path, pictures: list[Image.Image]) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        for picture in pictures:
            for packet in stream.encode(av.VideoFrame.from_image(picture.resize((96, 64)))):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_a_video_is_one_item(images: Path, styles: list[Path], tmp_path: Path) -> None:
    av = need("av")
    files = sorted((images / "video" / "sintel_market_frames").glob("*.png"))[:6]
    pictures = [Image.open(f).convert("RGB") for f in files]
    clip = _clip(av, tmp_path / "clip.mp4", pictures)
    (result,) = run_batch(
        plan([clip], styles[:1], Options(preset="instant", size=64)), tmp_path / "out", workers=1
    )
    assert result.status == "done", result.error
    with av.open(str(tmp_path / "out" / "clip__hokusai_great_wave.mp4")) as container:
        decoded = list(container.decode(video=0))
    assert len(decoded) == 6 and (decoded[0].width, decoded[0].height) == (64, 42)
    # A video of masks, one a frame, travels to the worker like a still mask.
    right = Image.new("RGB", (96, 64))
    right.paste((255, 255, 255), (48, 0, 96, 64))
    masks = _clip(av, tmp_path / "right.mp4", [right] * 6)
    opts = Options(preset="instant", size=64, mask=(str(masks),))
    (result,) = run_batch(plan([clip], styles[:1], opts), tmp_path / "masked", workers=1)
    assert result.status == "done", result.error
    with av.open(str(tmp_path / "masked" / "clip__hokusai_great_wave.mp4")) as container:
        made = [f.to_ndarray(format="rgb24").astype(np.float64) for f in container.decode(video=0)]
    with av.open(str(clip)) as container:  # the photo as the worker saw it, encoded once
        sources = [f.to_image() for f in container.decode(video=0)]
    for frame, source in zip(made, sources, strict=True):
        photo = np.asarray(source.resize((64, 42), Image.Resampling.LANCZOS), np.float64)
        kept = np.abs(frame[:, :26] - photo[:, :26]).mean()
        painted = np.abs(frame[:, 38:] - photo[:, 38:]).mean()
        assert kept < 6 and painted > 3 * kept, (kept, painted)


def test_ray_without_ray_installed_says_how_to_install_it(
    photos: Path, styles: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    argv = ["batch", str(photos / "kodim23_parrots.png"), *_style_args(styles[:1]),
            "-o", str(tmp_path / "out"), "--ray", *INSTANT]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "pip install 'styleshift[ray]'" in err and len(err.splitlines()) == 1


def test_a_local_ray_cluster_gives_the_same_outputs(
    photos: Path, styles: list[Path], tmp_path: Path
) -> None:
    need("ray")
    jobs = plan([photos], styles, Options(preset="instant", size=64, precision="float32"))
    local = [r.status for r in run_batch(jobs, tmp_path / "local", workers=1)]
    on_ray = [r.status for r in run_batch(jobs, tmp_path / "ray", workers=2, ray=True)]
    assert local == on_ray == ["done"] * 6
    for job in jobs:
        a = np.asarray(Image.open(tmp_path / "local" / job.output), dtype=np.int16)
        b = np.asarray(Image.open(tmp_path / "ray" / job.output), dtype=np.int16)
        assert np.abs(a - b).max() <= 2  # thread counts may round float32 differently
    assert len(_records(tmp_path / "ray")) == 6


def test_a_moved_input_folder_still_resumes(
    photos: Path, styles: list[Path], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    options = Options(preset="instant", size=64)
    first = list(run_batch(plan([photos / "city"], styles[:1], options), out, workers=1))
    assert [r.status for r in first] == ["done"]
    moved = photos.rename(tmp_path / "moved")
    again = list(run_batch(plan([moved / "city"], styles[:1], options), out, workers=1))
    assert [r.status for r in again] == ["skipped"]  # the same bytes, the same output


def test_bad_rows_fail_alone_in_one_line_and_the_rest_runs(
    photos: Path, styles: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    style = str(styles[0])
    jsonl = tmp_path / "jobs.jsonl"
    rows = [
        json.dumps({"content": "photos/kodim23_parrots.png", "styles": style, "output": "one.png"}),
        '{"content": "photos/kodim23_parrots.png", "styles": [3]}',
        "{not json",
        "[1, 2]",
        json.dumps(
            {"content": "photos/kodim21_lighthouse.png", "styles": style, "output": "x.txt"}
        ),
    ]
    jsonl.write_text("\n".join(rows) + "\n")
    csv_file = tmp_path / "jobs.csv"
    csv_file.write_text(
        "content,styles,output,options\n"
        f"photos/kodim23_parrots.png,{style},two.png,{{strength: 1}}\n"
        f"photos/kodim21_lighthouse.png,{style},three.png,\n"
    )
    out = tmp_path / "out"
    argv = ["batch", str(jsonl), str(csv_file), "-o", str(out), "--workers", "1", *INSTANT]
    assert main(argv) == 5
    err = capsys.readouterr().err
    failures = [line for line in err.splitlines() if "failed:" in line]
    assert len(failures) == 5 and "Traceback" not in err
    assert "jobs.jsonl row 2: styles must be a list of paths" in err
    assert "jobs.jsonl row 3: the line is not JSON" in err
    assert "jobs.jsonl row 4: the line is not a JSON object" in err
    assert "jobs.jsonl row 5: output 'x.txt' needs a picture's extension" in err
    assert "jobs.csv row 1: options are not a JSON object" in err
    # A style given as text is one path (';' between several, as in CSV), not letters.
    assert sorted(p.name for p in out.glob("*.png")) == ["one.png", "three.png"]
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]


def test_outputs_stay_inside_the_output_folder(
    photos: Path, styles: list[Path], tmp_path: Path
) -> None:
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "keep.png").write_bytes(b"mine")
    out = tmp_path / "out"
    out.mkdir()
    (out / "link").symlink_to(outside, target_is_directory=True)
    (out / "file-link.png").symlink_to(outside / "keep.png")
    jsonl = tmp_path / "jobs.jsonl"
    outputs = ["../precious/keep.png", str(outside / "keep.png"), "link/keep.png",
               "file-link.png", "link/new/deeper.png", "fine/ok.png"]  # fmt: skip
    jsonl.write_text(
        "\n".join(
            json.dumps({"content": "photos/kodim23_parrots.png", "output": o}) for o in outputs
        )
    )
    jobs = plan([jsonl], styles[:1], Options(preset="instant", size=64))
    results = list(run_batch(jobs, out, workers=1, overwrite=True))
    failed = [r for r in results if r.status == "failed"]
    assert [str(r.job.output) for r in failed] == outputs[:5]
    assert all("output folder" in str(r.error) for r in failed)
    assert (outside / "keep.png").read_bytes() == b"mine"
    assert sorted(p.name for p in outside.rglob("*")) == ["keep.png"]  # no folder made there
    assert (out / "fine" / "ok.png").is_file()


def test_a_full_disk_fails_the_item_in_one_line_and_leaves_no_temporary_file(
    photos: Path, styles: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    real_open = open

    def full(file: object, mode: str = "r", *args: object, **kwargs: object) -> object:
        if "w" in mode and Path(str(file)).name.startswith(".styleshift-"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(file, mode, *args, **kwargs)  # type: ignore[call-overload]

    jobs = plan([photos / "kodim23_parrots.png"], styles[:1], Options(preset="instant", size=64))
    monkeypatch.setattr("builtins.open", full)
    (result,) = run_batch(jobs, tmp_path / "out", workers=1)
    monkeypatch.undo()
    assert result.status == "failed"
    assert str(result.error).startswith("no space left on device while writing")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [RESULTS]


def test_outputs_carry_provenance_and_the_manifests_format(
    photos: Path, styles: list[Path], tmp_path: Path
) -> None:
    from styleshift.io.image import read_metadata

    jsonl = tmp_path / "jobs.jsonl"
    jsonl.write_text(
        json.dumps({"content": "photos/kodim23_parrots.png", "output": "p.png"}) + "\n"
        + json.dumps({"content": "photos/kodim23_parrots.png", "output": "p.jpg"}) + "\n"
    )  # fmt: skip
    jobs = plan([jsonl], styles[:1], Options(preset="instant", size=64))
    assert [r.status for r in run_batch(jobs, tmp_path / "out", workers=1)] == ["done"] * 2
    facts = json.loads(read_metadata(tmp_path / "out" / "p.png")["styleshift"])
    assert facts["styles"] == [str(styles[0])] and facts["options"]["preset"] == "instant"
    with Image.open(tmp_path / "out" / "p.jpg") as im:
        assert im.format == "JPEG"


def test_a_manifest_row_never_replaces_its_own_input(
    photos: Path, styles: list[Path], tmp_path: Path
) -> None:
    """A row whose output is its own photo, in the folder it is read from: that row
    fails by name, --overwrite or not, and the photo is as it was."""
    shutil.copy(photos / "kodim23_parrots.png", tmp_path / "parrots.png")
    before = (tmp_path / "parrots.png").read_bytes()
    manifest = tmp_path / "jobs.csv"
    manifest.write_text("content,output\nparrots.png,parrots.png\nparrots.png,new.png\n")
    jobs = plan([manifest], styles[:1], Options(preset="instant", size=64))
    results = list(run_batch(jobs, tmp_path, workers=1, overwrite=True))
    assert [r.status for r in results] == ["failed", "done"]
    assert "is also an input of this run" in str(results[0].error)
    assert (tmp_path / "parrots.png").read_bytes() == before


def test_a_manifest_row_paints_only_its_mask(
    photos: Path, styles: list[Path], tmp_path: Path
) -> None:
    from styleshift.io.image import load_image, resize_long_side

    Image.new("L", (32, 32), 0).save(tmp_path / "keep.png")  # black: the photo stays
    manifest = tmp_path / "jobs.csv"
    manifest.write_text(
        "content,output,mask\n"
        "photos/kodim23_parrots.png,kept.png,keep.png\n"
        "photos/kodim23_parrots.png,around.png,auto:background\n"
    )
    jobs = plan([manifest], styles[:1], Options(preset="instant", size=64))
    assert [j.options.mask for j in jobs] == [(str(tmp_path / "keep.png"),), ("auto:background",)]
    # The worker gets the mask's bytes, read by the driver (a Ray worker elsewhere has no
    # access to the manifest's folder); a mask gone missing fails its row, by name.
    (tmp_path / "keep.png").rename(tmp_path / "moved.png")
    (failed,) = run_batch(jobs[:1], tmp_path / "none", workers=1)
    assert failed.status == "failed" and "keep.png" in str(failed.error)
    (tmp_path / "moved.png").rename(tmp_path / "keep.png")
    assert [r.status for r in run_batch(jobs, tmp_path / "out", workers=1)] == ["done"] * 2
    photo = resize_long_side(load_image(photos / "kodim23_parrots.png"), 64)
    with Image.open(tmp_path / "out" / "kept.png") as kept:
        assert np.array_equal(np.asarray(kept.convert("RGB")), np.asarray(photo))
    with Image.open(tmp_path / "out" / "around.png") as around:
        changed = np.abs(np.asarray(around, np.int16) - np.asarray(photo, np.int16)).mean(2)
    h, w = changed.shape
    # The parrots in the middle are kept; the leaves around them are painted.
    assert changed[h // 3 : 2 * h // 3, w // 3 : 2 * w // 3].mean() < changed[:, : w // 8].mean()


def test_hidden_files_and_folders_are_left_out(photos: Path, styles: list[Path]) -> None:
    shutil.copy(photos / "kodim23_parrots.png", photos / ".parrots.png")
    (photos / ".thumbnails").mkdir()
    shutil.copy(photos / "kodim23_parrots.png", photos / ".thumbnails" / "parrots.png")
    assert len(plan([photos], styles[:1])) == 3


def test_a_file_the_batch_did_not_make_is_kept_and_each_result_recorded(
    photos: Path, styles: list[Path], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    jobs = plan([photos / "kodim23_parrots.png", photos / "kodim21_lighthouse.png"], styles[:1],
                Options(preset="instant", size=64))  # fmt: skip
    (out / jobs[0].output.parent).mkdir(parents=True)
    (out / jobs[0].output).write_bytes(b"my own picture")
    results = list(run_batch(jobs, out, workers=1))
    assert sorted(r.status for r in results) == ["done", "failed"]
    failed = next(r for r in results if r.status == "failed")
    assert "exists" in str(failed.error) and "--overwrite" in str(failed.error)
    assert (out / jobs[0].output).read_bytes() == b"my own picture"
    records = _records(out)
    assert len(records) == 2
    for record in records:  # what the README says each record holds
        assert {"content", "styles", "options", "output", "seconds", "device", "loss",
                "error"} <= record.keys()  # fmt: skip
    done = next(r for r in records if r["error"] is None)
    assert done["options"]["preset"] == "instant" and done["seconds"] > 0


def test_the_exit_code_counts_failures_up_to_125_and_is_130_after_ctrl_c(
    photos: Path, styles: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from styleshift.apps import batch

    def failing(jobs, *args, **kwargs):
        for job in jobs * 70:
            yield batch.JobResult(job, "failed", error="broken")

    def interrupted(jobs, *args, **kwargs):
        yield batch.JobResult(jobs[0], "done")
        raise KeyboardInterrupt

    argv = ["batch", str(photos), *_style_args(styles), "-o", str(tmp_path / "out"), "-q"]
    monkeypatch.setattr(batch, "run_batch", failing)
    assert main([*argv, *INSTANT]) == 125  # 420 failures
    monkeypatch.setattr(batch, "run_batch", interrupted)
    assert main([*argv, *INSTANT]) == 130


@pytest.mark.parametrize(("cores", "gib", "workers"), [(4, 3, 1), (4, 16, 4), (2, 1, 1)])
def test_default_workers_one_per_core_as_many_as_the_memory_holds(
    cores: int, gib: int, workers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from styleshift.apps import batch

    pages = {"SC_PAGE_SIZE": 4096, "SC_AVPHYS_PAGES": gib * 2**30 // 4096}
    monkeypatch.setattr(batch.os, "cpu_count", lambda: cores)
    monkeypatch.setattr(batch.os, "sysconf", lambda name: pages[name])
    assert batch.default_workers() == workers


def test_painting_masks_travel_to_the_workers(
    photos: Path, styles: list[Path], tmp_path: Path
) -> None:
    mask = tmp_path / "left.png"
    left = Image.new("L", (64, 48), 0)
    left.paste(255, (0, 0, 32, 48))
    left.save(mask)
    options = Options(size=64, iterations=(2,), multiscale=False, style_mask=(str(mask),))
    jobs = plan([photos / "kodim23_parrots.png"], styles[:1], options)
    gone = replace(options, style_mask=(str(tmp_path / "gone.png"),))
    missing = [Job(j.content, j.styles, Path("other.png"), gone) for j in jobs]
    results = {r.job.output.name: r for r in run_batch(jobs + missing, tmp_path / "out", workers=1)}
    assert results[jobs[0].output.name].status == "done"
    assert results["other.png"].status == "failed" and "gone.png" in str(results["other.png"].error)


@pytest.mark.parametrize("below", ["", "styled"])
def test_a_batch_into_its_own_input_folder_does_not_paint_its_results_again(
    photos: Path, styles: list[Path], below: str
) -> None:
    # Run twice, as the help says to resume: the first run's pictures are not new photos.
    out = photos / below
    args = ["batch", str(photos), *_style_args(styles[:1]), "-o", str(out), "-q", *INSTANT]
    assert main(args) == 0
    assert main(args) == 0
    assert sorted(str(r["output"]) for r in _records(out)) == [
        "city/tubingen__hokusai_great_wave.png",
        "kodim21_lighthouse__hokusai_great_wave.png",
        "kodim23_parrots__hokusai_great_wave.png",
    ]
    assert len(list(photos.rglob("*__hokusai_great_wave*"))) == 3
