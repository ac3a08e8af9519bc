"""Per-location content losses between two feature maps, for error maps (every location is a query).

Shapes: features (1, C, H, W) of the source x and the target y at the same resolution; each function returns
the error at every location, (H, W).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _flat(feat: torch.Tensor) -> torch.Tensor:
    return feat[0].flatten(1).t()  # (HW, C)


def perceptual_map(fx: torch.Tensor, fy: torch.Tensor) -> torch.Tensor:
    """Mean over channels of the squared feature difference (the perceptual loss, per location)."""
    return (fx - fy).pow(2).mean(dim=1)[0]


def patchnce_map(fx: torch.Tensor, fy: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    """PatchNCE per location: -log softmax over all y locations of the x query's similarity, at its own spot."""
    q, k = F.normalize(_flat(fx), dim=1), F.normalize(_flat(fy), dim=1)
    logits = q @ k.t() / temperature
    h, w = fx.shape[-2:]
    return (torch.logsumexp(logits, dim=1) - logits.diagonal()).view(h, w)
