"""CUT's netF ('mlp_sample'): sample patch locations of feature maps and project them with a per-layer MLP."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PatchSampleMLP(nn.Module):
    """For each layer: pick `num_patches` locations (shared across the batch), then Linear-ReLU-Linear and
    L2-normalise. The reference builds the MLPs lazily at the first forward pass; they are built here from the
    known channel counts so that the trainer can create the optimizer up front (keys `mlp_0.0.weight` ...)."""

    def __init__(self, in_channels: list[int], nc: int = 256, use_mlp: bool = True) -> None:
        super().__init__()
        self.use_mlp = use_mlp
        for i, channels in enumerate(in_channels):
            if use_mlp:
                setattr(self, f"mlp_{i}", nn.Sequential(nn.Linear(channels, nc), nn.ReLU(), nn.Linear(nc, nc)))
        self.n_layers = len(in_channels)

    def forward(self, feats: list[torch.Tensor], num_patches: int = 256,
                patch_ids: list[torch.Tensor] | None = None) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        samples, ids = [], []
        for i, feat in enumerate(feats):
            b, c, h, w = feat.shape
            flat = feat.permute(0, 2, 3, 1).reshape(b, h * w, c)
            if patch_ids is not None:
                chosen = patch_ids[i]
            else:
                chosen = torch.randperm(h * w, device=feat.device)[: min(num_patches, h * w)]
            x = flat[:, chosen, :].reshape(-1, c)
            if self.use_mlp:
                x = getattr(self, f"mlp_{i}")(x)
            samples.append(F.normalize(x, dim=1))
            ids.append(chosen)
        return samples, ids
