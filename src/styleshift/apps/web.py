"""The local web page, `styleshift serve`: a Gradio app over the same API as the CLI.

Only what is about the web lives here: the form (built from the fields of `Options`, so
its labels are the CLI's help texts), uploads and their limits, the queue, live previews
and cancellation (see `jobs`). One engine, loaded once, serves every visitor.
"""

from __future__ import annotations

import os

# Gradio reads these when it is imported and when the app starts: the page must work
# without the internet and tell nobody about its use.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"

import asyncio
import contextlib
import dataclasses
import html
import json
import shutil
import tempfile
import threading
import time
import typing
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image, ImageChops

from ..core.errors import InputError, OptionError, StyleshiftError
from ..core.options import (
    FEEDFORWARD,
    FIELD_METHODS,
    INIT_STARTS,
    Options,
    method_of,
    resolve_options,
    without_foreign,
)
from ..core.results import Result
from ..core.settings_text import check_names, field_type, parse_value
from ..io.files import provenance, write_text
from ..io.image import INPUT_FORMATS, load_image, save_image, split_alpha
from ..io.media import kind_of
from ..transfer import StyleTransfer
from .jobs import Job, Update, follow

MAIN_ROWS = (
    ("preset", "preserve_color", "time"),
    ("size", "style_weight", "strength", "seed"),
)
TIME_CHOICES = (30, 60, 120, 300, 600)  # seconds offered for --time
MAIN_OPTIONS = tuple(name for row in MAIN_ROWS for name in row)
# The device, its arithmetic and the memory budget are the server's choice; blend
# weights sit next to each style image.
SERVER_OPTIONS = ("device", "precision", "max_memory", "style_blend", "model")
# Where the styles paint and come from: the page's own choices, uploads and drawings, never
# a path typed in a form.
PAGE_OPTIONS = ("mask", "style_mask")
REGIONS = {
    "the whole picture": None,
    "the subject (found automatically)": "auto:subject",
    "all but the subject (found automatically)": "auto:background",
    "where the uploaded mask is white": "upload",
    "where I paint on the photo": "drawn",
}
DRAWN_NAME = "painted on the page"  # what a drawn mask is called in the saved options
WHOLE_NAME = "the whole painting"  # a painting's mask where nothing was painted on it
STYLE_SLOTS = 3


@dataclass(frozen=True)
class WebConfig:
    """What the person running the server decides."""

    concurrency: int = 1  # jobs that run at once; the rest wait in the queue
    max_upload_mb: float = 25.0
    max_pixels: int = 50_000_000  # per uploaded image
    max_size: int = 1024  # long side of the output
    cleanup_after: float = 3600.0  # seconds that uploads and results are kept
    # One visitor must not be able to take the server's memory, time or disk.
    max_style_scale: float = 2.0  # the painting at most this many times the output
    max_iterations: int = 1000  # network evaluations per scale
    max_time: float = 600.0  # seconds, for --time
    max_queue: int = 16  # requests waiting; more are turned away
    max_uploads_mb: float = 2048.0  # all uploads and results on disk together
    preview_every: int = 5  # steps between previews
    abandon_after: float = 30.0  # seconds without a watcher before a job is stopped
    gallery: Path | None = None  # paintings offered as one-click styles
    temp_dir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()))

    def check(self) -> None:
        for name in (
            "concurrency", "max_upload_mb", "max_pixels", "max_size", "preview_every",
            "max_iterations", "max_queue", "max_uploads_mb",
        ):  # fmt: skip
            if getattr(self, name) < 1:
                raise OptionError(f"{name.replace('_', ' ')} must be at least 1")
        if self.max_size < 16:
            raise OptionError("max size must be at least 16 pixels")
        if not self.max_style_scale > 0 or not self.max_time > 0:
            raise OptionError("max style scale and max time must be more than zero")
        if self.cleanup_after <= 0 or self.abandon_after <= 0:
            raise OptionError("cleanup and abandon times must be more than zero seconds")
        if self.gallery is not None and not self.gallery.is_dir():
            raise OptionError(f"gallery '{self.gallery}' is not a directory")


def _help(name: str) -> str:
    return str(_FIELDS[name].metadata["help"])


_FIELDS = {f.name: f for f in dataclasses.fields(Options)}


