"""The web page's handlers through the Python API: uploads, options, jobs, cancellation."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from optional import need
from styleshift import InputError, OptionError, Options, Result, StyleTransfer, cli

need("gradio")

from styleshift.apps import web  # noqa: E402 (after the check for Gradio)
from styleshift.apps.jobs import Job, Update, follow  # noqa: E402

TINY = {"size": 48, "start_size": 32, "iterations": "3"}


@pytest.fixture
def uploads(tmp_path: Path) -> Path:
    folder = tmp_path / "uploads"
    folder.mkdir()
    return folder


@pytest.fixture
def stylist(engine: StyleTransfer, uploads: Path, tmp_path: Path) -> web.Stylist:
    config = web.WebConfig(max_pixels=1_000_000, max_size=256, temp_dir=tmp_path / "temp")
    return web.Stylist(engine, config, uploads)


def _upload(uploads: Path, source: Path, name: str | None = None) -> dict[str, str]:
    """What Gradio hands over for an upload: a file in its folder and the visitor's name."""
    target = uploads / f"{len(list(uploads.iterdir()))}-{source.name}"
    shutil.copy(source, target)
    return {"path": str(target), "orig_name": name or source.name}


@pytest.fixture
def photo(images: Path, uploads: Path) -> dict[str, str]:
    return _upload(uploads, images / "content" / "tubingen.jpg")


@pytest.fixture
def painting(images: Path, uploads: Path) -> dict[str, str]:
    return _upload(uploads, images / "style" / "vangogh_starry_night.jpg")


# -- the form ---------------------------------------------------------------------------


def test_form_values_become_options() -> None:
    options = web.options_from_form(
        {"size": 64.0, "iterations": "5, 3", "learning_rate": 0, "style_layer_weights": "",
         "seed": 7, "preserve_color": "luminance", "multiscale": False}
    )  # fmt: skip
    assert options.size == 64 and isinstance(options.size, int)
    assert options.iterations == (5, 3)
    assert options.learning_rate is None  # an empty number box means the default
    assert options.style_layer_weights is None
    assert (options.seed, options.preserve_color, options.multiscale) == (7, "luminance", False)
    # The time choice: "no limit" sends an empty value, a limit its seconds.
    assert web.options_from_form({"time": ""}).time is None
    assert web.options_from_form({"time": "120"}).time == 120.0


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"iterations": "3,x"}, "iterations: '3,x' is not a valid value"),
        ({"seed": 1.5}, "seed: '1.5' is not a valid value"),
        ({"sise": 64}, "did you mean 'size'"),
    ],
)
def test_bad_form_values_get_one_line(form: dict[str, object], message: str) -> None:
    with pytest.raises(OptionError, match=message):
        web.options_from_form(form)


def test_labels_are_the_cli_help_texts() -> None:
    assert web._help("tv_weight") == "weight of the total variation (smoothness) term"


# -- bad requests -------------------------------------------------------------------------


def test_a_non_image_is_refused_by_its_own_name(
    stylist: web.Stylist, uploads: Path, painting: dict[str, str], tmp_path: Path
) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a picture")
    bad = _upload(uploads, text, name="holiday.jpg")
    with pytest.raises(InputError) as caught:
        stylist.job(bad, [(painting, 1.0)], TINY)
    message = str(caught.value)
    assert message.startswith("content image 'holiday.jpg' is not a supported image")
    assert str(uploads) not in message  # no server paths in messages
    assert "\n" not in message


def test_a_truncated_image_is_refused(
    stylist: web.Stylist, uploads: Path, photo: dict[str, str], images: Path, tmp_path: Path
) -> None:
    data = (images / "style" / "vangogh_starry_night.jpg").read_bytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"style image 'cut.jpg' is truncated or corrupt"):
        stylist.job(photo, [(_upload(uploads, cut), 1.0)], TINY)


def test_a_huge_image_is_refused(
    stylist: web.Stylist, uploads: Path, painting: dict[str, str], tmp_path: Path
) -> None:
    big = tmp_path / "big.png"
    Image.new("RGB", (1200, 1000)).save(big)  # 1.2 MP over this server's 1 MP
    with pytest.raises(InputError, match=r"'big.png' is 1200x1000 = 1,200,000 pixels, more"):
        stylist.job(_upload(uploads, big), [(painting, 1.0)], TINY)


