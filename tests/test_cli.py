"""The `styleshift` command, called in-process through `main` (plus one real subprocess).

Real weights, real images, tiny runs (32-64 px, one or two iterations).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

import styleshift
from styleshift import Options, cli
from styleshift.cli import network
from styleshift.cli.arguments import options_from_args
from styleshift.cli.progress import Reporter
from styleshift.core import weights
from styleshift.io.image import read_metadata, scaled_size

ERROR_LINE = re.compile(r"^styleshift( stylize)?: error: \S")
TINY = ["--size", "64", "--iterations", "2", "--no-multiscale", "--device", "cpu"]
CONTENT_SIZE = (1024, 768)  # tubingen.jpg


def _content(images: Path) -> str:
    return str(images / "content" / "tubingen.jpg")


def _style(images: Path) -> str:
    return str(images / "style" / "vangogh_starry_night.jpg")


def _call(argv: list[str]) -> tuple[int, str, str]:
    """Run `main` as the console script would, returning (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(argv)
        except SystemExit as e:  # argparse's errors, --help
            code = e.code if isinstance(e.code, int) else 1
    return code, out.getvalue(), err.getvalue()


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def _error_line(err: str) -> str:
    """The one error line; anything else on stderr may only be a styleshift note."""
    lines = _lines(err)
    assert lines, "nothing on stderr"
    assert "Traceback" not in err
    errors = [line for line in lines if ": error: " in line]
    assert len(errors) == 1, lines
    assert lines[-1] == errors[0]
    assert ERROR_LINE.match(errors[0]), errors[0]
    assert all(line.startswith("styleshift") for line in lines), lines
    return errors[0]


@pytest.fixture
def no_engine(monkeypatch):
    """Fail the test if the network would be loaded."""

    def refuse(*args, **kwargs):
        raise AssertionError("the weights or the network were loaded before the error")

    monkeypatch.setattr(network, "StyleTransfer", refuse)
    monkeypatch.setattr(weights, "ensure_weights", refuse)


# -- one successful run, shared -----------------------------------------------------------


@dataclasses.dataclass
class Run:
    code: int
    out: str
    err: str
    output: Path


@pytest.fixture(scope="module")
def png_run(tmp_path_factory, images, weights_file) -> Run:
    output = tmp_path_factory.mktemp("cli") / "out.png"
    # Four steps, not TINY's two: the estimate of the whole run comes after the third.
    argv = ["stylize", _content(images), _style(images), "-o", str(output), "--json", *TINY,
            "--iterations", "4"]  # fmt: skip
    code, out, err = _call(argv)
    return Run(code, out, err, output)


def test_run_writes_a_png_of_the_requested_size(png_run):
    assert png_run.code == 0, png_run.err
    with Image.open(png_run.output) as img:
        assert img.format == "PNG"
        assert img.size == scaled_size(CONTENT_SIZE, 64) == (64, 48)
        assert img.mode == "RGB"


def test_run_notes_the_device_and_the_output(png_run):
    assert "Traceback" not in png_run.err
    assert "styleshift: using device cpu" in png_run.err
    assert f"wrote {png_run.output}" in png_run.err
    # Measured over the first steps, before most of the run: the whole run's length.
    estimate = re.search(r"styleshift: about (\d+):(\d\d) in all on this machine", png_run.err)
    assert estimate is not None, png_run.err
    assert png_run.err.index(estimate.group(0)) < png_run.err.index("wrote")


def test_json_report_is_one_object_with_the_facts(png_run):
    report = json.loads(png_run.out)  # the whole of stdout: exactly one JSON document
    assert isinstance(report, dict)
    assert {"output", "options", "scales", "losses", "seconds", "device"} <= set(report)
    assert report["output"] == str(png_run.output)
    assert report["device"] == "cpu"
    assert report["interrupted"] is False
    assert report["seconds"] > 0
    assert set(report["losses"]) == {"content", "style", "tv", "range"}
    assert report["loss"] == pytest.approx(sum(report["losses"].values()), rel=1e-4)
    assert report["scales"] == [
        {
            "size": [64, 48],
            "iterations": 4,
            "seconds": report["scales"][0]["seconds"],
            "loss": report["loss"],
            "tile": None,
        }
    ]
    options = report["options"]
    assert set(options) == {f.name for f in dataclasses.fields(Options)}
    assert options["size"] == 64 and options["iterations"] == [4]
    assert options["multiscale"] is False
    assert options["learning_rate"] == 1.0  # filled in from the optimiser's default


def test_png_metadata_records_the_run(png_run, images):
    meta = json.loads(read_metadata(png_run.output)["styleshift"])
    assert meta["version"] == styleshift.__version__
    assert meta["content"] == _content(images)
    assert meta["styles"] == [_style(images)]
    assert meta["options"] == json.loads(png_run.out)["options"]
    # The options are complete enough to rebuild the run's Options.
    rebuilt = Options(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in meta["options"].items()}
    )
    assert rebuilt.size == 64 and rebuilt.iterations == (4,) and rebuilt.device == "cpu"