def _parse(name: str, value: Any) -> Any:
    """A form value as the type the option has; blank means the option's default."""
    # Gradio's number box sends 0 when left empty; where the default is None (a size, a
    # learning rate, the content weight) 0 therefore means "the preset's value". Only the
    # content weight loses a value by it (0, pure texture), which the CLI still takes.
    if _FIELDS[name].default is None and isinstance(value, (int, float)) and value == 0:
        return None
    return parse_value(Options, name, value)


def options_from_form(form: Mapping[str, Any]) -> Options:
    """Options from the page's fields, by option name; unknown names are refused."""
    check_names(Options, form)
    return Options(**{name: _parse(name, v) for name, v in form.items()})


def _upload_path(value: Any, uploads: Path, what: str) -> tuple[Path, str]:
    """The server-side file of an upload and the name the visitor gave it.

    Only files inside Gradio's upload folder are accepted: a path typed by a client
    never reaches the file system.
    """
    if isinstance(value, Mapping):
        path, name = value.get("path"), value.get("orig_name")
    else:
        path, name = value, None
    if not isinstance(path, str) or not path:
        raise InputError(f"no {what} given; upload one")
    resolved = Path(path).resolve()
    if not resolved.is_relative_to(uploads.resolve()) or not resolved.is_file():
        raise InputError(f"the {what} was not uploaded through this page; upload it again")
    return resolved, str(name) if name else resolved.name


def load_upload(value: Any, uploads: Path, what: str, max_pixels: int) -> Image.Image:
    """Load an uploaded image; errors name the file as the visitor knows it."""
    path, name = _upload_path(value, uploads, what)
    try:
        return load_image(path, what=what, max_pixels=max_pixels)
    except InputError as e:
        raise InputError(str(e).replace(f"'{path}'", f"'{name}'")) from None


def drawn_mask(value: Any, uploads: Path, max_pixels: int) -> Image.Image:
    """The mask a visitor painted over the photo in the drawing editor."""
    painted = painted_layers(value, uploads, max_pixels)
    if painted is None:
        raise InputError(
            "nothing is painted on the photo; paint where the styles go, or choose another region"
        )
    return painted


def painted_layers(value: Any, uploads: Path, max_pixels: int) -> Image.Image | None:
    """Wherever a brush touched any layer of a drawing editor's value (its opacity, so a
    soft brush gives grey); None where nothing is painted."""
    layers = value.get("layers") if isinstance(value, Mapping) else None
    painted: Image.Image | None = None
    for layer in layers or ():
        strokes = load_upload(layer, uploads, "painted mask", max_pixels)
        # A layer loads without alpha only where it is opaque all over: painted everywhere.
        alpha = (
            strokes.getchannel("A") if strokes.mode == "RGBA" else Image.new("L", strokes.size, 255)
        )
        painted = alpha if painted is None else ImageChops.lighter(painted, alpha)
    return None if painted is None or painted.getbbox() is None else painted


def _sweep(root: Path, age: float) -> None:
    """Remove the entries of `root` older than `age` seconds."""
    cutoff = time.time() - age
    for entry in root.iterdir() if root.is_dir() else ():
        try:
            if entry.stat().st_mtime < cutoff:
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        except OSError:
            continue  # gone already, or busy: the next sweep gets it


@dataclass(frozen=True)
class Finished:
    image: Path  # PNG with the options as metadata
    options: Path  # the same facts as JSON