def test_an_output_over_the_size_limit_is_refused(
    stylist: web.Stylist, photo: dict[str, str], painting: dict[str, str]
) -> None:
    with pytest.raises(OptionError, match="size 512 is more than this server's limit of 256"):
        stylist.job(photo, [(painting, 1.0)], {"size": 512})


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"style_scale": 3.0}, "style scale 3 is more than this server's limit of 2"),
        ({"iterations": "5,2000"}, "2000 iterations is more than this server's limit of 1000"),
        ({"time": 900}, "a time of 900 s is more than this server's limit of 600 s"),
    ],
)
def test_requests_past_the_servers_limits_are_refused(
    stylist: web.Stylist,
    photo: dict[str, str],
    painting: dict[str, str],
    form: dict[str, object],
    message: str,
) -> None:
    with pytest.raises(OptionError, match=message):
        stylist.job(photo, [(painting, 1.0)], {"size": 64, **form})


def test_requests_are_refused_while_the_upload_space_is_full(
    engine: StyleTransfer, uploads: Path, photo: dict[str, str], painting: dict[str, str],
    tmp_path: Path,
) -> None:  # fmt: skip
    temp = tmp_path / "temp"
    config = web.WebConfig(max_size=256, temp_dir=temp, max_uploads_mb=1)
    stylist = web.Stylist(engine, config, uploads)
    stylist.job(photo, [(painting, 1.0)], TINY)  # room left
    (temp / "big.bin").write_bytes(bytes(1_100_000))
    with pytest.raises(OptionError, match="space for uploads is full"):
        stylist.job(photo, [(painting, 1.0)], TINY)


def test_server_paths_from_the_client_are_refused(
    stylist: web.Stylist, painting: dict[str, str], images: Path
) -> None:
    outside = {"path": str(images / "content" / "tubingen.jpg"), "orig_name": "x.jpg"}
    for value in (outside, str(images / "content" / "tubingen.jpg"), {"path": "/etc/passwd"}):
        with pytest.raises(InputError, match="was not uploaded through this page"):
            stylist.job(value, [(painting, 1.0)], TINY)


def test_a_region_paints_part_of_the_photo_and_an_uploaded_mask_keeps_its_name(
    stylist: web.Stylist, photo: dict[str, str], painting: dict[str, str], uploads: Path,
    tmp_path: Path,
) -> None:  # fmt: skip
    instant = {"preset": "instant", "size": 64}
    sky = tmp_path / "sky.png"
    Image.new("L", (64, 48), 0).save(sky)
    with pytest.raises(InputError, match="no mask given; upload one"):
        stylist.job(photo, [(painting, 1.0)], instant, "where the uploaded mask is white", None)
    with pytest.raises(OptionError, match="unknown region"):
        stylist.job(photo, [(painting, 1.0)], instant, "/etc/passwd", None)
    outside = {"path": str(sky), "orig_name": "sky.png"}  # a server path: refused
    with pytest.raises(InputError, match="was not uploaded through this page"):
        stylist.job(photo, [(painting, 1.0)], instant, "where the uploaded mask is white", outside)
    mask = _upload(uploads, sky, name="my sky.png")
    job = stylist.job(photo, [(painting, 1.0)], instant, "where the uploaded mask is white", mask)

    async def watch() -> None:
        async for _ in follow(job, poll=0.01):
            pass

    asyncio.run(watch())
    assert job.result is not None and job.result.notes  # an all-black mask: nothing painted
    done = stylist.save(job.result, photo, [painting], mask)
    settings = json.loads(done.options.read_text())["options"]
    assert settings["mask"] == ["my sky.png"] and str(uploads) not in done.options.read_text()
    auto = stylist.job(photo, [(painting, 1.0)], instant, "the subject (found automatically)")
    assert auto._options.mask == ("auto:subject",)
    # The form has no mask field: a path typed by a client never becomes a mask.
    assert "mask" in web.PAGE_OPTIONS