# -- formats, quiet ---------------------------------------------------------------------


@pytest.mark.parametrize(("ext", "fmt"), [(".jpg", "JPEG"), (".webp", "WEBP"), (".tif", "TIFF")])
def test_every_format_is_written_and_quiet_is_silent(tmp_path, images, weights_file, ext, fmt):
    output = tmp_path / f"out{ext}"
    argv = ["stylize", _content(images), _style(images), "-o", str(output), "-q"]
    code, out, err = _call([*argv, "--size", "64", "--iterations", "1", "--no-multiscale"])
    assert code == 0, err
    assert out == "" and err == ""
    with Image.open(output) as img:
        assert img.format == fmt
        assert img.size == (64, 48)


# -- existing output --------------------------------------------------------------------


def test_existing_output_is_refused_before_any_work(tmp_path, images, no_engine):
    output = tmp_path / "out.png"
    Image.new("RGB", (5, 5), "red").save(output)
    before = output.read_bytes()
    code, out, err = _call(["stylize", _content(images), _style(images), "-o", str(output), *TINY])
    assert code == 2
    line = _error_line(err)
    assert len(_lines(err)) == 1
    assert "--overwrite" in line and "already exists" in line
    assert output.read_bytes() == before
    assert out == ""


def test_a_file_that_appears_during_the_run_is_kept_and_so_is_the_picture(
    tmp_path, images, weights_file, monkeypatch
):
    output = tmp_path / "out.png"
    real_step = Reporter.step

    def step(self, p):
        real_step(self, p)
        if not output.exists():
            output.write_bytes(b"another program's file")

    monkeypatch.setattr(Reporter, "step", step)
    code, _, err = _call(["stylize", _content(images), _style(images), "-o", str(output), *TINY])
    assert code == 2 and "Traceback" not in err
    assert "exists now" in _error_line(err) and "out-1.png" in _error_line(err)
    assert output.read_bytes() == b"another program's file"
    with Image.open(tmp_path / "out-1.png") as img:
        assert img.size == (64, 48)


def test_a_photo_too_narrow_for_the_size_is_one_line_naming_the_least_size(
    tmp_path, images, weights_file
):
    strip = tmp_path / "strip.png"
    Image.open(_content(images)).resize((800, 16)).save(strip)
    output = tmp_path / "out.png"
    code, _, err = _call(["stylize", str(strip), _style(images), "-o", str(output),
                          "--size", "400", "--iterations", "1"])  # fmt: skip
    assert code == 2
    assert "too narrow" in _error_line(err) and "--size 800 or more" in err
    assert not output.exists()


def test_overwrite_replaces_the_output(tmp_path, images, weights_file):
    output = tmp_path / "out.png"
    Image.new("RGB", (5, 5), "red").save(output)
    argv = ["stylize", _content(images), _style(images), "-o", str(output), "--overwrite"]
    code, _, err = _call([*argv, "-q", *TINY])
    assert code == 0, err
    with Image.open(output) as img:
        assert img.size == (64, 48)
    assert "styleshift" in read_metadata(output)


