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


def panel(image: np.ndarray, title: str, subtitle: str = "", width: int = 256) -> Image.Image:
    """An image scaled to `width` with a title above and an optional subtitle below."""
    img = Image.fromarray(image)
    height = round(img.height * width / img.width)
    img = img.resize((width, height), Image.NEAREST if img.width < width else Image.BICUBIC)
    canvas = Image.new("RGB", (width, height + 44), "white")
    canvas.paste(img, (0, 22))
    draw = ImageDraw.Draw(canvas)
    draw.text((2, 3), title, fill="black", font=_font())
    if subtitle:
        draw.text((2, height + 25), subtitle, fill="black", font=_font())
    return canvas


def heatmap_panel(values: np.ndarray, title: str, subtitle: str = "", width: int = 256) -> Image.Image:
    """A heat map with its own colour bar (min and max written) and labels."""
    vmin, vmax = float(np.min(values)), float(np.max(values))
    body = panel(colormap(values, vmin, vmax), title, subtitle, width)
    bar_w = 54
    canvas = Image.new("RGB", (body.width + bar_w, body.height), "white")
    canvas.paste(body, (0, 0))
    bar_h = body.height - 44
    ramp = np.linspace(vmax, vmin, bar_h)[:, None].repeat(12, axis=1)
    canvas.paste(Image.fromarray(colormap(ramp, vmin, vmax)), (body.width + 4, 22))
    draw = ImageDraw.Draw(canvas)
    draw.text((body.width + 18, 20), f"{vmax:.3g}", fill="black", font=_font())
    draw.text((body.width + 18, 22 + bar_h - 14), f"{vmin:.3g}", fill="black", font=_font())
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
