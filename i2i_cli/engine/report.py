"""The run report, RUN/index.html: sample grids (newest first) and loss curves, and the metrics log it reads.

Loss curves are SVG (axes, ticks, legend, a scale per term), no plotting library. Loss terms differ by orders of magnitude (G_L1 ~ 30 next to D_real ~ 0.3), so one shared y-axis would flatten
all but one; each term gets its own small panel with its own labelled y-axis, all sharing the step axis.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from i2i_cli.data.images import to_uint8_batch
from i2i_cli.fsutil import atomic_write_text

COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf"]
PANEL_W, PANEL_H = 300, 170
MARGIN_L, MARGIN_R, MARGIN_T, MARGIN_B = 58, 12, 26, 36
FONT = "font-family='sans-serif' font-size='11'"


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About `count` round tick values covering [lo, hi] (1, 2, 2.5 or 5 times a power of ten apart)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi <= lo:
        hi = lo + (abs(lo) * 0.1 or 1.0)
    raw = (hi - lo) / max(1, count - 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.floor(lo / step + 1e-9) * step  # 1e-9: 0.3 / 0.1 is 2.9999...
    ticks = []
    value = first
    while value <= hi + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    if ticks[-1] < hi:
        ticks.append(round(value, 12))
    return ticks


def tick_label(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1e5 or abs(value) < 1e-3:
        return f"{value:.1e}"
    return f"{value:.4g}"


def _series(history: list[dict[str, Any]], name: str) -> list[tuple[float, float]]:
    return [(float(h["step"]), float(h["losses"][name])) for h in history
            if name in h.get("losses", {}) and math.isfinite(float(h["losses"][name]))]


def _panel(name: str, points: list[tuple[float, float]], x_ticks: list[float], colour: str,
           origin: tuple[int, int]) -> list[str]:
    """One term: a frame, y ticks in its own scale, the shared step ticks, the curve and the last value."""
    ox, oy = origin
    plot_w, plot_h = PANEL_W - MARGIN_L - MARGIN_R, PANEL_H - MARGIN_T - MARGIN_B
    values = [v for _, v in points]
    y_ticks = nice_ticks(min(values), max(values), 4)
    x0, x1, y0, y1 = x_ticks[0], x_ticks[-1], y_ticks[0], y_ticks[-1]

    def xy(step: float, value: float) -> tuple[float, float]:
        return (ox + MARGIN_L + (step - x0) / ((x1 - x0) or 1) * plot_w,
                oy + MARGIN_T + plot_h - (value - y0) / ((y1 - y0) or 1) * plot_h)

    left, top = ox + MARGIN_L, oy + MARGIN_T
    parts = [f"<text x='{left}' y='{oy + 16}' {FONT} font-weight='bold' fill='{colour}'>{html.escape(name)}"
             f"<tspan fill='#333' font-weight='normal'>  last {tick_label(values[-1])}</tspan></text>",
             f"<rect x='{left}' y='{top}' width='{plot_w}' height='{plot_h}' fill='none' stroke='#999'/>"]
    for t in y_ticks:
        _, y = xy(x0, t)
        parts.append(f"<line x1='{left - 4}' y1='{y:.1f}' x2='{left + plot_w}' y2='{y:.1f}' stroke='#e5e5e5'/>")
        parts.append(f"<text x='{left - 6}' y='{y + 4:.1f}' {FONT} text-anchor='end'>{tick_label(t)}</text>")
    for t in x_ticks:
        x, _ = xy(t, y0)
        parts.append(f"<line x1='{x:.1f}' y1='{top + plot_h}' x2='{x:.1f}' y2='{top + plot_h + 4}' stroke='#999'/>")
        parts.append(f"<text x='{x:.1f}' y='{top + plot_h + 16}' {FONT} text-anchor='middle'>{tick_label(t)}</text>")
    parts.append(f"<text x='{left + plot_w / 2:.1f}' y='{oy + PANEL_H - 4}' {FONT} text-anchor='middle'>step</text>")
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(s, v) for s, v in points))
    if len(points) == 1:
        x, y = xy(*points[0])
        parts.append(f"<circle cx='{x:.1f}' cy='{y:.1f}' r='2.5' fill='{colour}'/>")
    parts.append(f"<polyline fill='none' stroke='{colour}' stroke-width='1.5' points='{line}'/>")
    return parts


def loss_curves_svg(history: list[dict[str, Any]], columns: int = 3) -> str:
    """Every logged loss term against the step: a legend, then one panel per term with its own y-scale."""
    names = sorted({k for h in history for k in h.get("losses", {})})
    series = {name: _series(history, name) for name in names}
    series = {name: points for name, points in series.items() if points}
    if not series:
        return "<p>No losses logged yet.</p>"
    steps = [s for points in series.values() for s, _ in points]
    x_ticks = nice_ticks(min(steps), max(steps), 5)
    columns = max(1, min(columns, len(series)))
    rows = math.ceil(len(series) / columns)
    legend_h = 22
    width, height = columns * PANEL_W, legend_h + rows * PANEL_H
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
             f"viewBox='0 0 {width} {height}' role='img' aria-label='loss curves'>",
             "<rect width='100%' height='100%' fill='white'/>"]
    x = 8
    for i, name in enumerate(series):  # the legend: colour -> term (weighted, as logged in metrics.jsonl)
        colour = COLOURS[i % len(COLOURS)]
        parts.append(f"<line x1='{x}' y1='11' x2='{x + 18}' y2='11' stroke='{colour}' stroke-width='3'/>")
        parts.append(f"<text x='{x + 22}' y='15' {FONT}>{html.escape(name)}</text>")
        x += 32 + 7 * len(name)
    for i, (name, points) in enumerate(series.items()):
        origin = ((i % columns) * PANEL_W, legend_h + (i // columns) * PANEL_H)
        parts += _panel(name, points, x_ticks, COLOURS[i % len(COLOURS)], origin)
    parts.append("</svg>")
    return "\n".join(parts)


# --- the page and its log ---------------------------------------------------------------------------


def sample_grid(rows: dict[str, torch.Tensor]) -> np.ndarray:
    """Rows of images (N, 3, H, W) in [-1, 1] -> one uint8 image, a row per name, the name at its left."""
    from i2i_cli.figure import labelled_rows

    strips = []
    for name, images in rows.items():
        strips.append((name, np.concatenate(to_uint8_batch(images), axis=1)))
    return labelled_rows(strips)


def write_report(run_dir: Path, title: str) -> Path:
    """RUN/index.html: sample grids (newest first) and loss curves."""
    history = read_metrics(run_dir)
    samples = sorted((run_dir / "samples").glob("*.png"), reverse=True) if (run_dir / "samples").is_dir() else []
    extra = run_dir / "report_extra.html"
    body = [f"<h1>{html.escape(title)}</h1>", f"<p>{html.escape(str(run_dir.resolve()))}</p>",
            "<h2>Loss curves</h2>", "<p>Weighted loss terms as logged in metrics.jsonl, each on its own scale.</p>",
            loss_curves_svg(history)]
    body.append(evaluations_html(history, run_dir))
    if extra.is_file():
        body.append(extra.read_text())
    body.append("<h2>Samples</h2><p>The same fixed training images at each step; each row is named on its left."
                "</p>")
    for sample in samples[:20]:
        step = sample.stem.removeprefix("step_").lstrip("0") or "0"
        body.append(f'<h3>step {step}</h3><img src="samples/{sample.name}" alt="samples at step {step}" '
                    'style="image-rendering:pixelated;max-width:100%">')
    page = "<!doctype html><meta charset='utf-8'><title>{}</title><body style='font-family:sans-serif'>{}</body>"
    atomic_write_text(run_dir / "index.html", page.format(html.escape(title), "\n".join(body)))
    return run_dir / "index.html"


def evaluations_html(history: list[dict[str, Any]], run_dir: Path) -> str:
    """The evaluations during training (metrics.jsonl rows with "eval") as a table, the best step marked."""
    rows = [h for h in history if isinstance(h.get("eval"), dict)]
    if not rows:
        return ""
    keys = list(dict.fromkeys(k for h in rows for k in h["eval"]))
    best_step = None
    best_file = run_dir / "best.json"
    if best_file.is_file():
        try:
            best_step = json.loads(best_file.read_text()).get("step")
        except (OSError, ValueError):
            best_step = None
    head = "".join(f"<th>{html.escape(k)}</th>" for k in ["step", *keys])
    lines = []
    for h in rows:
        mark = " (best)" if h["step"] == best_step else ""
        cells = "".join(f"<td>{tick_label(float(h['eval'][k])) if isinstance(h['eval'].get(k), (int, float)) else ''}"
                        "</td>" for k in keys)
        lines.append(f"<tr><td>{h['step']}{mark}</td>{cells}</tr>")
    return ("<h2>Evaluation during training</h2><p>--eval-every: the checkpoint at each step scored as its method's "
            f"evaluation says (RUN/eval/step_N).</p><table border='1' cellpadding='3'><tr>{head}</tr>{''.join(lines)}"
            "</table>")


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut by a kill: ignored, and dropped at the next resume
    return rows


def truncate_metrics(run_dir: Path, step: int) -> None:
    """On resume, drop log lines past the checkpoint so no step is logged twice."""
    rows = [r for r in read_metrics(run_dir) if r.get("step", 0) <= step]
    atomic_write_text(run_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