def test_overwrite_never_replaces_an_input_of_the_run(tmp_path, images, weights_file):
    """`-o photo.jpg --overwrite` on the photo itself (or the painting, a mask or the init
    picture) is a slip, not a wish: refused before any work, the file as it was."""
    photo, painting, mask = tmp_path / "photo.png", tmp_path / "painting.png", tmp_path / "m.png"
    start = tmp_path / "start.png"
    Image.new("RGB", (64, 48), "red").save(photo)
    Image.new("RGB", (64, 48), "blue").save(start)
    shutil.copy(_style(images), painting)
    Image.new("L", (64, 48), 255).save(mask)
    base = ["stylize", str(photo), str(painting), "--mask", str(mask), "--init", str(start),
            "--overwrite", *TINY]  # fmt: skip
    for target in (photo, painting, mask, start, tmp_path / "." / "photo.png"):
        before = target.read_bytes()
        code, _, err = _call([*base, "-o", str(target)])
        assert code == 2 and "is also an input of this run" in _error_line(err), err
        assert target.read_bytes() == before


# -- intermediate images ----------------------------------------------------------------


def test_save_every_writes_the_documented_intermediate_files(tmp_path, images, weights_file):
    output = tmp_path / "paint.png"
    argv = ["stylize", _content(images), _style(images), "-o", str(output), "-q"]
    argv += ["--size", "64", "--start-size", "32", "--iterations", "2", "--save-every", "2"]
    code, _, err = _call(argv)
    assert code == 0, err
    # Scales 32, 45, 64 with 2 steps each: OUTPUT_s<scale>_<step>.<ext> at every 2nd step.
    expected = {"paint_s1_0002.png": 32, "paint_s2_0002.png": 45, "paint_s3_0002.png": 64}
    assert {p.name for p in tmp_path.iterdir()} == {"paint.png", *expected}
    for name, long_side in expected.items():
        with Image.open(tmp_path / name) as img:
            assert img.size == scaled_size(CONTENT_SIZE, long_side)


def test_negative_save_every_is_an_error(tmp_path, images, no_engine):
    output = tmp_path / "out.png"
    argv = ["stylize", _content(images), _style(images), "-o", str(output), "--save-every", "-1"]
    code, _, err = _call(argv)
    assert code == 2
    assert "--save-every" in _error_line(err)
    assert not output.exists()


# -- bad input --------------------------------------------------------------------------