def test_a_region_painted_on_the_photo_paints_there_and_keeps_the_rest(
    stylist: web.Stylist, photo: dict[str, str], painting: dict[str, str], uploads: Path,
    tmp_path: Path,
) -> None:  # fmt: skip
    """The drawing editor hands over its layers as files; what the brush touched paints."""
    instant = {"preset": "instant", "size": 64, "precision": "float32"}
    drawn = "where I paint on the photo"
    strokes = Image.new("RGBA", (128, 96), (0, 0, 0, 0))
    strokes.paste((255, 255, 255, 255), (0, 0, 64, 96))  # the left half painted
    strokes.save(tmp_path / "layer.png")
    Image.new("RGBA", (128, 96), (0, 0, 0, 0)).save(tmp_path / "empty.png")
    layer = _upload(uploads, tmp_path / "layer.png")["path"]
    empty = _upload(uploads, tmp_path / "empty.png")["path"]
    with pytest.raises(InputError, match="nothing is painted on the photo"):
        stylist.job(photo, [(painting, 1.0)], instant, drawn, {"layers": [empty]})
    with pytest.raises(InputError, match="nothing is painted on the photo"):
        stylist.job(photo, [(painting, 1.0)], instant, drawn, None)
    with pytest.raises(InputError, match="was not uploaded through this page"):
        stylist.job(
            photo, [(painting, 1.0)], instant, drawn, {"layers": [str(tmp_path / "layer.png")]}
        )
    job = stylist.job(photo, [(painting, 1.0)], instant, drawn, {"layers": [empty, layer]})

    async def watch() -> None:
        async for _ in follow(job, poll=0.01):
            pass

    asyncio.run(watch())
    assert job.result is not None
    out = np.asarray(job.result.image.convert("RGB"), np.float64)
    own = np.asarray(
        Image.open(photo["path"])
        .convert("RGB")
        .resize(job.result.image.size, Image.Resampling.LANCZOS),
        np.float64,
    )
    w = out.shape[1]
    kept = np.abs(out[:, w // 2 + 6 :] - own[:, w // 2 + 6 :]).mean()
    painted = np.abs(out[:, : w // 2 - 6] - own[:, : w // 2 - 6]).mean()
    assert kept < 2 and painted > 10 * kept + 5, (kept, painted)
    done = stylist.save(job.result, photo, [painting], web.DRAWN_NAME)
    settings = json.loads(done.options.read_text())["options"]
    assert settings["mask"] == ["painted on the page"]


def _result(job: Job) -> Result:
    asyncio.run(_finish(job))
    assert job.result is not None, job.error
    return job.result


def test_a_style_taken_from_the_part_of_its_painting_drawn_on(
    stylist: web.Stylist, photo: dict[str, str], painting: dict[str, str], uploads: Path,
    tmp_path: Path,
) -> None:  # fmt: skip
    """Drawing over the left of a painting warm on the left and cool on the right turns
    the photo warm, over its right cool; an undrawn painting is taken whole, and the
    saved options say which was which."""
    noise = np.random.default_rng(0).uniform(0, 1, (96, 64, 1))
    warm = np.concatenate([0.4 + 0.6 * noise, 0.3 * noise, 0.1 * noise], axis=2)
    cool = np.concatenate([0.1 * noise, 0.3 * noise, 0.4 + 0.6 * noise], axis=2)
    split = Image.fromarray((np.concatenate([warm, cool], axis=1) * 255).astype(np.uint8))
    split.save(tmp_path / "split.png")
    two = _upload(uploads, tmp_path / "split.png")
    instant = {"preset": "instant", "size": 64, "precision": "float32"}
    redness = {}
    for side in ("left", "right"):
        strokes = Image.new("RGBA", (128, 96), (0, 0, 0, 0))
        strokes.paste((255, 255, 255, 255), (0, 0, 64, 96) if side == "left" else (64, 0, 128, 96))
        strokes.save(tmp_path / f"{side}.png")
        drawn = {"layers": [_upload(uploads, tmp_path / f"{side}.png")["path"]]}
        job = stylist.job(photo, [(two, 1.0)], instant, painting_drawings=[drawn])
        result = _result(job)
        rgb = np.asarray(result.image.convert("RGB"), np.float64)
        redness[side] = float(rgb[..., 0].mean() - rgb[..., 2].mean())
    assert redness["left"] > 100 and redness["right"] < -100, redness
    # Two styles, one drawn on: the other is taken whole, and nothing drawn means no mask.
    job = stylist.job(photo, [(two, 1.0), (painting, 1.0)], instant, painting_drawings=[drawn])
    assert [m.getextrema() for m in job._options.style_mask] == [(0, 255), (255, 255)]
    done = stylist.save(_result(job), photo, [two, painting])
    settings = json.loads(done.options.read_text())["options"]
    assert settings["style_mask"] == ["painted on the page", "the whole painting"]
    plain = stylist.job(photo, [(two, 1.0)], instant, painting_drawings=[{"layers": []}, None])
    assert plain._options.style_mask is None
    with pytest.raises(InputError, match="was not uploaded through this page"):
        stylist.job(photo, [(two, 1.0)], instant,
                    painting_drawings=[{"layers": [str(tmp_path / "left.png")]}])  # fmt: skip


def test_missing_images_are_asked_for(
    stylist: web.Stylist, photo: dict[str, str], painting: dict[str, str]
) -> None:
    with pytest.raises(InputError, match="no content image given; upload one"):
        stylist.job(None, [(painting, 1.0)], TINY)
    with pytest.raises(OptionError, match="no style image given"):
        stylist.job(photo, [(None, 1.0), (None, 1.0)], TINY)


# -- jobs ---------------------------------------------------------------------------------


def _first_update(job: Job, timeout: float = 60) -> list[Update]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        updates = job.drain()
        if updates:
            return updates
        time.sleep(0.02)
    raise AssertionError("no progress from the job")


@pytest.mark.slow
def test_a_job_runs_and_its_result_is_saved(
    stylist: web.Stylist, photo: dict[str, str], painting: dict[str, str]
) -> None:
    job = stylist.job(photo, [(painting, 2.0), (painting, 1.0)], TINY | {"seed": 3})

    async def watch() -> list[Update]:
        return [u async for u in follow(job, poll=0.01)]

    updates = asyncio.run(watch())
    assert updates[-1].done and updates[-1].status.startswith("done in")
    assert any("step" in u.status for u in updates[:-1])
    assert any(u.preview is not None for u in updates[:-1])  # pictures while it forms
    assert job.result is not None and max(job.result.image.size) == 48
    assert job.result.options.style_blend == (2.0, 1.0)

    done = stylist.save(job.result, photo, [painting, painting])
    assert done.image.name == "tubingen-styled.png"
    with Image.open(done.image) as im:
        assert im.format == "PNG" and max(im.size) == 48
        facts = json.loads(im.info["styleshift"])
    assert facts == json.loads(done.options.read_text())
    assert facts["content"] == "tubingen.jpg" and facts["options"]["seed"] == 3


@pytest.mark.slow
def test_instant_jobs_and_the_instant_preview_of_an_optimisation(
    stylist: web.Stylist, photo: dict[str, str], painting: dict[str, str]
) -> None:
    async def watch(job: Job) -> list[Update]:
        return [u async for u in follow(job, poll=0.01)]

    # The hidden optimisation fields may still hold values from before a switch.
    form = {"preset": "instant", "size": 64, "iterations": "7", "strength": 0.5}
    job = stylist.job(photo, [(painting, None)], form)
    updates = asyncio.run(watch(job))
    assert updates[-1].done and job.result is not None
    assert job.result.options.method == "adain" and job.result.options.strength == 0.5
    assert max(job.result.image.size) == 64

    job = stylist.job(photo, [(painting, None)], TINY)
    updates = asyncio.run(watch(job))
    first_picture = next(u for u in updates if u.preview is not None)
    assert first_picture.status == "instant preview; refining"
    assert job.result is not None and job.result.options.method == "gatys"


def _long_job(stylist: web.Stylist, photo: object, painting: object, **kw: float) -> Job:
    options = Options(size=64, start_size=64, iterations=(500,))
    content = web.load_upload(photo, stylist.uploads, "content", 10**7)
    style = web.load_upload(painting, stylist.uploads, "style", 10**7)
    return Job(stylist.engine, content, [style], options, **kw)


@pytest.mark.slow
def test_cancel_stops_the_cpu_work(
    stylist: web.Stylist, photo: dict[str, str], painting: dict[str, str]
) -> None:
    job = _long_job(stylist, photo, painting)
    job.start()
    _first_update(job)
    job.cancel()
    steps = job.steps
    assert job.join(timeout=10), "the engine kept running after cancel"
    assert job.cancelled and job.result is None
    assert job.steps <= steps + 1  # at most the step already under way
    assert job.drain()[-1] == Update("cancelled", done=True)


@pytest.mark.slow
def test_an_abandoned_job_stops(
    stylist: web.Stylist, photo: dict[str, str], painting: dict[str, str]
) -> None:
    job = _long_job(stylist, photo, painting, abandon_after=0.5)
    job.start()  # and nobody watches
    assert job.join(timeout=15), "an abandoned job kept running"
    assert job.cancelled


@pytest.mark.slow
def test_leaving_the_page_cancels_the_job(
    stylist: web.Stylist, photo: dict[str, str], painting: dict[str, str]
) -> None:
    """Gradio cancels the handler's task on Cancel and on disconnect; the job follows."""
    job = _long_job(stylist, photo, painting)

    async def visit() -> None:
        async def watch() -> None:
            async for _ in follow(job, poll=0.01):
                pass

        task = asyncio.create_task(watch())
        deadline = time.monotonic() + 120
        while job.steps == 0:
            assert time.monotonic() < deadline, "the job took no step in 120 s"
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(visit())
    assert job.join(timeout=10), "the engine kept running after the visitor left"
    assert job.cancelled


# -- the app and the command ------------------------------------------------------------------


def test_the_page_builds(engine: StyleTransfer, tmp_path: Path, images: Path) -> None:
    config = web.WebConfig(temp_dir=tmp_path, gallery=images / "style")
    demo = web.build_app(engine, config)
    assert demo.title == "styleshift"
    copied = sorted(p.name for p in (tmp_path / "gallery").iterdir())
    assert copied == sorted(p.name for p in (images / "style").glob("*.jpg"))


def test_bad_server_settings_get_one_line(tmp_path: Path) -> None:
    with pytest.raises(OptionError, match="concurrency must be at least 1"):
        web.WebConfig(concurrency=0).check()
    with pytest.raises(OptionError, match="is not a directory"):
        web.WebConfig(gallery=tmp_path / "none").check()
    with pytest.raises(OptionError, match="max queue must be at least 1"):
        web.WebConfig(max_queue=0).check()


def test_serve_without_gradio_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import styleshift.apps

    monkeypatch.setitem(sys.modules, "gradio", None)
    monkeypatch.delitem(sys.modules, "styleshift.apps.web")
    monkeypatch.delattr(styleshift.apps, "web")
    assert cli.main(["serve"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("styleshift: error: the web page needs Gradio")
    assert "pip install 'styleshift[web]'" in err and err.count("\n") == 1


@pytest.mark.slow
def test_results_older_than_cleanup_after_are_removed(
    engine: StyleTransfer, uploads: Path, tmp_path: Path, photo: dict[str, str],
    painting: dict[str, str],
) -> None:  # fmt: skip
    config = web.WebConfig(max_size=256, temp_dir=tmp_path / "temp", cleanup_after=0.5)
    stylist = web.Stylist(engine, config, uploads)
    form = {"preset": "instant", "size": 64}
    results = []
    for _ in range(2):
        job = stylist.job(photo, [(painting, None)], form)
        asyncio.run(_finish(job))
        assert job.result is not None
        results.append(stylist.save(job.result, photo, [painting]))
        time.sleep(0.7)
    assert not results[0].image.exists()  # swept when the second was saved
    assert results[1].image.exists()


async def _finish(job: Job) -> None:
    async for _ in follow(job, poll=0.01):
        pass


@pytest.mark.parametrize(("host", "warned"), [("0.0.0.0", True), ("127.0.0.1", False),
                                              ("localhost", False), ("::1", False)])  # fmt: skip
def test_serving_beyond_this_machine_warns_that_the_page_has_no_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], weights_file: Path,
    host: str, warned: bool,
) -> None:  # fmt: skip
    from styleshift import StyleshiftError, cli

    def stop(*args: object, **kwargs: object) -> None:
        raise StyleshiftError("not serving in a test")

    monkeypatch.setattr(web, "serve", stop)
    monkeypatch.setenv("STYLESHIFT_HOME", str(weights_file.parent))
    assert cli.main(["serve", "--host", host, "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert ("has no authentication" in err) is warned
