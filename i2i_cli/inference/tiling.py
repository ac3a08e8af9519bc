"""Arrays through a translator at any size: reflect-padding to the network's multiple, overlapping tiles with
blended seams for images past memory, the size checks and --resize."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from i2i_cli.data.images import (
    to_tensor_batch,
    to_uint8_batch,
)
from i2i_cli.errors import BadImageError, ConfigError


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad (N, C, H, W) on the bottom/right to multiples of `multiple`; return the original (H, W)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (h, w)


def check_input_size(array: np.ndarray, path: Path, translator: Any, tile: int = 0) -> None:
    h, w = array.shape[:2]
    if min(h, w) < translator.min_size:
        raise BadImageError(path, f"{w}x{h} is smaller than this network takes ({translator.min_size} px); "
                                  "upscale it or use --resize")
    static = getattr(translator, "static_size", None)  # an ONNX file exported with --static-size H W
    if static and (h, w) != static and not (tile and static == (tile, tile) and min(h, w) >= tile):
        hint = f"--tile {static[0]}, " if static[0] == static[1] else ""
        raise BadImageError(path, f"{w}x{h}, but this ONNX file takes {static[1]}x{static[0]} images only (exported "
                                  f"with --static-size); translate with {hint}resized images, or export without "
                                  "--static-size")


def resize_shorter_side(array: np.ndarray, resize: int | None) -> np.ndarray:
    if not resize:
        return array
    from PIL import Image

    h, w = array.shape[:2]
    scale = resize / min(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(array).resize(size, Image.BICUBIC))


def restore_size(array: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """--keep-size: an output (or a grey mask) scaled back to its input's (width, height) before --resize."""
    if size is None or size == (array.shape[1], array.shape[0]):
        return array
    from PIL import Image

    resample = Image.BICUBIC if array.ndim == 3 else Image.BILINEAR
    return np.asarray(Image.fromarray(array).resize(size, resample))


def _ramp(length: int, overlap: int, first: bool, last: bool, blend: str = "linear") -> torch.Tensor:
    """Blending weights along one axis of a tile: linear (or cosine) ramps over the overlaps, 1 elsewhere."""
    weights = torch.ones(length)
    # the outer quarter of each overlap gets no weight: a tile's edge pixels lack context the network needs
    margin = overlap // 4
    ramp = ((torch.arange(overlap) - margin + 1) / (overlap - 2 * margin + 1)).clamp(0, 1)
    if blend == "cosine":  # same support, smooth at both ends; the two tiles' weights still sum to one
        ramp = 0.5 - 0.5 * torch.cos(torch.pi * ramp)
    if not first and overlap:
        weights[:overlap] = ramp
    if not last and overlap:
        weights[-overlap:] = torch.minimum(weights[-overlap:], ramp.flip(0))
    return weights


def _starts(size: int, tile: int, overlap: int) -> list[int]:
    if size <= tile:
        return [0]
    step = max(1, tile - overlap)
    starts = list(range(0, size - tile, step)) + [size - tile]
    return sorted(set(starts))


TILES_PER_FORWARD = 8  # tiles exist for images past memory: a bounded number per forward pass


def run_tiled(translator: Any, x: torch.Tensor, tile: int, overlap: int, blend: str = "linear") -> torch.Tensor:
    """Translate (N, 3, H, W) in overlapping tiles blended with linear ramps (for images past memory).

    Exact away from the seams for fully convolutional networks; networks that normalise over the whole
    image (instance norm, pix2pix's per-image batch norm) see each tile's own statistics instead."""
    n, _, h, w = x.shape
    out = torch.zeros(n, 3, h, w)
    total = torch.zeros(1, 1, h, w)
    ys, xs = _starts(h, tile, overlap), _starts(w, tile, overlap)
    places = [(iy, top, ix, left) for iy, top in enumerate(ys) for ix, left in enumerate(xs)]
    patches = [x[..., top : top + tile, left : left + tile] for _, top, _, left in places]
    for (iy, top, ix, left), y in zip(places, translate_tiles(translator, patches)):
        ph, pw = y.shape[-2:]
        weight = (_ramp(ph, overlap, iy == 0, iy == len(ys) - 1, blend)[:, None]
                  * _ramp(pw, overlap, ix == 0, ix == len(xs) - 1, blend)[None, :])[None, None]
        out[..., top : top + ph, left : left + pw] += y * weight
        total[..., top : top + ph, left : left + pw] += weight
    return out / total.clamp_min(1e-8)


def translate_tiles(translator: Any, patches: list[torch.Tensor], per_forward: int = TILES_PER_FORWARD
                    ) -> list[torch.Tensor]:
    """Each (N, 3, h, w) patch translated, on the CPU as float: up to `per_forward` patches of one shape go
    through the network in one batch (one forward per group instead of one per tile; a network that treats
    batch elements independently gives the same numbers)."""
    out: list[torch.Tensor | None] = [None] * len(patches)
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, patch in enumerate(patches):
        by_shape.setdefault(tuple(patch.shape), []).append(i)
    for indices in by_shape.values():
        n = patches[indices[0]].shape[0]
        step = max(1, per_forward // max(1, n))
        for start in range(0, len(indices), step):
            group = indices[start : start + step]
            padded, (ph, pw) = pad_to_multiple(torch.cat([patches[i] for i in group]), translator.size_multiple)
            y = translator(padded)[..., :ph, :pw].float().cpu()
            for i, chunk in zip(group, y.split(n)):
                out[i] = chunk
    return out  # type: ignore[return-value]


def run_array(translator: Any, arrays: list[np.ndarray], tile: int = 0, overlap: int = 32,
              blend: str = "linear") -> list[np.ndarray]:
    """Translate same-size uint8 (H, W, 3) arrays; outputs have the inputs' size."""
    x = to_tensor_batch(arrays)
    if tile and max(x.shape[-2:]) > tile:
        check_tile_options(translator, tile, overlap, blend)
        y = run_tiled(translator, x, tile, overlap, blend)
        return to_uint8_batch(y)
    padded, (h, w) = pad_to_multiple(x, translator.size_multiple)
    y = translator(padded)[..., :h, :w]
    return to_uint8_batch(y)


def run_masks(translator: Any, arrays: list[np.ndarray]) -> list[np.ndarray]:
    """Attention masks (grey uint8, the input's size) of same-size uint8 arrays."""
    x = to_tensor_batch(arrays)
    padded, (h, w) = pad_to_multiple(x, translator.size_multiple)
    with torch.no_grad():
        m = translator.mask_net(padded.to(translator.device))[..., :h, :w]
    return [np.ascontiguousarray(o) for o in m[:, 0].clamp(0, 1).mul(255).round().byte().cpu().numpy()]


def check_tile_options(translator: Any, tile: int, overlap: int, blend: str) -> None:
    if not tile:
        return
    multiple = getattr(translator, "size_multiple", 1)
    if tile < 0 or tile % multiple or overlap >= tile or overlap < 0:
        fit = -(-max(tile, overlap + 1) // multiple) * multiple  # the next multiple that also exceeds the overlap
        raise ConfigError(f"--tile {tile}: must be a multiple of {multiple} for this network (e.g. --tile {fit}) "
                          f"and larger than --overlap {overlap}")
    if blend not in ("linear", "cosine"):
        raise ConfigError(f"--blend {blend}: choose linear or cosine")
