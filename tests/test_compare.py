"""`styleshift compare`: configurations from presets and sweeps, the report in a real
browser (every picture loaded, both plots present, nothing fetched from outside), bad
inputs."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from PIL import Image

from styleshift.apps.compare import configurations
from styleshift.cli import build_parser, main
from styleshift.cli.arguments import options_from_args

pytestmark = pytest.mark.slow


def _configs(*argv: str) -> list[tuple[str, Any]]:
    args = build_parser().parse_args(["compare", "p.png", "s.png", "-o", "r", *argv])
    return [
        (c.label, c.options)
        for c in configurations(args.presets, args.sweep, options_from_args(args))
    ]


def test_presets_times_sweeps_and_foreign_options_left_out() -> None:
    found = _configs(
        "--presets", "instant,fast", "--sweep", "style_weight=1,3", "--sweep", "size=64,96",
        "--iterations", "20",
    )  # fmt: skip
    labels = [label for label, _ in found]
    assert labels == [
        "instant size=64",
        "instant size=96",
        "fast style_weight=1.0 size=64",
        "fast style_weight=1.0 size=96",
        "fast style_weight=3.0 size=64",
        "fast style_weight=3.0 size=96",
    ]
    instant, fast = found[0][1], found[-1][1]
    assert instant.iterations is None and instant.style_weight == 1.0  # back at defaults
    assert fast.iterations == (20,) and fast.style_weight == 3.0 and fast.size == 96
    lists = _configs("--presets", "fast", "--sweep", "iterations=5,10;20")
    assert [o.iterations for _, o in lists] == [(5, 10), (20,)]
    flags = _configs("--presets", "fast", "--sweep", "multiscale=true,false")
    assert [o.multiscale for _, o in flags] == [True, False]
    modes = _configs("--presets", "instant", "--sweep", "preserve-color=none,luminance")
    assert [o.preserve_color for _, o in modes] == ["none", "luminance"]


@pytest.mark.parametrize(
    ("sweep", "message"),
    [
        ("style_wieght=1,2", "did you mean 'style_weight'?"),
        ("style_weight", "must be OPTION=V1,V2"),
        ("style_weight=abc", "'abc' is not a valid value"),
        ("style_weight=", "has no values"),
    ],
)
def test_bad_sweeps_get_one_line_errors(
    sweep: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Image.new("RGB", (64, 64)).save(tmp_path / "p.png")
    code = main(["compare", str(tmp_path / "p.png"), str(tmp_path / "p.png"),
                 "-o", str(tmp_path / "r"), "--sweep", sweep])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1


def test_a_non_empty_report_folder_is_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Image.new("RGB", (64, 64)).save(tmp_path / "p.png")
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "mine.txt").write_text("keep")
    code = main(["compare", str(tmp_path / "p.png"), str(tmp_path / "p.png"),
                 "-o", str(tmp_path / "r"), "--presets", "instant"])  # fmt: skip
    assert code == 2 and "not empty" in capsys.readouterr().err
    assert (tmp_path / "r" / "mine.txt").read_text() == "keep"


def test_a_configuration_that_cannot_run_keeps_the_report_of_those_before_it(
    images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Found only once runs have started (here a size beyond any memory): the finished
    runs are kept in the report, with the reason on the page and in one line."""
    photo, painting = images / "content" / "tubingen.jpg", images / "style" / "picabia_udnie.jpg"
    report = tmp_path / "r"
    argv = ["compare", str(photo), str(painting), "-o", str(report), "--presets", "instant", "-q"]
    assert main([*argv, "--sweep", "size=64,40000"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "too small for a 40000x30000 picture" in err
    assert f"the report of the 1 run before it: {report / 'index.html'}" in err
    page = (report / "index.html").read_text()
    assert "Stopped:" in page and "picabia_udnie__instant_size=64.png" in page
    assert (report / "results" / "picabia_udnie__instant_size=64.png").is_file()
    # When nothing ran, the folder it made is taken back, so the command can be rerun.
    fresh = tmp_path / "fresh"
    argv[argv.index(str(report))] = str(fresh)
    assert main([*argv, "--sweep", "size=40000,64"]) == 2
    assert "report" not in capsys.readouterr().err and not fresh.exists()


@pytest.mark.parametrize("where", ["inputs/p.png", "p.png", "results/m.png"])
def test_a_report_folder_holding_an_input_is_refused_even_with_overwrite(
    where: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A photo, painting or mask kept in the report folder (say, its inputs/ from an
    earlier report) is never copied onto itself or replaced: one line, exit 2."""
    report = tmp_path / "r"
    picture = report / where
    picture.parent.mkdir(parents=True)
    Image.new("RGB", (64, 64), (200, 30, 30)).save(picture)
    before = picture.read_bytes()
    argv = ["compare", str(picture), str(picture), "-o", str(report), "--overwrite",
            "--presets", "instant"]  # fmt: skip
    if where.startswith("results"):  # as a mask, with a photo from elsewhere
        Image.new("RGB", (64, 64)).save(tmp_path / "p.png")
        argv[1:3] = [str(tmp_path / "p.png"), str(tmp_path / "p.png")]
        argv += ["--mask", str(picture)]
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2 and "is also an input of this run" in err and len(err.splitlines()) == 1
    assert picture.read_bytes() == before


def test_the_report_shows_every_picture_and_plot_in_a_browser(
    images: Path, weights_file: Path, tmp_path: Path, chromium: dict[str, Any]
) -> None:
    from playwright.sync_api import sync_playwright

    photo = images / "content" / "kodim23_parrots.png"
    painting = images / "style" / "picabia_udnie.jpg"
    elsewhere = tmp_path / "made-elsewhere.png"
    Image.open(photo).convert("RGB").resize((96, 64)).save(elsewhere)
    report = tmp_path / "report"
    code = main(["compare", str(photo), str(painting), "-o", str(report), "-q",
                 "--presets", "instant,fast", "--size", "96", "--sweep", "style_weight=1,3",
                 "--iterations", "8", "--outputs", str(elsewhere)])  # fmt: skip
    assert code == 0
    assert sorted(p.name for p in (report / "results").iterdir()) == [
        "made-elsewhere.png",
        "picabia_udnie__fast_style_weight=1.0.png",
        "picabia_udnie__fast_style_weight=3.0.png",
        "picabia_udnie__instant.png",
    ]
    page_file = report / "index.html"
    text = page_file.read_text()
    assert "styleshift compare" in text and "--sweep style_weight=1,3" in text
    assert "in mask" not in text  # the mask's columns only where a run had one
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(**chromium)
        page = browser.new_page()
        page.on("request", lambda r: requests.append(r.url))
        page.goto(page_file.as_uri())
        page.wait_for_load_state("load")
        loaded = page.eval_on_selector_all(
            "img", "els => els.map(e => [e.getAttribute('src'), e.complete && e.naturalWidth])"
        )
        rows = page.locator("table").first.locator("tr").count()
        best = page.locator("td.best").count()
        browser.close()
    sources = {src: width for src, width in loaded}
    assert all(width > 0 for width in sources.values()), sources
    assert {"tradeoff.svg", "loss.svg", "inputs/kodim23_parrots.png"} <= set(sources)
    assert len([s for s in sources if s.startswith("results/")]) == 4
    assert rows == 1 + 4 and best > 0
    assert all(urlparse(u).scheme == "file" for u in requests), requests
    facts = json.loads((report / "results.json").read_text())
    assert len(facts["runs"]) == 4 and facts["command"].startswith("styleshift compare")
    options = text.split("<summary>Options of every run</summary><pre>")[1].split("</pre>")[0]
    recorded = json.loads(html.unescape(options))
    assert recorded["fast style_weight=3.0 · picabia_udnie.jpg"]["style_weight"] == 3.0


def test_a_run_with_a_mask_is_scored_inside_and_outside_it(
    images: Path, weights_file: Path, tmp_path: Path
) -> None:
    photo = images / "content" / "kodim23_parrots.png"
    painting = images / "style" / "picabia_udnie.jpg"
    mask = tmp_path / "left.png"
    left = Image.new("L", (96, 64), 0)
    left.paste(255, (0, 0, 48, 64))  # paint the left half
    left.save(mask)
    report = tmp_path / "report"
    code = main(["compare", str(photo), str(painting), "-o", str(report), "-q",
                 "--presets", "instant", "--size", "96", "--mask", str(mask)])  # fmt: skip
    assert code == 0
    (run,) = json.loads((report / "results.json").read_text())["runs"]
    assert run["evaluation"]["kept_psnr"] > 30  # instant keeps the photo outside exactly
    assert run["evaluation"]["styles"][0]["region_distance"] > 0
    text = (report / "index.html").read_text()
    assert "Gram distance in mask" in text and "PSNR outside mask" in text
