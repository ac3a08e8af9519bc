"""CUT's netF ('mlp_sample'): sample patch locations of feature maps and project them with a per-layer MLP."""

from __future__ import annotations

import torch
from torch import nn


def l2_normalize(x: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Rows of (N, C) divided by (their L2 norm + eps), the reference's Normalize(2) (not F.normalize's clamp)."""
    return x / (x.pow(2).sum(1, keepdim=True).sqrt() + eps)


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
        """feats: per layer (B, C_i, H_i, W_i). Returns per layer (B * P_i, nc) unit rows, image-major
        (P_i = min(num_patches, H_i * W_i)), and the (P_i,) location ids; pass the ids back to sample the
        other image's features at the same locations."""
        samples, ids = [], []
        if patch_ids is None:
            patch_ids = self.sample_ids(feats, num_patches)
        for i, feat in enumerate(feats):
            b, c, h, w = feat.shape
            flat = feat.permute(0, 2, 3, 1).reshape(b, h * w, c)
            chosen = patch_ids[i].to(feat.device)
            x = flat[:, chosen, :].reshape(-1, c)
            if self.use_mlp:
                x = getattr(self, f"mlp_{i}")(x)
            samples.append(l2_normalize(x))
            ids.append(chosen)
        return samples, ids

    @staticmethod
    def sample_ids(feats: list[torch.Tensor], num_patches: int = 256) -> list[torch.Tensor]:
        """Per layer, `min(num_patches, H * W)` distinct locations (row-major ids into H * W), in random order."""
        return [torch.randperm(f.shape[2] * f.shape[3], device=f.device)[: min(num_patches, f.shape[2] * f.shape[3])]
                for f in feats]
