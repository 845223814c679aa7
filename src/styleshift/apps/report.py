"""A comparison as one offline page: pictures, a table with the best of each column marked,
and two plots (matplotlib, as SVG files beside the page). Nothing is fetched from outside.
"""

from __future__ import annotations

import dataclasses
import html
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..io.files import write_text
from .compare import Comparison, Run

# (heading, value, better): better is +1 where higher is better, -1 where lower is.
Column = tuple[str, Callable[[Run], float | None], int]
COLUMNS: list[Column] = [
    ("time s", lambda r: r.seconds, -1),
    ("peak memory MB", lambda r: None if r.peak_bytes is None else r.peak_bytes / 1e6, -1),
    ("content similarity", lambda r: r.evaluation.content.similarity, +1),
    ("feature error", lambda r: r.evaluation.content.feature_error, -1),
    ("SSIM", lambda r: r.evaluation.content.ssim, +1),
    ("edge F1", lambda r: r.evaluation.content.edge_overlap, +1),
    ("Gram distance", lambda r: r.evaluation.styles[0].scores.distance, -1),
    ("Gram reduction", lambda r: r.evaluation.styles[0].scores.reduction, +1),
    ("mean/std distance", lambda r: r.evaluation.styles[0].scores.statistics_distance, -1),
    ("colour distance", lambda r: r.evaluation.styles[0].scores.colour_distance, -1),
    # Runs with --mask: the painting inside the region, the photo outside it.
    ("Gram distance in mask", lambda r: r.evaluation.styles[0].region_distance, -1),
    ("PSNR outside mask", lambda r: r.evaluation.kept_psnr, +1),
]


def _columns(runs: Sequence[Run]) -> list[Column]:
    """The columns some run has a value for (the mask's only when a run had a mask)."""
    return [c for c in COLUMNS if any(c[1](r) is not None for r in runs)]


STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
figure { display: inline-block; margin: 0 .6em .8em 0; vertical-align: top; }
figure img { max-width: 260px; max-height: 260px; display: block; }
figcaption { font-size: .85em; max-width: 260px; }
table { border-collapse: collapse; font-size: .9em; }
th, td { border: 1px solid #ccc; padding: .25em .5em; text-align: right; }
th:first-child, td:first-child, td:nth-child(2) { text-align: left; }
td.best { font-weight: bold; background: #e4f4e4; }
img.plot { max-width: 48%; min-width: 420px; }
pre { background: #f6f6f6; padding: .6em; overflow-x: auto; }
"""


def _figure(src: str, caption: str) -> str:
    s, c = html.escape(src, quote=True), html.escape(caption)
    return (
        f'<figure><a href="{s}"><img src="{s}" alt="{c}"></a><figcaption>{c}</figcaption></figure>'
    )


def _plain_log_axis(axis: Any) -> None:
    """Ticks at 1, 2 and 5 of each decade, written 0.2 or 8 rather than 2×10⁻¹."""
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(ScalarFormatter())
    axis.set_minor_formatter(NullFormatter())


def _loss_plot(runs: Sequence[Run], path: Path) -> bool:
    from matplotlib.figure import Figure  # no pyplot: no global state, no display

    traced = [r for r in runs if len(r.trace) > 1]
    if not traced:
        return False
    fig = Figure(figsize=(6.4, 4.0))
    ax = fig.add_subplot()
    for r in traced:
        ax.plot([t for t, _ in r.trace], [v for _, v in r.trace], label=f"{r.label} · {r.painting}")
    ax.set(xlabel="seconds", ylabel="loss (each run's own weights)", yscale="log")
    _plain_log_axis(ax.yaxis)
    ax.set_title("Loss over time (jumps are the scale changes)")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, format="svg")
    return True


def _tradeoff_plot(runs: Sequence[Run], path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.0))
    ax = fig.add_subplot()
    markers = dict(zip(sorted({r.painting for r in runs}), "osD^v<>phX*", strict=False))
    for r in runs:
        x = r.evaluation.content.similarity
        y = r.evaluation.styles[0].scores.reduction
        ax.scatter([x], [y], marker=markers.get(r.painting, "o"), label=f"{r.label} · {r.painting}")
    ax.legend(fontsize="x-small")
    ax.set(xlabel="content similarity (→ keeps the photo)",
           ylabel="Gram reduction (↑ carries the style)", yscale="log")  # fmt: skip
    _plain_log_axis(ax.yaxis)
    ax.set_title("Style against content: up and right is better")
    fig.tight_layout()
    fig.savefig(path, format="svg")


def _cell(value: float | None) -> str:
    if value == math.inf:
        return "∞"  # a PSNR where nothing changed
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"


def _best(runs: Sequence[Run]) -> dict[tuple[str, str], float]:
    """The best value of each column among the runs with the same painting (a score
    against one painting says nothing about a run against another)."""
    best: dict[tuple[str, str], float] = {}
    for painting in {r.painting for r in runs}:
        group = [r for r in runs if r.painting == painting]
        for heading, get, better in _columns(runs):
            values = [v for v in (get(r) for r in group) if v is not None and not math.isnan(v)]
            if len(values) > 1:
                best[painting, heading] = max(values) if better > 0 else min(values)
    return best


def _table(runs: Sequence[Run]) -> str:
    best = _best(runs)
    columns = _columns(runs)
    head = "".join(f"<th>{html.escape(h)}</th>" for h, _, _ in columns)
    rows = []
    for r in sorted(runs, key=lambda r: r.painting):
        cells = []
        for heading, get, _ in columns:
            value = get(r)
            top = value is not None and value == best.get((r.painting, heading))
            mark = ' class="best"' if top else ""
            cells.append(f"<td{mark}>{_cell(value)}</td>")
        rows.append(
            f"<tr><td>{html.escape(r.label)}</td><td>{html.escape(r.painting)}</td>"
            f"<td>{html.escape(r.device or '–')}</td>{''.join(cells)}</tr>"
        )
    return (
        f"<table><tr><th>result</th><th>painting</th><th>device</th>{head}</tr>"
        + "".join(rows)
        + "</table>"
    )


def write_report(comparison: Comparison, folder: Path, command: str = "") -> Path:
    """Writes folder/index.html and folder/results.json (every number, for scripts), both
    atomically, and the plots; returns the page's path."""
    runs = comparison.runs
    facts = dataclasses.asdict(comparison) | {"command": command}
    write_text(folder / "results.json", json.dumps(facts, indent=2) + "\n", overwrite=True)
    plots = []
    if runs:
        _tradeoff_plot(runs, folder / "tradeoff.svg")
        plots.append("tradeoff.svg")
        if _loss_plot(runs, folder / "loss.svg"):
            plots.append("loss.svg")
    inputs = [_figure(comparison.photo, "photo")] + [
        _figure(p, f"painting: {Path(p).name}") for p in comparison.paintings
    ]
    results = []
    for painting in comparison.paintings:
        name = Path(painting).name
        row = [_figure(r.image, r.label) for r in runs if r.painting == name]
        results.append(f"<h3>{html.escape(name)}</h3>{''.join(row)}")
    notes = sorted({n for r in runs for n in r.evaluation.notes})
    machine = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
        for k, v in comparison.machine.items()
    )
    options = {f"{r.label} · {r.painting}": r.options for r in runs if r.options is not None}
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<title>styleshift comparison</title>",
        f"<style>{STYLE}</style></head><body>",
        "<h1>styleshift comparison</h1>",
        "<p><b>Interrupted:</b> the runs that finished are shown.</p>"
        if comparison.interrupted
        else "",
        f"<p><b>Stopped:</b> {html.escape(comparison.error)}; the runs before it are shown.</p>"
        if comparison.error is not None
        else "",
        f"<h2>Inputs</h2>{''.join(inputs)}",
        f"<h2>Results</h2>{''.join(results)}",
        "<h2>Scores</h2><p>In bold: the best of each column among the runs with the same "
        "painting. docs/evaluation.md explains each number and what good looks like; the "
        "Gram and colour columns are against the row's painting.</p>",
        _table(runs),
        "".join(f"<p>Note: {html.escape(n)}</p>" for n in notes),
        "<h2>Plots</h2>",
        "".join(f'<img class="plot" src="{p}" alt="{p}">' for p in plots),
        f"<h2>Machine</h2><table>{machine}</table>",
        "<h2>Reproduce</h2><p>Every number of this page is also in "
        "<a href='results.json'>results.json</a>.</p>",
        f"<pre>{html.escape(command)}</pre>" if command else "",
        f"<details><summary>Options of every run</summary><pre>"
        f"{html.escape(json.dumps(options, indent=2))}</pre></details>",
        "</body></html>",
    ]
    page = folder / "index.html"
    write_text(page, "\n".join(p for p in parts if p), overwrite=True)
    return page