class Stylist:
    """The page's work, without the page: checks a request, runs it, saves the result."""

    def __init__(self, engine: StyleTransfer, config: WebConfig, uploads: Path) -> None:
        self.engine = engine
        self.config = config
        self.uploads = uploads
        self.results = config.temp_dir / "results"
        self.results.mkdir(parents=True, exist_ok=True)

    def job(
        self,
        content: Any,
        styles: Sequence[tuple[Any, float | None]],
        form: Mapping[str, Any],
        region: str | None = None,
        mask: Any = None,
        painting_drawings: Sequence[Any] = (),
    ) -> Job:
        """A job for one request; raises StyleshiftError with a message for the visitor.
        `region` is one of REGIONS; `mask` is its picture: an uploaded mask, or the
        drawing editor's value (its layers are what the visitor painted).
        `painting_drawings` are the editors' values over the paintings, one per entry of
        `styles`: where a style is taken from (unpainted: the whole painting)."""
        chosen = [(s, w) for s, w in styles if s]
        options = without_foreign(options_from_form(form))
        if options.init not in INIT_STARTS:
            raise OptionError("start image must be content, noise or instant")
        if region is not None and region not in REGIONS:
            raise OptionError(f"unknown region '{region}'; choose one of the list")
        where: Any = REGIONS.get(region or "")  # an automatic mask's name, or the mask
        if where == "upload":
            where = load_upload(mask, self.uploads, "mask", self.config.max_pixels)
        elif where == "drawn":
            where = drawn_mask(mask, self.uploads, self.config.max_pixels)
        options = dataclasses.replace(
            options,
            device=self.engine.device.type,  # type: ignore[arg-type]
            style_blend=tuple(1.0 if w is None else float(w) for _, w in chosen) or None,
            # Every style paints the one region, blended there.
            mask=(where,) * len(chosen) if where is not None and chosen else None,
        )
        resolved = resolve_options(options, self.engine.device, len(chosen))
        largest = max(resolved.size, resolved.start_size or 0)
        if largest > self.config.max_size:
            raise OptionError(
                f"size {largest} is more than this server's limit of {self.config.max_size} "
                "pixels; choose a smaller size"
            )
        self._check_limits(resolved)
        pixels = self.config.max_pixels
        image = load_upload(content, self.uploads, "content image", pixels)
        paintings = [load_upload(s, self.uploads, "style image", pixels) for s, _ in chosen]
        given = [*painting_drawings, *[None] * len(styles)]  # a missing drawing: none
        drawings = [d for (s, _), d in zip(styles, given, strict=False) if s]
        painted = [painted_layers(d, self.uploads, pixels) for d in drawings]
        if any(p is not None for p in painted):
            resolved = dataclasses.replace(
                resolved,
                style_mask=tuple(
                    Image.new("L", painting.size, 255) if p is None else p  # type: ignore[misc]
                    for p, painting in zip(painted, paintings, strict=True)
                ),
            )
        return Job(
            self.engine,
            image,
            paintings,
            resolved,
            preview_every=self.config.preview_every,
            abandon_after=self.config.abandon_after,
        )

    def _check_limits(self, options: Options) -> None:
        c = self.config
        if options.style_scale > c.max_style_scale:
            raise OptionError(
                f"style scale {options.style_scale:g} is more than this server's limit of "
                f"{c.max_style_scale:g}; choose a smaller one"
            )
        if options.iterations and max(options.iterations) > c.max_iterations:
            raise OptionError(
                f"{max(options.iterations)} iterations is more than this server's limit of "
                f"{c.max_iterations} per scale; choose fewer"
            )
        if options.time is not None and options.time > c.max_time:
            raise OptionError(
                f"a time of {options.time:g} s is more than this server's limit of "
                f"{c.max_time:g} s; choose a shorter one"
            )
        if _disk_used(c.temp_dir) > c.max_uploads_mb * 1e6:
            raise OptionError(
                "this server's space for uploads is full; try again in a while, when older "
                "uploads have been cleared"
            )

    def save(
        self, result: Result, content: Any, styles: Sequence[Any], mask: Any = None
    ) -> Finished:
        """Write the result as PNG (options in its metadata) and the options as JSON; an
        uploaded mask is named as the visitor named it."""
        _sweep(self.results, self.config.cleanup_after)
        folder = self.results / uuid.uuid4().hex
        folder.mkdir()
        stem = Path(_name(content)).stem or "image"
        settings = result.options.to_dict()
        if settings["mask"]:
            settings["mask"] = [m if isinstance(m, str) else _name(mask) for m in settings["mask"]]
        if settings["style_mask"]:  # the page's are drawings, or white for a whole painting
            settings["style_mask"] = [
                WHOLE_NAME if m.getextrema() == (255, 255) else DRAWN_NAME
                for m in settings["style_mask"]
            ]
        metadata = provenance(_name(content), [_name(s) for s in styles if s], settings)
        rgb, alpha = split_alpha(result.image)
        png = save_image(rgb, folder / f"{stem}-styled.png", metadata=metadata, alpha=alpha)
        options = write_text(
            folder / f"{stem}-styled.json",
            json.dumps(json.loads(metadata["styleshift"]), indent=2) + "\n",
        )
        return Finished(png, options)


def _disk_used(root: Path) -> int:
    """Bytes of the files under `root`; a file the sweep removes meanwhile counts 0."""
    used = 0
    for entry in root.rglob("*"):
        with contextlib.suppress(OSError):
            if entry.is_file():
                used += entry.stat().st_size
    return used


