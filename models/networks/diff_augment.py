"""Differentiable augmentation (Zhao et al. 2020, DiffAugment_pytorch.py) as the vision-aided discriminator
applies it (nupurkmr9/vision-aided-gan vision_aided_loss/DiffAugment_pytorch.py, policy
'color,translation,cutout'), with its random draws made through models/draws.py so they can be replayed.

Draw names, `{prefix}.` followed by (shapes for N images; made on x's device, in the official order, so one
torch seed gives the official draws):
- `brightness`, `saturation`, `contrast`: torch.rand(N, 1, 1, 1) in x's dtype (added as u - 0.5; a factor
  2u; a factor u + 0.5);
- `translation_x`, `translation_y`: torch.randint(-s, s + 1, (N, 1, 1)), s = int(size * 0.125 + 0.5) of the
  height (x) and width (y);
- `cutout_x`, `cutout_y`: torch.randint(0, size + (1 - cut % 2), (N, 1, 1)), cut = int(size * 0.5 + 0.5),
  the centre of the zeroed square.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from i2i_cli.models.draws import draw

Tensor = torch.Tensor
POLICY = ("color", "translation", "cutout")


def _drawn(cache: dict[str, Any], name: str, make: Callable[[], Tensor], like: Tensor, dtype: torch.dtype) -> Tensor:
    """A draw, moved to x's device (a replayed draw may come from a CPU fixture)."""
    return draw(cache, name, make).to(device=like.device, dtype=dtype)


def _uniform(x: Tensor, cache: dict[str, Any], name: str) -> Tensor:
    make = lambda: torch.rand(x.size(0), 1, 1, 1, dtype=x.dtype, device=x.device)  # noqa: E731
    return _drawn(cache, name, make, x, x.dtype)


def _integers(x: Tensor, cache: dict[str, Any], name: str, low: int, high: int) -> Tensor:
    make = lambda: torch.randint(low, high, size=[x.size(0), 1, 1], device=x.device)  # noqa: E731
    return _drawn(cache, name, make, x, torch.long)


def color(x: Tensor, cache: dict[str, Any], prefix: str) -> Tensor:
    x = x + (_uniform(x, cache, f"{prefix}.brightness") - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (_uniform(x, cache, f"{prefix}.saturation") * 2) + mean
    mean = x.mean(dim=[1, 2, 3], keepdim=True)
    return (x - mean) * (_uniform(x, cache, f"{prefix}.contrast") + 0.5) + mean


def _grid(x: Tensor, height: int, width: int) -> tuple[Tensor, Tensor, Tensor]:
    ranges = (torch.arange(n, dtype=torch.long, device=x.device) for n in (x.size(0), height, width))
    return torch.meshgrid(*ranges, indexing="ij")


def translation(x: Tensor, cache: dict[str, Any], prefix: str, ratio: float = 0.125) -> Tensor:
    """Shift each image by whole pixels, filling with zeros."""
    shift_x, shift_y = int(x.size(2) * ratio + 0.5), int(x.size(3) * ratio + 0.5)
    move_x = _integers(x, cache, f"{prefix}.translation_x", -shift_x, shift_x + 1)
    move_y = _integers(x, cache, f"{prefix}.translation_y", -shift_y, shift_y + 1)
    batch, grid_x, grid_y = _grid(x, x.size(2), x.size(3))
    grid_x = torch.clamp(grid_x + move_x + 1, 0, x.size(2) + 1)
    grid_y = torch.clamp(grid_y + move_y + 1, 0, x.size(3) + 1)
    padded = F.pad(x, [1, 1, 1, 1, 0, 0, 0, 0])
    return padded.permute(0, 2, 3, 1).contiguous()[batch, grid_x, grid_y].permute(0, 3, 1, 2)


def cutout(x: Tensor, cache: dict[str, Any], prefix: str, ratio: float = 0.5) -> Tensor:
    """Zero one square of half the image's size per image (clipped at the borders)."""
    size = int(x.size(2) * ratio + 0.5), int(x.size(3) * ratio + 0.5)
    offset_x = _integers(x, cache, f"{prefix}.cutout_x", 0, x.size(2) + (1 - size[0] % 2))
    offset_y = _integers(x, cache, f"{prefix}.cutout_y", 0, x.size(3) + (1 - size[1] % 2))
    batch, grid_x, grid_y = _grid(x, size[0], size[1])
    grid_x = torch.clamp(grid_x + offset_x - size[0] // 2, min=0, max=x.size(2) - 1)
    grid_y = torch.clamp(grid_y + offset_y - size[1] // 2, min=0, max=x.size(3) - 1)
    mask = torch.ones(x.size(0), x.size(2), x.size(3), dtype=x.dtype, device=x.device)
    mask[batch, grid_x, grid_y] = 0
    return x * mask.unsqueeze(1)


_AUGMENTS = {"color": color, "translation": translation, "cutout": cutout}


def diff_augment(x: Tensor, cache: dict[str, Any], prefix: str, policy: tuple[str, ...] = POLICY) -> Tensor:
    """(N, C, H, W) -> the same shape, augmented per image; differentiable in x."""
    for name in policy:
        x = _AUGMENTS[name](x, cache, prefix)
    return x.contiguous() if policy else x