def _bad_files(tmp_path: Path, images: Path) -> dict[str, str]:
    text = tmp_path / "notes.txt"
    text.write_text("this is not a photo\n")
    data = (images / "content" / "tubingen.jpg").read_bytes()
    truncated = tmp_path / "half.jpg"
    truncated.write_bytes(data[: len(data) // 2])
    return {
        "missing": str(tmp_path / "nowhere.jpg"),
        "text": str(text),
        "truncated": str(truncated),
    }


# (id, how to build the command line, fragment the error line must contain)
BAD_INPUT = [
    ("missing-content", lambda c, s, f, o: [f["missing"], s, "-o", o], "not found"),
    ("missing-style", lambda c, s, f, o: [c, f["missing"], "-o", o], "not found"),
    ("text-content", lambda c, s, f, o: [f["text"], s, "-o", o], "not a supported image"),
    ("truncated-content", lambda c, s, f, o: [f["truncated"], s, "-o", o], "truncated"),
    ("unknown-extension", lambda c, s, f, o: [c, s, "-o", o[:-4] + ".xyz"], "extension"),
    (
        "missing-folder",
        lambda c, s, f, o: [c, s, "-o", str(Path(o).parent / "sub" / "out.png")],
        "does not exist",
    ),
    (
        "negative-style-weight",
        lambda c, s, f, o: [c, s, "-o", o, "--style-weight", "-1"],
        "style weight",
    ),
    ("size-zero", lambda c, s, f, o: [c, s, "-o", o, "--size", "0"], "at least 16"),
    (
        "content-layer-typo",
        lambda c, s, f, o: [c, s, "-o", o, "--content-layers", "relu4-2"],
        "did you mean 'relu4_2'",
    ),
    (
        "unknown-preset",
        lambda c, s, f, o: [c, s, "-o", o, "--preset", "fsat"],
        "did you mean 'fast'",
    ),
    ("misspelled-option", lambda c, s, f, o: [c, s, "-o", o, "--sise", "64"], "--sise"),
    (
        "blend-count",
        lambda c, s, f, o: [c, s, "-o", o, "--style-blend", "1,2"],
        "2 blend weights given for 1 style",
    ),
    ("iterations-not-numbers", lambda c, s, f, o: [c, s, "-o", o, "--iterations", "a,b"], "'a,b'"),
]


@pytest.mark.parametrize(
    ("build", "fragment"), [c[1:] for c in BAD_INPUT], ids=[c[0] for c in BAD_INPUT]
)
def test_bad_input_is_one_error_line_exit_2_and_no_output(
    tmp_path, images, weights_file, build, fragment
):
    output = tmp_path / "out.png"
    files = _bad_files(tmp_path, images)
    argv = ["stylize", *build(_content(images), _style(images), files, str(output))]
    code, out, err = _call([*argv, "--device", "cpu"])
    assert code == 2
    line = _error_line(err)
    assert fragment in line, line
    assert out == ""
    written = [p.name for p in tmp_path.rglob("*") if p.suffix in {".png", ".xyz"}]
    assert written == []


@pytest.mark.parametrize(("typo", "meant"), [("--sise", "--size"), ("--optimiser", "--optimizer")])
def test_misspelled_option_suggests_the_right_one(tmp_path, images, typo, meant):
    argv = ["stylize", _content(images), _style(images), "-o", str(tmp_path / "o.png")]
    code, _, err = _call([*argv, typo, "1"])
    assert code == 2
    assert f"did you mean {meant}" in _error_line(err)


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param(["--size", "0"], id="size-zero"),
        pytest.param(["--content-layers", "relu4-2"], id="layer-typo"),
        pytest.param("missing-content", id="missing-content"),
    ],
)
def test_bad_input_is_reported_before_the_network_is_loaded(tmp_path, images, no_engine, extra):
    content = str(tmp_path / "nowhere.jpg") if extra == "missing-content" else _content(images)
    options = [] if extra == "missing-content" else extra
    argv = ["stylize", content, _style(images), "-o", str(tmp_path / "o.png"), *options]
    code, _, err = _call(argv)
    assert code == 2
    _error_line(err)
    assert len(_lines(err)) == 1


# -- weights ----------------------------------------------------------------------------


def test_weights_info_shows_verified_weights(weights_file):
    code, out, _ = _call(["weights", "info"])
    assert code == 0
    assert re.search(r"^\s*verified: True$", out, re.MULTILINE), out
    assert str(weights_file) in out


def test_weights_info_json(weights_file):
    code, out, _ = _call(["weights", "info", "--json"])
    assert code == 0
    facts = json.loads(out)
    assert facts["verified"] is True and facts["exists"] is True
    assert facts["path"] == str(weights_file)
    assert facts["size"] == weights_file.stat().st_size


# -- help -------------------------------------------------------------------------------


def _option_blocks(help_text: str) -> dict[str, str]:
    """Map each option string to its whitespace-normalised help entry."""
    blocks: dict[str, str] = {}
    current: list[str] = []
    for line in [*help_text.splitlines(), ""]:
        if re.match(r"^  -", line) or not line.strip() or not line.startswith(" "):
            if current:
                entry = " ".join(" ".join(current).split())
                head = current[0].strip().split("  ")[0]  # "-o OUTPUT, --output OUTPUT"
                for flag in re.findall(r"(?<![\w-])--?[\w-]+", head):
                    blocks.setdefault(flag, entry)
                current = []
            if re.match(r"^  -", line):
                current = [line]
        elif current:
            current.append(line)
    return blocks