def _name(value: Any) -> str:
    if isinstance(value, Mapping):
        return str(value.get("orig_name") or Path(str(value.get("path", ""))).name)
    return Path(str(value)).name


# -- the page -----------------------------------------------------------------------------

_CSS = """
#status { font-variant-numeric: tabular-nums; }
footer { display: none !important; }
"""


def _option_widget(name: str, engine: StyleTransfer, config: WebConfig) -> gr.Component:
    """A form field for one option, labelled with the help text the CLI shows."""
    common: dict[str, Any] = {
        "label": name.replace("_", " ").capitalize(),
        "info": _help(name),
        "elem_id": f"opt-{name.replace('_', '-')}",
    }
    default: Any = _FIELDS[name].default
    kind = field_type(Options, name)
    # The default preset optimises; the feed-forward fields show once one is chosen.
    common["visible"] = FIELD_METHODS[name] != "feedforward"
    if name == "size":
        preset = resolve_options(Options(), engine.device).size or 512
        common.update(label="Size (long side, pixels)", info="long side of the output")
        return gr.Slider(64, config.max_size, value=min(preset, config.max_size), step=16,
                         **common)  # fmt: skip
    if name == "style_weight":
        return gr.Slider(0, 5, value=default, step=0.05, **common | {"label": "Style strength"})
    if name == "init":
        return gr.Radio(list(INIT_STARTS), value=default, **common | {"label": "Start image"})
    if name == "strength":
        return gr.Slider(0, 1, value=default, step=0.05, **common)
    if name == "time":
        times = [("no limit", "")] + [(f"{t // 60} min" if t >= 60 else f"{t} s", str(t))
                                        for t in TIME_CHOICES]  # fmt: skip
        return gr.Dropdown(times, value="", **common | {"label": "Time"})
    if typing.get_origin(kind) is typing.Literal:
        return gr.Radio([str(c) for c in typing.get_args(kind)], value=default, **common)
    if kind is bool:
        return gr.Checkbox(value=default, **common)
    if kind in (int, float):
        return gr.Number(value=default, precision=0 if kind is int else None,
                         placeholder="default", **common)  # fmt: skip
    text = ",".join(str(v) for v in default) if isinstance(default, tuple) else ""
    return gr.Textbox(value=text, placeholder="default", **common)


def _style_slot(number: int) -> tuple[gr.Image, gr.Slider]:
    with gr.Column(min_width=120):
        image = gr.Image(label=f"Style {number}", type="filepath", sources=["upload"],
                         height=160 if number == 1 else 120, elem_id=f"style-{number}")  # fmt: skip
        weight = gr.Slider(0, 1, value=1, step=0.05, label=f"Blend weight {number}",
                           info="share of this style when several are blended")  # fmt: skip
    return image, weight


def _drawing(label: str, elem_id: str, visible: bool = True) -> gr.ImageEditor:
    """An editor that paints in white over a picture set as its background."""
    return gr.ImageEditor(
        label=label, type="filepath", image_mode="RGBA", sources=(), transforms=(),
        layers=False, height=260, brush=gr.Brush(colors=["#ffffff"], color_mode="fixed"),
        elem_id=elem_id, visible=visible,
    )  # fmt: skip


def _status(text: str) -> str:
    return f"**{html.escape(text)}**"


