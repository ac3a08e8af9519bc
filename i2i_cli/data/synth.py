"""Procedural synthetic datasets (no download): label maps of street-like scenes and rendered "photos".

`scenes` draws a scene (sky, ground, road, buildings, trees, sun) as a label map with a flat palette, and
renders a photo of the same scene with gradients, textures, windows and noise; the same scene can be lit in
several styles ("domains": day, dusk, night, fog, ...). Structure is shared between a label map and its
photo, appearance is not: exactly what paired and unpaired translators must learn.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from i2i_cli.data.images import save_image
from i2i_cli.errors import ConfigError, DataError

CLASSES = ["sky", "ground", "road", "building", "window", "tree", "sun"]
PALETTE = np.array(
    [[70, 130, 180], [152, 251, 152], [128, 64, 128], [70, 70, 70], [250, 170, 30], [107, 142, 35], [220, 220, 0]],
    dtype=np.uint8,
)
STYLES = ["day", "dusk", "night", "fog", "winter", "autumn"]
NAMES = ("scenes",)


@dataclass
class Scene:
    labels: np.ndarray  # (H, W) class ids
    building_shade: np.ndarray  # (H, W) per-building brightness factor


def draw_scene(size: int, rng: np.random.Generator) -> Scene:
    h = w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    labels = np.zeros((h, w), dtype=np.uint8)  # sky
    horizon = h * rng.uniform(0.45, 0.65) + h * 0.04 * np.sin(xx / w * rng.uniform(2, 6) + rng.uniform(0, 6))
    labels[yy > horizon] = 1
    # road: a trapezoid narrowing to a vanishing point on the horizon
    vx = w * rng.uniform(0.3, 0.7)
    vy = float(np.mean(horizon))
    half_bottom = w * rng.uniform(0.25, 0.45)
    t = np.clip((yy - vy) / max(h - vy, 1), 0, 1)
    labels[(yy > horizon) & (np.abs(xx - vx) < 2 + t * half_bottom)] = 2
    shade = np.ones((h, w), dtype=np.float32)
    for _ in range(rng.integers(2, 5)):
        bw, bh = w * rng.uniform(0.12, 0.28), h * rng.uniform(0.25, 0.55)
        x0 = rng.uniform(-0.05, 0.9) * w
        base = vy + h * rng.uniform(0.0, 0.08)
        mask = (xx >= x0) & (xx < x0 + bw) & (yy >= base - bh) & (yy < base)
        labels[mask] = 3
        shade[mask] = rng.uniform(0.6, 1.3)
        step = max(3, int(size / 16))
        win = mask & ((xx - x0) % step < step / 2) & ((yy - (base - bh)) % step < step / 2)
        win &= (xx - x0 > step / 2) & (x0 + bw - xx > step / 2) & (yy - (base - bh) > step / 2)
        labels[win] = 4
    for _ in range(rng.integers(1, 4)):
        cx, cy, r = rng.uniform(0, w), vy + rng.uniform(-0.1, 0.1) * h, size * rng.uniform(0.06, 0.14)
        labels[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = 5
    if rng.uniform() < 0.6:
        cx, cy, r = rng.uniform(0.1, 0.9) * w, rng.uniform(0.08, 0.25) * h, size * 0.06
        labels[((xx - cx) ** 2 + (yy - cy) ** 2 < r * r) & (labels == 0)] = 6
    return Scene(labels, shade)


def label_image(scene: Scene) -> np.ndarray:
    return PALETTE[scene.labels]


_STYLE_BASE = {
    # class colours (RGB floats 0..1) per style; sky is a vertical gradient top -> horizon
    "day": {"sky": ((0.25, 0.5, 0.95), (0.7, 0.85, 1.0)), "ground": (0.3, 0.6, 0.2), "road": (0.35, 0.35, 0.38),
            "building": (0.65, 0.55, 0.45), "window": (0.55, 0.75, 0.9), "tree": (0.1, 0.4, 0.1), "sun": (1, 1, 0.8)},
    "dusk": {"sky": ((0.3, 0.2, 0.5), (1.0, 0.55, 0.3)), "ground": (0.25, 0.35, 0.15), "road": (0.3, 0.25, 0.3),
             "building": (0.45, 0.3, 0.3), "window": (1.0, 0.8, 0.4), "tree": (0.1, 0.2, 0.1), "sun": (1, 0.6, 0.3)},
    "night": {"sky": ((0.02, 0.02, 0.1), (0.1, 0.1, 0.25)), "ground": (0.05, 0.1, 0.05), "road": (0.1, 0.1, 0.12),
              "building": (0.15, 0.15, 0.2), "window": (1.0, 0.9, 0.5), "tree": (0.02, 0.08, 0.03), "sun": (0.9, 0.9, 1.0)},
    "fog": {"sky": ((0.75, 0.75, 0.78), (0.85, 0.85, 0.86)), "ground": (0.55, 0.62, 0.55), "road": (0.6, 0.6, 0.62),
            "building": (0.7, 0.68, 0.66), "window": (0.8, 0.82, 0.85), "tree": (0.45, 0.55, 0.47), "sun": (0.9, 0.9, 0.9)},
    "winter": {"sky": ((0.55, 0.65, 0.8), (0.85, 0.9, 0.95)), "ground": (0.92, 0.94, 0.97), "road": (0.5, 0.5, 0.55),
               "building": (0.55, 0.5, 0.5), "window": (0.6, 0.7, 0.8), "tree": (0.3, 0.35, 0.3), "sun": (1, 1, 0.9)},
    "autumn": {"sky": ((0.35, 0.55, 0.85), (0.8, 0.85, 0.9)), "ground": (0.55, 0.45, 0.2), "road": (0.35, 0.33, 0.33),
               "building": (0.6, 0.45, 0.35), "window": (0.6, 0.7, 0.85), "tree": (0.8, 0.35, 0.05), "sun": (1, 0.95, 0.7)},
}


def style_names(n: int) -> list[str]:
    if n < 2:
        raise ConfigError("--domains must be 2 or more")
    if n <= len(STYLES):
        return STYLES[:n]
    return STYLES + [f"style{i}" for i in range(len(STYLES), n)]


def _style_colours(style: str) -> dict[str, object]:
    if style in _STYLE_BASE:
        return _STYLE_BASE[style]
    # extra styles: the day palette rotated in hue, deterministically per name
    k = sum(map(ord, style)) % 6 + 1
    base = _STYLE_BASE["day"]
    return {name: (tuple(tuple(np.roll(c, k % 3)) for c in v) if name == "sky" else tuple(np.roll(v, k % 3)))
            for name, v in base.items()}


def render_photo(scene: Scene, style: str, rng: np.random.Generator) -> np.ndarray:
    colours = _style_colours(style)
    labels = scene.labels
    h, w = labels.shape
    yy = np.mgrid[0:h, 0:w][0].astype(np.float32) / h
    img = np.zeros((h, w, 3), dtype=np.float32)
    top, bottom = (np.array(c, dtype=np.float32) for c in colours["sky"])  # type: ignore[union-attr]
    sky = top[None, None] * (1 - yy[..., None]) + bottom[None, None] * yy[..., None]
    img[:] = sky
    noise = rng.normal(0, 1, (h, w)).astype(np.float32)
    smooth = (noise + np.roll(noise, 1, 0) + np.roll(noise, 1, 1) + np.roll(noise, (1, 1), (0, 1))) / 4
    for cid, name in enumerate(CLASSES[1:], start=1):
        mask = labels == cid
        if not mask.any():
            continue
        colour = np.array(colours[name], dtype=np.float32)
        texture = {"ground": 0.08, "tree": 0.12, "road": 0.04, "building": 0.03}.get(name, 0.01)
        value = colour[None, :] * (1 + texture * smooth[mask][:, None])
        if name == "building":
            value = value * scene.building_shade[mask][:, None]
        if name == "road":
            value = value * (0.85 + 0.3 * yy[mask][:, None])
        img[mask] = value
    img += rng.normal(0, 0.015, img.shape).astype(np.float32)
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8)


def _writer(out: Path, overwrite: bool) -> Callable[[np.ndarray, Path], None]:
    def write(array: np.ndarray, relative: Path) -> None:
        save_image(array, out / relative, overwrite=overwrite)

    return write


@dataclass
class SynthResult:
    root: Path
    layout: str
    counts: dict[str, int]


SYNTH_LAYOUTS = ("aligned", "unaligned", "domains", "single_image")  # the layouts `i2i data synth` writes


def synthesize(
    name: str,
    out: str | os.PathLike[str],
    layout: str = "aligned",
    *,
    size: int = 64,
    n_train: int = 64,
    n_test: int = 16,
    n_val: int = 0,
    n_domains: int = 3,
    seed: int = 0,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> SynthResult:
    """Write a synthetic dataset in one of the standard layouts; return the per-folder counts."""
    if name not in NAMES:
        raise ConfigError(f"unknown synthetic dataset '{name}'; known: {', '.join(NAMES)}")
    if layout not in SYNTH_LAYOUTS:
        raise ConfigError(f"unknown --layout '{layout}'; choose {', '.join(SYNTH_LAYOUTS)}")
    if size < 16:
        raise ConfigError("--size must be at least 16")
    root = Path(out)
    if root.exists() and any(root.iterdir()) and not overwrite:
        raise DataError(f"{root} exists and is not empty: pass --overwrite to write into it, or choose another OUT")
    rng = np.random.default_rng(seed)
    splits = [(split, n) for split, n in (("train", n_train), ("test", n_test), ("val", n_val)) if n > 0]
    total = sum(1 if layout == "single_image" else n for _, n in splits) * (n_domains if layout == "domains" else 1)
    draw = _Drawing(_writer(root, overwrite), rng, size, total, progress)
    counts: dict[str, int] = {}
    for split, n in splits:
        if layout == "domains":
            # multi-domain data is train/ + val/ (StarGAN v2): the test images go to val/ unless val/ is asked for
            _write_domains(draw, "val" if split == "test" and n_val <= 0 else split, n, n_domains, counts)
        else:
            _LAYOUT_WRITERS[layout](draw, split, n, counts)
    return SynthResult(root, layout, counts)


@dataclass
class _Drawing:
    """Where images go, the random stream, their size, and progress over `total` images."""

    write: Callable[[np.ndarray, Path], None]
    rng: np.random.Generator
    size: int
    total: int
    progress: Callable[[int, int], None] | None
    done: int = 0

    def tick(self) -> None:
        self.done += 1
        if self.progress:
            self.progress(self.done, self.total)


def _write_aligned(draw: _Drawing, split: str, n: int, counts: dict[str, int]) -> None:
    for i in range(n):
        scene = draw_scene(draw.size, draw.rng)
        draw.write(np.concatenate([label_image(scene), render_photo(scene, "day", draw.rng)], axis=1),
                   Path(split) / f"{i:05d}.png")
        draw.tick()
    counts[split] = n


def _write_unaligned(draw: _Drawing, split: str, n: int, counts: dict[str, int]) -> None:
    # A and B come from different scenes: there is no pairing to exploit.
    for i in range(n):
        draw.write(label_image(draw_scene(draw.size, draw.rng)), Path(f"{split}A") / f"{i:05d}.png")
        draw.write(render_photo(draw_scene(draw.size, draw.rng), "day", draw.rng), Path(f"{split}B") / f"{i:05d}.png")
        draw.tick()
    counts[f"{split}A"] = counts[f"{split}B"] = n


def _write_domains(draw: _Drawing, split: str, n: int, n_domains: int, counts: dict[str, int]) -> None:
    for style in style_names(n_domains):
        for i in range(n):
            draw.write(render_photo(draw_scene(draw.size, draw.rng), style, draw.rng), Path(split) / style / f"{i:05d}.png")
            draw.tick()
        counts[f"{split}/{style}"] = counts.get(f"{split}/{style}", 0) + n


def _write_single_image(draw: _Drawing, split: str, n: int, counts: dict[str, int]) -> None:
    """One label map and one photo of different scenes (n is ignored: one image per domain), --size wide and
    3/4 as high, so that zoom-and-patch crops have room."""
    height = max(16, draw.size * 3 // 4)
    for domain, image in (("A", label_image(draw_scene(draw.size, draw.rng))),
                          ("B", render_photo(draw_scene(draw.size, draw.rng), "day", draw.rng))):
        draw.write(np.ascontiguousarray(image[:height]), Path(f"{split}{domain}") / "00000.png")
    draw.tick()
    counts[f"{split}A"] = counts[f"{split}B"] = 1


_LAYOUT_WRITERS: dict[str, Callable[[_Drawing, str, int, dict[str, int]], None]] = {
    "aligned": _write_aligned, "unaligned": _write_unaligned, "single_image": _write_single_image}
