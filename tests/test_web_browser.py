"""End to end: `styleshift serve` driven by a real headless Chromium through Playwright
(the `chromium` fixture of conftest.py)."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import pytest
from PIL import Image

from optional import need

need("gradio")
playwright_api = need("playwright.sync_api")

LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
# Set to a path to save a screenshot of the page mid-run (how docs/web.png is made).
SCREENSHOT = os.environ.get("STYLESHIFT_WEB_SCREENSHOT")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(weights_file: Path, images: Path, launch_server: Any) -> Iterator[str]:
    """`styleshift serve` on a free loopback port, stopped with Ctrl-C (SIGINT) at the end."""
    proc, url = launch_server(
        ["-m", "styleshift", "serve", "--device", "cpu", "--gallery", str(images / "style")],
        {"STYLESHIFT_HOME": str(weights_file.parent)},
    )
    assert urlparse(url).hostname == "127.0.0.1"
    try:
        yield url
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail("styleshift serve did not stop on Ctrl-C")
        assert proc.returncode == 0, out
        assert "stopped" in out


def test_stylise_in_the_browser(
    chromium: dict[str, Any], server: str, images: Path, tmp_path: Path
) -> None:
    requests: list[str] = []
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(**chromium)
        page = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        page.on("request", lambda r: requests.append(r.url))
        page.goto(server)
        page.locator("#content input[type=file]").set_input_files(
            images / "content" / "tubingen.jpg"
        )
        page.locator("#style-1 input[type=file]").set_input_files(
            images / "style" / "vangogh_starry_night.jpg"
        )
        _fill(page, "#opt-size input[type=number]", "64")
        page.get_by_text("Advanced").click()
        _fill(page, "#opt-start-size input", "32")
        _fill(page, "#opt-iterations textarea", "12")
        page.locator("#stylise").click()

        # At least one intermediate picture while the run is under way.
        page.locator("#status").get_by_text(re.compile(r"step \d+/\d+")).wait_for(timeout=60_000)
        page.locator("#preview img").wait_for(timeout=60_000)
        if SCREENSHOT:
            page.screenshot(path=SCREENSHOT)
        page.locator("#status").get_by_text(re.compile("done in")).wait_for(timeout=120_000)

        saved = _download_png(page, tmp_path)
        browser.close()

    data = saved.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "PNG"
        assert max(im.size) == 64
        assert "styleshift" in im.info  # the options used travel with the picture

    outside = [u for u in requests if urlparse(u).scheme in ("http", "https", "ws", "wss")
               and urlparse(u).hostname not in LOOPBACK]  # fmt: skip
    assert not outside, f"the page reached outside: {outside}"
    assert requests, "no requests recorded"


def test_instant_in_the_browser(chromium: dict[str, Any], server: str, images: Path) -> None:
    """Choosing instant hides the optimisation's fields and shows the strength; the picture
    comes in one pass."""
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(**chromium)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(server)
        page.locator("#content input[type=file]").set_input_files(
            images / "content" / "kodim23_parrots.png"
        )
        page.locator("#style-1 input[type=file]").set_input_files(
            images / "style" / "hokusai_great_wave.jpg"
        )
        assert not page.locator("#opt-strength").is_visible()
        page.locator("#opt-preset").get_by_text("instant", exact=True).click()
        page.locator("#opt-strength").wait_for(state="visible", timeout=10_000)
        assert not page.locator("#opt-style-weight").is_visible()
        _fill(page, "#opt-size input[type=number]", "128")
        page.locator("#stylise").click()
        page.locator("#status").get_by_text(re.compile("done in")).wait_for(timeout=60_000)
        page.locator("#preview img").wait_for(timeout=10_000)
        browser.close()


def test_paint_where_the_styles_go_in_the_browser(
    chromium: dict[str, Any], server: str, images: Path, tmp_path: Path
) -> None:
    """The photo appears in the drawing editor; a brush stroke over it is the region."""
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(**chromium)
        page = _instant_page(browser, server, images)
        page.get_by_text("Paint only part of the photo").click()
        page.locator("#region input").click()
        page.get_by_role("option", name="where I paint on the photo").click()
        _paint_strokes(page, "#drawing")
        saved = _stylise_and_download(page, tmp_path)
        browser.close()
    with Image.open(saved) as im:
        assert "painted on the page" in im.info["styleshift"]
        photo = Image.open(images / "content" / "kodim23_parrots.png").convert("RGB")
        photo = photo.resize(im.size, Image.Resampling.LANCZOS)
        changed = np.abs(np.asarray(im.convert("RGB"), float) - np.asarray(photo, float))
    # The stroke is painted and the rest keeps the photo: a band, not all or nothing.
    share = float((changed.max(axis=2) > 24).mean())
    assert 0.05 < share < 0.5, share


def test_take_the_style_from_part_of_the_painting_in_the_browser(
    chromium: dict[str, Any], server: str, images: Path, tmp_path: Path
) -> None:
    """Each painting appears in its own drawing editor once it is chosen; strokes over it
    say where its style comes from."""
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(**chromium)
        page = _instant_page(browser, server, images)
        page.get_by_text("Take each style from part of its painting").click()
        assert not page.locator("#painting-drawing-2").is_visible()  # no second painting
        _paint_strokes(page, "#painting-drawing-1")
        saved = _stylise_and_download(page, tmp_path)
        browser.close()
    with Image.open(saved) as im:
        assert '"style_mask": ["painted on the page"]' in im.info["styleshift"]


def _instant_page(browser: Any, server: str, images: Path) -> Any:
    """A tall page with a photo and a painting, set to a small instant picture."""
    page = browser.new_page(viewport={"width": 1280, "height": 1600}, accept_downloads=True)
    page.goto(server)
    page.locator("#content input[type=file]").set_input_files(
        images / "content" / "kodim23_parrots.png"
    )
    page.locator("#style-1 input[type=file]").set_input_files(
        images / "style" / "hokusai_great_wave.jpg"
    )
    page.locator("#opt-preset").get_by_text("instant", exact=True).click()
    _fill(page, "#opt-size input[type=number]", "128")
    return page


def _paint_strokes(page: Any, editor: str) -> None:
    """Three brush strokes across the middle of the picture an editor shows centred."""
    canvas = page.locator(f"{editor} canvas").first
    canvas.wait_for(state="visible", timeout=10_000)
    canvas.scroll_into_view_if_needed()
    page.locator(f"{editor} button[aria-label='Brush']").click()
    box = canvas.bounding_box()
    assert box is not None
    for offset in (0.0, 0.03, 0.06):
        page.mouse.move(box["x"] + box["width"] * (0.4 + offset), box["y"] + box["height"] * 0.3)
        page.mouse.down()
        for step in range(1, 11):
            page.mouse.move(box["x"] + box["width"] * (0.4 + offset + 0.02 * step),
                            box["y"] + box["height"] * (0.3 + 0.04 * step))  # fmt: skip
        page.mouse.up()


def _stylise_and_download(page: Any, folder: Path) -> Path:
    page.locator("#stylise").click()
    page.locator("#status").get_by_text(re.compile("done in")).wait_for(timeout=60_000)
    return _download_png(page, folder)


def _download_png(page: Any, folder: Path) -> Path:
    """The finished picture, through the page's download link."""
    with page.expect_download() as info:
        page.locator("#downloads a[download$='.png']").first.click()
    saved = folder / "result.png"
    info.value.save_as(saved)
    return saved


def _fill(page: object, selector: str, value: str) -> None:
    box = page.locator(selector).first  # type: ignore[attr-defined]
    box.fill(value)
    box.press("Tab")