def build_app(engine: StyleTransfer, config: WebConfig) -> gr.Blocks:
    """The page. Gradio's upload folder must be `config.temp_dir` (see `serve`)."""
    uploads = Path(os.environ.get("GRADIO_TEMP_DIR", config.temp_dir))
    stylist = Stylist(engine, config, uploads)
    widgets: dict[str, gr.Component] = {}
    slots: list[tuple[gr.Image, gr.Slider]] = []
    demo = gr.Blocks(
        title="styleshift",
        analytics_enabled=False,
        delete_cache=(max(60, int(config.cleanup_after) // 4), int(config.cleanup_after)),
    )
    with demo:
        gr.Markdown(
            "## styleshift\nRepaint a photo in the manner of a painting. Drop a photo and a "
            "painting, press **Stylise** and watch the picture form. Inputs may be "
            + ", ".join(INPUT_FORMATS)
            + f", up to {config.max_upload_mb:g} MB."
        )
        with gr.Row():
            with gr.Column(scale=1):
                content = gr.Image(label="Photo (content)", type="filepath", sources=["upload"],
                                   height=220, elem_id="content")  # fmt: skip
                slots.append(_style_slot(1))
                with gr.Accordion("Blend more styles", open=False), gr.Row():
                    slots.extend(_style_slot(i) for i in range(2, STYLE_SLOTS + 1))
                gallery = _gallery(config)
                with gr.Accordion("Paint only part of the photo", open=False):
                    region = gr.Dropdown(list(REGIONS), value=next(iter(REGIONS)),
                                         label="Where the styles paint", elem_id="region",
                                         info="the rest keeps the photo")  # fmt: skip
                    mask = gr.Image(label="Mask (white: paint, black: keep the photo)",
                                    type="filepath", sources=["upload"], height=120,
                                    elem_id="mask")  # fmt: skip
                    drawing = _drawing("Paint where the styles go", "drawing")
                with gr.Accordion("Take each style from part of its painting", open=False):
                    painting_drawings = [
                        _drawing(f"Paint where style {i} comes from (unpainted: all of it)",
                                 f"painting-drawing-{i}", visible=i == 1)
                        for i in range(1, STYLE_SLOTS + 1)
                    ]  # fmt: skip
                for row in MAIN_ROWS:
                    with gr.Row():
                        for name in row:
                            widgets[name] = _option_widget(name, engine, config)
                with gr.Accordion("Advanced", open=False):
                    for f in dataclasses.fields(Options):
                        if f.name not in (*MAIN_OPTIONS, *SERVER_OPTIONS, *PAGE_OPTIONS):
                            widgets[f.name] = _option_widget(f.name, engine, config)
            with gr.Column(scale=1):
                with gr.Row():
                    start = gr.Button("Stylise", variant="primary", elem_id="stylise")
                    stop = gr.Button("Cancel", variant="stop", elem_id="cancel")
                status = gr.Markdown(_status("ready"), elem_id="status")
                preview = gr.Image(label="Picture", type="pil", format="png", interactive=False,
                                   height=420, elem_id="preview",
                                   buttons=["download", "fullscreen"])  # fmt: skip
                files = gr.File(label="Download (PNG, options)", file_count="multiple",
                                interactive=False, elem_id="downloads")  # fmt: skip

        preset, size = typing.cast(gr.Radio, widgets["preset"]), widgets["size"]
        # The photo is the drawing's background: the visitor paints over it; so is each
        # painting for its own drawing, shown once there is a painting to draw on.
        content.change(lambda photo: photo, content, drawing, queue=False)
        for number, ((image, _), editor) in enumerate(zip(slots, painting_drawings, strict=True)):
            image.change(
                lambda painting, first=number == 0: gr.update(
                    value=painting, visible=first or painting is not None
                ),
                image, editor, queue=False,
            )  # fmt: skip

        def preset_size(name: str) -> Any:
            value = resolve_options(Options(preset=name), engine.device).size  # type: ignore[arg-type]
            return gr.update(value=min(value or 512, config.max_size))

        preset.change(preset_size, preset, size, queue=False)

        method = typing.cast(gr.Radio, widgets["method"])
        switched_names = [name for name in widgets if FIELD_METHODS[name] != "common"]
        switched = [widgets[name] for name in switched_names]

        def show_what_applies(preset_name: str, method_name: str) -> list[Any]:
            try:
                chosen = method_of(Options(preset=preset_name, method=method_name))  # type: ignore[arg-type]
            except StyleshiftError:
                return [gr.skip() for _ in switched]  # the job will say what is wrong
            hidden = "gatys" if chosen in FEEDFORWARD else "feedforward"
            return [gr.update(visible=FIELD_METHODS[name] != hidden) for name in switched_names]

        for trigger in (preset, method):
            trigger.change(show_what_applies, [preset, method], switched, queue=False)

        if gallery is not None:
            thumbs, paths = gallery

            def pick(evt: gr.SelectData) -> str:
                return str(paths[evt.index])

            thumbs.select(pick, None, slots[0][0], queue=False)

        inputs: set[gr.blocks.Block] = {
            content, region, mask, drawing, *painting_drawings, *widgets.values()
        }  # fmt: skip
        for image, weight in slots:
            inputs |= {image, weight}
        outputs = [status, preview, files]

        async def stylise(data: dict[gr.Component, Any]) -> AsyncIterator[Any]:
            styles = [(data[image], data[weight]) for image, weight in slots]
            drawn = REGIONS.get(data[region]) == "drawn"
            try:
                job = stylist.job(
                    data[content], styles, {name: data[w] for name, w in widgets.items()},
                    data[region], data[drawing] if drawn else data[mask],
                    [data[d] for d in painting_drawings],
                )  # fmt: skip
            except StyleshiftError as e:
                yield _status(f"error: {e}"), gr.skip(), gr.skip()
                raise gr.Error(html.escape(str(e)), print_exception=False) from None
            yield _status("starting"), gr.skip(), None
            update: Update
            async for update in follow(job):
                if update.done and job.result is not None:
                    done = await asyncio.to_thread(
                        stylist.save, job.result, data[content], [s for s, _ in styles],
                        DRAWN_NAME if drawn else data[mask],
                    )  # fmt: skip
                    yield (
                        _status(update.status),
                        str(done.image),
                        [
                            str(done.image),
                            str(done.options),
                        ],
                    )
                    return
                picture = update.preview if update.preview is not None else gr.skip()
                yield _status(update.status), picture, gr.skip()
            if job.error is not None:
                raise gr.Error(html.escape(job.error), print_exception=False)

        run = start.click(
            stylise,
            inputs,
            outputs,
            preprocess=False,  # uploads are checked and loaded here, with clear messages
            concurrency_limit="default",
            show_progress="minimal",
        )
        stop.click(lambda: _status("cancelled"), None, status, cancels=[run], queue=False)
    demo.queue(default_concurrency_limit=config.concurrency, max_size=config.max_queue)
    return demo


def _gallery(config: WebConfig) -> tuple[gr.Gallery, list[Path]] | None:
    """Paintings from `config.gallery` as one-click choices for the first style."""
    if config.gallery is None:
        return None
    found = sorted(p for p in config.gallery.iterdir() if p.is_file() and kind_of(p) == "image")
    if not found:
        return None
    # Copies in the temporary folder: Gradio serves them from there, and nothing else in
    # the gallery folder becomes reachable from the page.
    folder = config.temp_dir / "gallery"
    folder.mkdir(parents=True, exist_ok=True)
    paths = [Path(shutil.copy2(p, folder / p.name)) for p in found]
    with gr.Accordion("Paintings: click one to use it as style 1", open=False):
        thumbs = gr.Gallery(
            value=[(str(p), p.stem.replace("_", " ")) for p in paths],
            columns=8, height=180, allow_preview=False, show_label=False,
            interactive=False, object_fit="cover", elem_id="paintings",
        )  # fmt: skip
    return thumbs, paths


@dataclass
class Server:
    """A running page; `close` stops it and removes its temporary files."""

    url: str
    demo: gr.Blocks
    temp_dir: Path
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def close(self) -> None:
        with self._lock:
            self.demo.close(verbose=False)
            shutil.rmtree(self.temp_dir, ignore_errors=True)


def serve(
    engine: StyleTransfer, config: WebConfig, *, host: str = "127.0.0.1", port: int = 7860
) -> Server:
    """Start the page in the background and return once it answers."""
    config.check()
    temp = Path(tempfile.mkdtemp(prefix="styleshift-web-"))
    # Uploads, Gradio's cache and our results all live here, and go when the server does.
    os.environ["GRADIO_TEMP_DIR"] = str(temp)
    config = dataclasses.replace(config, temp_dir=temp)
    try:
        demo = build_app(engine, config)
        _, url, _ = demo.launch(
            server_name=host,
            server_port=port,
            prevent_thread_lock=True,
            quiet=True,
            share=False,
            max_file_size=f"{int(config.max_upload_mb * 1024)}kb",
            show_error=True,
            footer_links=[],
            run_history=False,
            enable_monitoring=False,
            ssr_mode=False,
            pwa=False,
            mcp_server=False,
            theme=gr.themes.Default(),
            css=_CSS,
        )
    except OSError as e:
        shutil.rmtree(temp, ignore_errors=True)
        raise StyleshiftError(
            f"cannot serve on {host}:{port} ({' '.join(str(e).split()[:8])}); "
            "choose another --port or --host"
        ) from None
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    return Server(url=url, demo=demo, temp_dir=temp)
