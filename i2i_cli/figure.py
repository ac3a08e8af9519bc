"""Small PIL figure helpers: heat maps with a colour bar, labelled panels, grids (no plotting dependency)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# 9 anchor colours of the 'viridis' colour map; the rest is interpolated linearly.
_VIRIDIS = np.array([
    [68, 1, 84], [71, 44, 122], [59, 81, 139], [44, 113, 142], [33, 144, 141],
    [39, 173, 129], [92, 200, 99], [170, 220, 50], [253, 231, 37]], dtype=np.float32)


def colormap(values: np.ndarray, vmin: float, vmax: float) -> np.ndarray:
    """float (H, W) -> uint8 (H, W, 3) with viridis between vmin and vmax."""
    span = max(vmax - vmin, 1e-12)
    t = np.clip((values - vmin) / span, 0, 1) * (len(_VIRIDIS) - 1)
    low = np.floor(t).astype(int)
    high = np.minimum(low + 1, len(_VIRIDIS) - 1)
    frac = (t - low)[..., None]
    return (_VIRIDIS[low] * (1 - frac) + _VIRIDIS[high] * frac).round().astype(np.uint8)


def _font() -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=14)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


LINE = 17  # pixels per text line of the default font at size 14


def wrap(text: str, width: int) -> list[str]:
    """Words of `text` in lines no wider than `width` pixels (a word longer than a line gets its own line)."""
    font = _font()
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength
    lines: list[str] = []
    for word in text.split():
        if lines and measure(f"{lines[-1]} {word}", font=font) <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines or [""]


def _header(title: str, width: int) -> tuple[list[str], int]:
    lines = wrap(title, width - 4)
    return lines, 5 + LINE * len(lines)


def panel(image: np.ndarray, title: str, subtitle: str = "", width: int = 256, title_width: int | None = None
          ) -> Image.Image:
    """An image scaled to `width` with a title above (wrapped to `title_width`) and an optional subtitle below."""
    img = Image.fromarray(image)
    height = round(img.height * width / img.width)
    img = img.resize((width, height), Image.NEAREST if img.width < width else Image.BICUBIC)
    lines, top = _header(title, title_width or width)
    canvas = Image.new("RGB", (max(width, title_width or width), top + height + 22), "white")
    canvas.paste(img, (0, top))
    draw = ImageDraw.Draw(canvas)
    for i, line in enumerate(lines):
        draw.text((2, 3 + LINE * i), line, fill="black", font=_font())
    if subtitle:
        draw.text((2, top + height + 3), subtitle, fill="black", font=_font())
    return canvas


def heatmap_panel(values: np.ndarray, title: str, subtitle: str = "", width: int = 256) -> Image.Image:
    """A heat map with its own colour bar (min and max written) and labels; the title may use the bar's width."""
    vmin, vmax = float(np.min(values)), float(np.max(values))
    bar_w = 54
    body = panel(colormap(values, vmin, vmax), title, subtitle, width, title_width=width + bar_w)
    canvas = Image.new("RGB", (width + bar_w, body.height), "white")
    canvas.paste(body, (0, 0))
    top = _header(title, width + bar_w)[1]
    bar_h = body.height - top - 22
    ramp = np.linspace(vmax, vmin, bar_h)[:, None].repeat(12, axis=1)
    canvas.paste(Image.fromarray(colormap(ramp, vmin, vmax)), (width + 4, top))
    draw = ImageDraw.Draw(canvas)
    draw.text((width + 18, top - 2), f"{vmax:.3g}", fill="black", font=_font())
    draw.text((width + 18, top + bar_h - 14), f"{vmin:.3g}", fill="black", font=_font())
    return canvas


def grid(panels: list[Image.Image], columns: int, title: str = "") -> Image.Image:
    columns = max(1, min(columns, len(panels)))
    rows = (len(panels) + columns - 1) // columns
    cell_w = max(p.width for p in panels)
    cell_h = max(p.height for p in panels)
    top = 28 if title else 0
    canvas = Image.new("RGB", (columns * cell_w + 8, rows * cell_h + top + 8), "white")
    if title:
        ImageDraw.Draw(canvas).text((6, 6), title, fill="black", font=_font())
    for i, p in enumerate(panels):
        canvas.paste(p, (4 + (i % columns) * cell_w, top + 4 + (i // columns) * cell_h))
    return canvas


def labelled_rows(rows: list[tuple[str, np.ndarray]], pad: int = 6) -> np.ndarray:
    """Image strips (H, W, 3) stacked top to bottom, each with its name to its left: a sample grid's rows."""
    font = _font()
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength
    label_w = pad * 2 + int(max(measure(name, font=font) for name, _ in rows))
    width = label_w + max(strip.shape[1] for _, strip in rows)
    height = sum(max(strip.shape[0], LINE + 2) for _, strip in rows)
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    y = 0
    for name, strip in rows:
        row_h = max(strip.shape[0], LINE + 2)
        canvas.paste(Image.fromarray(np.ascontiguousarray(strip)), (label_w, y + (row_h - strip.shape[0]) // 2))
        draw.text((pad, y + (row_h - LINE) // 2 + 1), name, fill="black", font=font)
        y += row_h
    return np.asarray(canvas)