def test_stylize_help_lists_every_option_with_its_default(monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    code, out, _ = _call(["stylize", "--help"])
    assert code == 0
    blocks = _option_blocks(out)
    for f in dataclasses.fields(Options):
        flag = "--" + f.name.replace("_", "-")
        assert flag in blocks, f"{flag} (Options.{f.name}) missing from --help"
        entry = blocks[flag]
        assert f.metadata["help"].split(";")[0].split("(")[0].strip() in entry
        if f.type == "bool" or isinstance(f.default, bool):
            assert f"--no-{f.name.replace('_', '-')}" in out
        if f.default is None:
            assert "(default: " in entry, entry
        else:
            shown = (
                ",".join(str(v) for v in f.default)
                if isinstance(f.default, tuple)
                else str(f.default)
            )
            assert f"(default: {shown})" in entry, entry


def test_help_groups_the_options_by_the_method_they_belong_to(monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    _, out, _ = _call(["stylize", "--help"])
    titles = [out.index(t + ":") for t in cli.arguments._GROUPS.values()]
    assert titles == sorted(titles)  # every method, then the optimisation, then feed-forward
    common, gatys, feedforward = titles
    for f in dataclasses.fields(Options):
        flag = "--" + f.name.replace("_", "-")
        found = re.search(rf"^ +{flag}(?=[ ,\n])", out, re.M)
        assert found, flag
        at = found.start()
        group = f.metadata["method"]
        begins = {"common": common, "gatys": gatys, "feedforward": feedforward}[group]
        ends = {"common": gatys, "gatys": feedforward, "feedforward": len(out)}[group]
        assert begins < at < ends, f"--{f.name} is outside the {group} group"


def test_help_parses_back_to_the_default_options():
    """Parsing no options gives exactly Options() (the CLI's defaults are the API's)."""
    args = cli.build_parser().parse_args(["stylize", "c.jpg", "s.jpg", "-o", "o.png"])
    assert options_from_args(args) == Options()


# -- interruption -----------------------------------------------------------------------


def test_interrupt_saves_the_best_image_and_exits_130(tmp_path, images, weights_file, monkeypatch):
    real_step = Reporter.step

    def step(self, p):
        real_step(self, p)
        if p.done_steps == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(Reporter, "step", step)
    output = tmp_path / "out.png"
    argv = ["stylize", _content(images), _style(images), "-o", str(output), "--json"]
    code, out, err = _call([*argv, "--size", "64", "--iterations", "8", "--no-multiscale"])
    assert code == 130
    assert "Traceback" not in err
    assert "interrupted" in err
    with Image.open(output) as img:
        img.load()
        assert img.format == "PNG"
        assert img.size == (64, 48)
    report = json.loads(out)
    assert report["interrupted"] is True
    assert report["scales"] == []  # the scale was not finished


# -- the real console script ------------------------------------------------------------


def test_console_script_exit_codes_and_no_traceback(tmp_path, images, weights_file):
    script = Path(sys.executable).with_name("styleshift")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "styleshift"]
    env = {**os.environ, "COLUMNS": "100"}
    small = ["--size", "32", "--iterations", "1", "--no-multiscale", "--device", "cpu"]

    output = tmp_path / "ok.png"
    ok = subprocess.run(
        [*command, "stylize", _content(images), _style(images), "-o", str(output), "-q", *small],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout == "" and ok.stderr == ""  # -q: not even a library warning
    with Image.open(output) as img:
        assert img.size == (32, 24)

    data = (images / "content" / "tubingen.jpg").read_bytes()
    truncated = tmp_path / "half.jpg"
    truncated.write_bytes(data[: len(data) // 2])
    bad_output = tmp_path / "bad.png"
    bad = subprocess.run(
        [*command, "stylize", str(truncated), _style(images), "-o", str(bad_output), "-q"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr
    assert len(_lines(bad.stderr)) == 1
    assert bad.stderr.startswith("styleshift: error: content image ")
    assert "half.jpg" in bad.stderr and "truncated" in bad.stderr
    assert not bad_output.exists()
