"""The video pipeline end to end on a few small frames of the shared clips, real network."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

import styleshift.apps
import styleshift.io
from styleshift import Interrupted, Options, OutputError, cli
from styleshift.apps.video import VideoSettings, VideoStylizer, stylize_video
from styleshift.core.errors import InputError
from styleshift.core.flow import sequence_warping_error
from styleshift.io.videoio import NumberedFrames, probe, read_frames

pytestmark = pytest.mark.slow

# Small and short: the machine is shared, and each network pass counts.
FAST = Options(preset="fast", size=64, iterations=(10,), device="cpu")
SETTINGS = VideoSettings(later_iterations=5)


@pytest.fixture(scope="module")
def clip(images: Path) -> Path:
    return images / "video" / "big_buck_bunny_cut_10s_640x360.mp4"


@pytest.fixture(scope="module")
def sintel(images: Path) -> Path:
    return images / "video" / "sintel_market_frames"


@pytest.fixture(scope="module")
def style(images: Path) -> Path:
    return images / "style" / "vangogh_starry_night.jpg"


def _streams(path: Path) -> dict[str, object]:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        frames = sum(1 for _ in c.decode(v))
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        return {
            "frames": frames,
            "size": (v.codec_context.width, v.codec_context.height),
            "fps": v.average_rate,
            "audio": [a.codec_context.name for a in c.streams.audio],
            "duration": c.duration / 1e6,
        }


@pytest.fixture(scope="module")
def mp4_run(tmp_path_factory, clip, style, engine):
    out = tmp_path_factory.mktemp("mp4") / "out.mp4"
    report = stylize_video(
        clip, [style], out, FAST, SETTINGS, engine=engine, start=1.0, duration=3 / 24
    )
    return out, report


def test_video_keeps_frame_count_rate_and_audio(mp4_run):
    out, report = mp4_run
    facts = _streams(out)
    assert facts["frames"] == 3 == report.frames
    assert facts["fps"] == 24
    assert facts["audio"] == ["aac"]  # copied: MP4 takes AAC as it is
    assert facts["duration"] == pytest.approx(3 / 24, abs=0.05)
    # 640x360 at 64 px is 64x36 (even); the note is for sizes that had to be rounded.
    assert facts["size"] == report.size == (64, 36)
    assert not Path(str(out) + ".parts").exists()  # the work folder is gone once written
    assert report.later_frame_seconds is not None and report.first_frame_seconds is not None


def test_folder_of_frames_in_and_out(tmp_path, sintel, style, engine):
    out = tmp_path / "frames"
    opts = Options(preset="fast", size=75, iterations=(4,), device="cpu")
    report = stylize_video(sintel, [style], out, opts, VideoSettings(later_iterations=2),
                           engine=engine, start=2 / 24, duration=2 / 24)  # fmt: skip
    files = sorted(out.iterdir())
    assert [f.name for f in files] == ["frame_000001.png", "frame_000002.png"]
    with Image.open(files[0]) as im:
        assert im.size == report.size == (74, 32)  # 1024x436 at 75 px is 75x32: made even
    assert report.notes == ["frame size rounded to even sides: 74x32"]


def test_temporal_loss_lowers_the_warping_error(sintel, style, engine):
    info = probe(sintel, duration=3 / 24)
    opts = Options(preset="fast", size=48, iterations=(8,), device="cpu")
    stylizer = VideoStylizer(engine, style, opts, VideoSettings(later_iterations=4))
    contents = [stylizer.prepare(f) for f in read_frames(info)]
    video = [np.asarray(r.image) for r in stylizer.stream(contents)]
    independent = [np.asarray(engine.run(c, style, opts).image) for c in contents]

    def error(frames: list[np.ndarray]) -> float:
        return sequence_warping_error([np.asarray(c) for c in contents], frames)[0]

    assert error(video) < 0.7 * error(independent)


def test_interrupted_run_resumes_where_it_stopped(tmp_path, sintel, style, engine):
    out = tmp_path / "out.mkv"

    seen = []

    def stop_at_third(p):
        seen.append(p)
        if p.frame == 3:
            raise KeyboardInterrupt

    opts = Options(preset="fast", size=48, iterations=(4,), device="cpu")
    settings = VideoSettings(later_iterations=2)
    with pytest.raises(Interrupted):
        stylize_video(sintel, [style], out, opts, settings, engine=engine, duration=4 / 24,
                      callback=stop_at_third)  # fmt: skip
    work = tmp_path / "out.mkv.parts"
    assert sorted(f.name for f in work.glob("frame_*.png")) == [
        "frame_000001.png",
        "frame_000002.png",
    ]
    assert not out.exists()
    # Progress: frames done, this frame's steps, seconds per frame, and an ETA once known.
    assert {(p.frame, p.frames_done, p.frames) for p in seen} == {(1, 0, 4), (2, 1, 4), (3, 2, 4)}
    assert seen[-1].seconds_per_frame is not None and seen[-1].eta is not None
    assert seen[-1].step.steps == 2  # a later frame: --later-iterations, one scale
    first = (work / "frame_000001.png").stat().st_mtime_ns
    done: list[int] = []
    report = stylize_video(sintel, [style], out, opts, settings, engine=engine, duration=4 / 24,
                           keep_work=True, on_frame=lambda r: done.append(r.index))  # fmt: skip
    assert report.resumed_from == 2
    assert done == [3, 4]  # frames 1 and 2 were not computed again
    assert (work / "frame_000001.png").stat().st_mtime_ns == first
    assert _streams(out)["frames"] == 4


def test_other_options_refuse_the_work_folder(tmp_path, sintel, style, engine):
    out = tmp_path / "out.mp4"
    work = tmp_path / "work"
    with pytest.raises(Interrupted):
        stylize_video(sintel, [style], out, FAST, SETTINGS, engine=engine, duration=2 / 24,
                      work_dir=work, callback=_interrupt)  # fmt: skip
    other = VideoSettings(temporal_weight=1.0, later_iterations=5)
    with pytest.raises(OutputError, match="different input or options"):
        stylize_video(sintel, [style], out, FAST, other, engine=_no_engine, duration=2 / 24,
                      work_dir=work)  # fmt: skip


def _interrupt(p):
    raise KeyboardInterrupt


def test_luminance_mode_runs_through(tmp_path, sintel, style, engine):
    opts = Options(preset="fast", size=48, iterations=(3,), preserve_color="luminance")
    stylizer = VideoStylizer(engine, style, opts, VideoSettings(later_iterations=2))
    frames = list(read_frames(probe(sintel, duration=2 / 24)))
    results = list(stylizer.stream(frames))
    assert results[1].losses["temporal"] >= 0
    assert results[1].image.size == results[0].image.size


# -- bad input, reported before any work -----------------------------------------------------


def _no_engine():
    raise AssertionError("the network was loaded before the error")


def _vfr_video(path: Path) -> None:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i, pts in enumerate([0, 1, 2, 6, 7, 12]):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 40, np.uint8), "rgb24")
            frame.pts, frame.time_base = pts, Fraction(1, 24)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def _empty_video(path: Path) -> None:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        out.start_encoding()  # a header, and not one frame


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_text("not a video"), "not a video that can be read"),
        (lambda p: p.mkdir(), "no numbered frames"),
        (_empty_video, "no frames|no video track"),  # MP4 drops a track without frames
        (lambda p: p.write_bytes(b""), "is empty"),
        (_vfr_video, "variable frame rate"),
        (None, "not found"),
    ],
)
def test_bad_input_gets_a_clear_error_and_no_output(tmp_path, style, make, message):
    source = tmp_path / "in.mp4"
    if make is not None:
        make(source)
    out = tmp_path / "out.mp4"
    with pytest.raises(InputError, match=message):
        stylize_video(source, [style], out, FAST, engine=_no_engine)
    assert not out.exists()
    assert not (tmp_path / "out.mp4.parts").exists()


def test_variable_rate_is_accepted_with_fps(tmp_path):
    source = tmp_path / "vfr.mp4"
    _vfr_video(source)
    info = probe(source, fps=24)
    assert info.frames == 6 and info.audio is None


def test_start_past_the_end_is_an_error(clip):
    with pytest.raises(InputError, match="past the end"):
        probe(clip, start=60)


def test_cli_existing_output_and_unknown_extension(tmp_path, clip, style, capsys):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"keep me")
    assert cli.main(["video", str(clip), str(style), "-o", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert out.read_bytes() == b"keep me"
    assert cli.main(["video", str(clip), str(style), "-o", str(tmp_path / "x.avi")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown video extension" in err


def test_cli_names_the_extra_when_video_packages_are_missing(tmp_path, clip, style, monkeypatch,
                                                             capsys):  # fmt: skip
    # As if PyAV were not installed: the video modules must be imported afresh and fail.
    monkeypatch.setitem(sys.modules, "av", None)
    for package, name in ((styleshift.apps, "video"), (styleshift.io, "videoio")):
        monkeypatch.delitem(sys.modules, f"{package.__name__}.{name}")
        monkeypatch.delattr(package, name)
    assert cli.main(["video", str(clip), str(style), "-o", str(tmp_path / "o.mp4")]) == 2
    err = capsys.readouterr().err
    assert "(av is missing)" in err and "pip install 'styleshift[video]'" in err


def test_cli_json_report(tmp_path, sintel, style, weights_file, capsys):
    out = tmp_path / "o.gif"
    code = cli.main(["video", str(sintel), str(style), "-o", str(out), "--preset", "fast",
                     "--size", "48", "--iterations", "4", "--later-iterations", "2",
                     "--duration", str(2 / 24), "--device", "cpu", "--json", "-q"])  # fmt: skip
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["frames"] == 2 and report["output"] == str(out)
    assert _streams(out)["frames"] == 2


def test_instant_video_blends_along_the_flow_and_lowers_the_warping_error(
    tmp_path, sintel, style, engine
):
    info = probe(sintel, duration=4 / 24)
    opts = Options(preset="instant", size=128, device="cpu", precision="float32")
    steady = VideoStylizer(engine, style, opts)
    contents = [steady.prepare(f) for f in read_frames(info)]
    blended = [np.asarray(r.image) for r in steady.stream(contents)]
    loose = VideoStylizer(engine, style, opts, VideoSettings(blend=0.0))
    per_frame = [np.asarray(r.image) for r in loose.stream(contents)]
    # blend 0 is plain per-frame instant
    assert np.array_equal(per_frame[1], np.asarray(engine.run(contents[1], style, opts).image))

    def error(frames: list[np.ndarray]) -> float:
        return sequence_warping_error([np.asarray(c) for c in contents], frames)[0]

    assert error(blended) < 0.5 * error(per_frame)
    # ...and the whole command: frames written, the instant options recorded
    out = tmp_path / "frames"
    report = stylize_video(sintel, [style], out, opts, engine=engine, duration=3 / 24)
    assert report.frames == 3 and len(list(out.glob("*.png"))) == 3


def test_instant_video_refuses_the_optimisation_settings(tmp_path, sintel, style, capsys):
    code = cli.main(["video", str(sintel), str(style), "-o", str(tmp_path / "o"),
                     "--preset", "instant", "--later-iterations", "3"])  # fmt: skip
    assert code == 2
    assert "--later-iterations does not apply to a feed-forward method" in capsys.readouterr().err
    code = cli.main(["video", str(sintel), str(style), "-o", str(tmp_path / "o"),
                     "--blend", "0.5"])  # fmt: skip
    assert code == 2
    assert "--blend does not apply to the optimisation method" in capsys.readouterr().err
    code = cli.main(["video", str(sintel), str(style), "-o", str(tmp_path / "o"),
                     "--time", "60"])  # fmt: skip
    assert code == 2
    assert "--time sets the time of one picture" in capsys.readouterr().err


# -- the pictures themselves ------------------------------------------------------------------


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return 10 * np.log10(255**2 / max(mse, 1e-12))


def test_each_encoded_frame_is_its_stylised_frame_in_order(tmp_path, images, style, engine):
    # A "clip" of five different photos: neighbouring frames share nothing, so a swapped,
    # repeated, missing or unstylised frame cannot pass for the right one.
    source = tmp_path / "source"
    source.mkdir()
    photos = sorted((images / "content").iterdir())[:5]
    for i, photo in enumerate(photos):
        Image.open(photo).convert("RGB").resize((128, 96)).save(source / f"f{i:02d}.png")
    out = tmp_path / "out.mp4"
    opts = Options(preset="instant", size=128, device="cpu")
    stylize_video(source, [style], out, opts, engine=engine, keep_work=True)
    parts = sorted((tmp_path / "out.mp4.parts").glob("frame_*.png"))
    stylised = [np.asarray(Image.open(p).convert("RGB")) for p in parts]
    contents = [np.asarray(Image.open(f)) for f in sorted(source.iterdir())]
    with av.open(str(out)) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == len(stylised) == 5
    for i, frame in enumerate(decoded):
        same = _psnr(frame, stylised[i])
        # H.264 at its default quality: about 30 dB on a painted frame (29.6 measured with
        # the decoder that paints, whose strokes cost the encoder more than soft frames).
        assert same > 27, f"frame {i + 1}: {same:.1f} dB from its own stylised frame"
        others = [s for j, s in enumerate(stylised) if j != i] + [contents[i]]
        assert max(_psnr(frame, o) for o in others) < same - 10


def test_colour_preservation_holds_in_video(tmp_path, sintel, style, engine):
    def chroma_error(mode: str) -> float:
        out = tmp_path / mode
        opts = Options(preset="instant", size=96, preserve_color=mode, device="cpu")
        stylize_video(sintel, [style], out, opts, engine=engine, duration=3 / 24)
        frames = [Image.open(f).convert("RGB") for f in sorted(out.iterdir())]
        contents = [c.resize(frames[0].size, Image.Resampling.LANCZOS)
                    for c in read_frames(probe(sintel, duration=3 / 24))]  # fmt: skip
        return float(np.mean([
            np.abs(np.asarray(f.convert("YCbCr"), np.float32)[..., 1:]
                   - np.asarray(c.convert("YCbCr"), np.float32)[..., 1:]).mean()
            for f, c in zip(frames, contents, strict=True)
        ]))  # fmt: skip

    kept, free = chroma_error("luminance"), chroma_error("none")
    assert kept < 2.0 and kept < free / 4


# -- audio -----------------------------------------------------------------------------------

INSTANT = Options(preset="instant", size=64, device="cpu")


def _samples(path: Path, start: float = 0.0, seconds: float = 0.6) -> np.ndarray:
    """The audio from `start` for `seconds`, mono at 16 kHz."""
    resampler = av.AudioResampler(format="flt", layout="mono", rate=16000)
    chunks = []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
    audio = np.concatenate(chunks)
    first = round(start * 16000)
    return audio[first : first + round(seconds * 16000)]


def _best_match(part: np.ndarray, whole: np.ndarray) -> tuple[int, float]:
    """The lag (in samples) where `part` best matches `whole`, and its correlation."""
    best = (0, -1.0)
    for lag in range(0, len(whole) - len(part)):
        window = whole[lag : lag + len(part)]
        r = float(np.corrcoef(part, window)[0, 1])
        best = max(best, (lag, r), key=lambda b: b[1])
    return best


def test_the_audio_comes_from_the_chosen_section(tmp_path, clip, style, engine):
    out = tmp_path / "out.mp4"
    stylize_video(clip, [style], out, INSTANT, engine=engine, start=4.0, duration=0.5)
    heard = _samples(out, 0.0, 0.3)
    lag, r = _best_match(heard, _samples(clip, 3.9, 0.5))
    assert r > 0.9 and abs(lag - 1600) < 0.03 * 16000  # 0.1 s into a window from 3.9 s
    assert _best_match(heard, _samples(clip, 0.0, 0.5))[1] < 0.5  # not the clip's start


def test_webm_gets_opus_with_a_note(tmp_path, clip, style, engine):
    out = tmp_path / "out.webm"
    report = stylize_video(clip, [style], out, INSTANT, engine=engine, start=4.0, duration=0.3)
    assert _streams(out)["audio"] == ["opus"]
    assert any("re-encoded from aac to libopus" in n for n in report.notes)
    _, r = _best_match(_samples(out, 0.05, 0.2), _samples(clip, 3.9, 0.5))
    assert r > 0.8  # the same sound, through a lossy re-encode


def test_a_clip_without_sound_gives_a_silent_output_and_a_note(tmp_path, images, style, engine):
    silent = tmp_path / "silent.mp4"
    with av.open(str(silent), "w") as container:
        stream = container.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for _ in range(3):
            frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    out = tmp_path / "out.mp4"
    report = stylize_video(silent, [style], out, INSTANT, engine=engine)
    assert _streams(out)["audio"] == []
    assert report.notes == ["the input has no audio track; the output is silent"]


# -- the work folder -------------------------------------------------------------------------


def test_resume_with_nothing_to_resume_is_refused(tmp_path, sintel, style):
    with pytest.raises(OutputError, match="nothing to resume"):
        stylize_video(sintel, [style], tmp_path / "out.mp4", INSTANT, engine=_no_engine,
                      duration=2 / 24, resume=True)  # fmt: skip
    assert not (tmp_path / "out.mp4").exists()


def test_another_input_is_refused_and_overwrite_discards_the_folder(
    tmp_path, sintel, clip, style, engine
):
    out, work = tmp_path / "out.mp4", tmp_path / "work"
    with pytest.raises(KeyboardInterrupt):  # a feed-forward frame has no "best so far"
        stylize_video(sintel, [style], out, INSTANT, engine=engine, duration=3 / 24,
                      work_dir=work, callback=_interrupt)  # fmt: skip
    with pytest.raises(OutputError, match="different input or options"):
        stylize_video(clip, [style], out, INSTANT, engine=_no_engine, duration=3 / 24,
                      work_dir=work)  # fmt: skip
    report = stylize_video(clip, [style], out, INSTANT, engine=engine, duration=3 / 24,
                           work_dir=work, overwrite=True, keep_work=True)  # fmt: skip
    assert report.resumed_from == 0 and _streams(out)["frames"] == 3
    kept = sorted(p.name for p in work.iterdir())
    assert kept[:3] == ["frame_000001.png", "frame_000002.png", "frame_000003.png"]
    assert json.loads((work / kept[-1]).read_text())  # the manifest, kept with them


def test_an_encoding_failure_leaves_no_output_and_no_temporary_file(
    tmp_path, sintel, style, engine, monkeypatch
):
    from styleshift.io import videoio

    def full_disk(frames, tmp, *args):
        tmp.write_bytes(b"half a video")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(videoio, "_encode", full_disk)
    out = tmp_path / "out.mp4"
    with pytest.raises(OutputError, match=r"no space left on device while writing .*out.mp4"):
        stylize_video(sintel, [style], out, INSTANT, engine=engine, duration=2 / 24)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4.parts"]  # frames kept to resume


def test_overwrite_never_deletes_a_users_work_folder_or_output_folder(
    tmp_path, sintel, style, capsys
):
    precious = tmp_path / "mine"
    precious.mkdir()
    (precious / "thesis.txt").write_text("three years of work")
    base = ["video", str(sintel), str(style), "--preset", "instant", "--size", "64",
            "--duration", str(2 / 24)]  # fmt: skip
    argv = [*base, "-o", str(tmp_path / "out.mp4"), "--work-dir", str(precious), "--overwrite"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "not empty and not from styleshift" in err and len(err.strip().splitlines()) == 1
    # A folder of frames as the output: --overwrite replaces only one styleshift wrote.
    assert cli.main([*base, "-o", str(precious), "--overwrite"]) == 2
    assert "not styleshift's frames" in capsys.readouterr().err
    with pytest.raises(OutputError, match="not styleshift's frames"):  # before any work
        stylize_video(sintel, [style], precious, INSTANT, engine=_no_engine,
                      duration=2 / 24, overwrite=True)  # fmt: skip
    assert [p.name for p in precious.iterdir()] == ["thesis.txt"]
    assert (precious / "thesis.txt").read_text() == "three years of work"
    frames = tmp_path / "frames"
    assert cli.main([*base, "-o", str(frames), "-q"]) == 0
    assert cli.main([*base, "-o", str(frames), "-q", "--overwrite"]) == 0
    assert sorted(p.name for p in frames.iterdir()) == ["frame_000001.png", "frame_000002.png"]
    # Those frames as the input, and their own folder as the output: never replaced.
    again = ["video", str(frames), str(style), "--preset", "instant", "--size", "64", "-q"]
    before = {p.name: p.read_bytes() for p in frames.iterdir()}
    assert cli.main([*again, "-o", str(frames), "--overwrite"]) == 2
    assert "is also an input of this run" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in frames.iterdir()} == before


def test_a_users_file_in_a_styleshift_work_folder_survives_overwrite(
    tmp_path, sintel, clip, style, engine
):
    out, work = tmp_path / "out.mp4", tmp_path / "work"
    with pytest.raises(KeyboardInterrupt):
        stylize_video(sintel, [style], out, INSTANT, engine=engine, duration=3 / 24,
                      work_dir=work, callback=_interrupt)  # fmt: skip
    (work / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match=r"not styleshift's \(notes.txt\)"):
        stylize_video(clip, [style], out, INSTANT, engine=_no_engine, duration=3 / 24,
                      work_dir=work, overwrite=True)  # fmt: skip
    assert (work / "notes.txt").read_text() == "mine"
    (work / "notes.txt").unlink()
    stylize_video(clip, [style], out, INSTANT, engine=engine, duration=3 / 24, work_dir=work,
                  overwrite=True)  # fmt: skip
    assert not work.exists()  # emptied of styleshift's files, then removed


def test_kill_9_then_resume_redoes_damaged_frames_and_loses_none(
    tmp_path, clip, style, weights_file
):
    import os
    import signal
    import subprocess
    import time

    out = tmp_path / "out.mp4"
    work = tmp_path / "out.mp4.parts"
    frames = 36
    argv = [sys.executable, "-m", "styleshift", "video", str(clip), str(style), "-o", str(out),
            "--preset", "instant", "--size", "64", "--duration", str(frames / 24), "-q",
            "--precision", "float32"]  # fmt: skip
    env = dict(os.environ, STYLESHIFT_HOME=str(weights_file.parent))
    proc = subprocess.Popen(argv, env=env)
    deadline = time.monotonic() + 120
    try:
        while len(list(work.glob("frame_*.png"))) < 4:
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "no frames appeared within 120 s"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    made = sorted(work.glob("frame_*.png"))
    assert 4 <= len(made) < frames and not out.exists()
    # What a kill during a write that the filesystem did not order, or a full disk,
    # leaves: the newest frame cut short, and a temporary file.
    data = made[-1].read_bytes()
    made[-1].write_bytes(data[: len(data) // 2])
    (work / ".styleshift-abandoned.png").write_bytes(b"half")
    done = subprocess.run([*argv, "--json"], env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["resumed_from"] == len(made) - 1  # the damaged frame is redone
    assert _streams(out)["frames"] == frames  # none lost, none twice
    assert not work.exists()


def test_a_still_mask_keeps_its_part_of_every_frame(tmp_path, sintel, style, engine):
    out = tmp_path / "frames"
    mask = tmp_path / "left.png"
    left = Image.new("L", (64, 32), 0)
    left.paste(255, (0, 0, 32, 32))
    left.save(mask)
    opts = Options(preset="instant", size=96, device="cpu", precision="float32", mask=(str(mask),))
    report = stylize_video(sintel, [style], out, opts, engine=engine, duration=3 / 24)
    assert report.frames == 3
    frames = [np.asarray(Image.open(f).convert("RGB"), np.float64) for f in sorted(out.iterdir())]
    contents = [np.asarray(c.resize(Image.open(next(out.iterdir())).size,
                                    Image.Resampling.LANCZOS), np.float64)
                for c in read_frames(probe(sintel, duration=3 / 24))]  # fmt: skip
    w = frames[0].shape[1]
    for frame, content in zip(frames, contents, strict=True):
        # The right half, away from the feather, is this frame's photo (not the last
        # frame's, carried along the flow); the left half is painted.
        kept = np.abs(frame[:, w // 2 + 6 :] - content[:, w // 2 + 6 :]).mean()
        painted = np.abs(frame[:, : w // 2 - 6] - content[:, : w // 2 - 6]).mean()
        assert kept < 2 and painted > 10 * kept + 5, (kept, painted)


def _halves(count: int) -> list[Image.Image]:
    """Masks painting the left half on odd frames (1-based) and the right on even ones."""
    masks = []
    for number in range(1, count + 1):
        mask = Image.new("L", (64, 32), 0)
        mask.paste(255, (0, 0, 32, 32) if number % 2 else (32, 0, 64, 32))
        masks.append(mask)
    return masks


def _mask_source(tmp_path: Path, kind: str, masks: list[Image.Image]) -> Path:
    """The masks as a folder of numbered pictures or as an (animated) video."""
    if kind == "folder":
        folder = tmp_path / f"masks{len(masks)}"
        folder.mkdir()
        for number, mask in enumerate(masks, start=1):
            mask.save(folder / f"mask_{number:04d}.png")
        return folder
    path = tmp_path / f"masks{len(masks)}.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
        for mask in masks:
            out.mux(stream.encode(av.VideoFrame.from_image(mask.convert("RGB"))))
        out.mux(stream.encode(None))
    return path


@pytest.mark.parametrize("kind", ["folder", "video"])
def test_a_folder_or_video_of_masks_gives_each_frame_its_own(tmp_path, sintel, style, engine, kind):
    """Frame by frame the painted half moves from the left to the right, starting where
    --start puts the section; too few masks are refused before any work."""
    opts = Options(preset="instant", size=96, device="cpu", precision="float32",
                   mask=(str(_mask_source(tmp_path, kind, _halves(5))),))  # fmt: skip
    out = tmp_path / "frames"
    section = {"start": 1 / 24, "duration": 3 / 24}  # frames 2, 3 and 4
    report = stylize_video(sintel, [style], out, opts, engine=engine, **section)
    assert report.frames == 3
    frames = [np.asarray(Image.open(f).convert("RGB"), np.float64) for f in sorted(out.iterdir())]
    contents = [np.asarray(c.resize(frames[0].shape[1::-1], Image.Resampling.LANCZOS), np.float64)
                for c in read_frames(probe(sintel, **section))]  # fmt: skip
    w = frames[0].shape[1]
    for number, (frame, content) in enumerate(zip(frames, contents, strict=True), start=2):
        left = np.abs(frame[:, : w // 2 - 6] - content[:, : w // 2 - 6]).mean()
        right = np.abs(frame[:, w // 2 + 6 :] - content[:, w // 2 + 6 :]).mean()
        painted, kept = (left, right) if number % 2 else (right, left)
        assert kept < 2 and painted > 10 * kept + 5, (number, kept, painted)
    short = replace(opts, mask=(str(_mask_source(tmp_path, kind, _halves(4))),))
    holds = "holds 4 numbered masks" if kind == "folder" else "has 4 frames"
    with pytest.raises(InputError, match=f"{holds}; frames 2 to 5 need one"):
        stylize_video(sintel, [style], tmp_path / "more", short, engine=_no_engine,
                      start=1 / 24, duration=4 / 24)  # fmt: skip


def test_numbered_frames_reads_any_frame_in_any_order(tmp_path):
    """A video decodes forward; asking for an earlier frame starts it over."""
    frames = NumberedFrames(_mask_source(tmp_path, "video", _halves(5)))
    assert len(frames) == 5
    for index in (0, 3, 4, 1, 2, 2):
        picture = np.asarray(frames.frame(index).convert("L"), np.float64)  # type: ignore[union-attr]
        left, right = picture[:, :28].mean(), picture[:, 36:].mean()
        assert (left > 240 and right < 15) if index % 2 == 0 else (right > 240 and left < 15)
    with pytest.raises(IndexError):
        frames.frame(5)


@pytest.mark.parametrize("suffix", [".m4v", ".mov"])
def test_the_other_containers_the_readme_lists_play(tmp_path, clip, style, engine, suffix):
    out = tmp_path / f"out{suffix}"
    report = stylize_video(clip, [style], out, INSTANT, engine=engine, duration=3 / 24)
    streams = _streams(out)
    assert streams["frames"] == report.frames == 3 and streams["audio"]
    with av.open(str(out)) as container:
        assert container.streams.video[0].codec_context.name == "h264"


def test_a_painting_mask_is_opened_once_for_the_whole_video(
    tmp_path, sintel, style, engine, monkeypatch
):
    from styleshift.core import regions

    opened = []
    real = regions.open_painting_mask

    def counting(spec, painting):
        opened.append(spec)
        return real(spec, painting)

    monkeypatch.setattr(regions, "open_painting_mask", counting)
    mask = tmp_path / "top.png"
    top = Image.new("L", (64, 32), 0)
    top.paste(255, (0, 0, 64, 16))
    top.save(mask)
    opts = Options(preset="instant", size=64, device="cpu", style_mask=(str(mask),))
    report = stylize_video(sintel, [style], tmp_path / "out", opts, engine=engine,
                           duration=3 / 24)  # fmt: skip
    # The file once; every frame after that gets the opened mask, at the painting's size.
    assert report.frames == 3 and [s for s in opened if not isinstance(s, Image.Image)] == [
        str(mask)
    ]
    assert sum("stretched to the painting's shape" in n for n in report.notes) == 1
