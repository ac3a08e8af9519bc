"""The spatially-correlative loss of F-LSeSim (Zheng, Cham, Cai, CVPR 2021).

Each image is first compared with itself: for a query location, its self-similarity map is the cosine
similarity of its (mean-centred, L2-normalised) feature to the features of the locations in a window around
it. The loss compares the source's and the target's maps at the same query locations, so it is blind to
appearance and sensitive to structure. FSeSim uses fixed VGG16 features; LSeSim adds a learned 1x1-conv head
per layer, trained by its own InfoNCE loss.

Shapes: features (N, C, H, W); `query_ids` (P,) flattened locations; similarity maps (N, P, K) where K is the
number of keys in the window (H * W when the window covers the map).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def window_indices(h: int, w: int, query_ids: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(P, K) flattened key locations of a patch_size x patch_size window around each query, shifted to stay
    inside the map (so every query has the same number of keys); the whole map when the window covers it."""
    if patch_size >= h and patch_size >= w:
        return torch.arange(h * w, device=query_ids.device).expand(len(query_ids), h * w)
    kh, kw = min(patch_size, h), min(patch_size, w)
    qy, qx = query_ids // w, query_ids % w
    top = (qy - kh // 2).clamp(0, h - kh)
    left = (qx - kw // 2).clamp(0, w - kw)
    dy = torch.arange(kh, device=query_ids.device)
    dx = torch.arange(kw, device=query_ids.device)
    rows = (top[:, None] + dy[None]).unsqueeze(2)
    cols = (left[:, None] + dx[None]).unsqueeze(1)
    return (rows * w + cols).reshape(len(query_ids), kh * kw)


def similarity_maps(feat: torch.Tensor, query_ids: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(N, P, K) cosine similarities of each query's feature to the keys of its window."""
    n, c, h, w = feat.shape
    flat = feat.flatten(2)
    flat = F.normalize(flat - flat.mean(dim=2, keepdim=True), dim=1)  # (N, C, HW)
    keys = window_indices(h, w, query_ids, patch_size)  # (P, K)
    queries = flat[:, :, query_ids]  # (N, C, P)
    gathered = flat[:, :, keys.reshape(-1)].view(n, c, *keys.shape)  # (N, C, P, K)
    return torch.einsum("ncp,ncpk->npk", queries, gathered)


def compare_maps(source: torch.Tensor, target: torch.Tensor, mode: str = "cos", top_fraction: float = 0.25
                 ) -> torch.Tensor:
    """Mean distance between maps (N, P, K), only where the target's similarities are in its top fraction."""
    if top_fraction < 1.0:
        k = max(1, int(round(target.shape[-1] * top_fraction)))
        threshold = target.topk(k, dim=-1).values[..., -1:]
        mask = (target >= threshold).to(source.dtype)
        source, target = source * mask, target * mask
    if mode == "cos":
        return (1 - F.cosine_similarity(source, target, dim=-1)).mean()
    if mode == "l1":
        return (source - target).abs().mean()
    raise ValueError(f"unknown loss_mode '{mode}' (cos, l1)")


def spatial_correlative_loss(src_feats: list[torch.Tensor], tgt_feats: list[torch.Tensor], num_patches: int = 256,
                             patch_size: int = 64, mode: str = "cos", top_fraction: float = 0.25) -> torch.Tensor:
    """Mean over layers; the same random query locations for source and target (per layer)."""
    losses = []
    for fs, ft in zip(src_feats, tgt_feats):
        h, w = fs.shape[-2:]
        ids = torch.randperm(h * w, device=fs.device)[: min(num_patches, h * w)]
        losses.append(compare_maps(similarity_maps(fs, ids, patch_size), similarity_maps(ft, ids, patch_size),
                                   mode, top_fraction))
    return torch.stack(losses).mean()


class LearnedSimilarityHead(nn.Module):
    """LSeSim's per-layer head: 1x1 conv -> ReLU -> 1x1 conv with max(32, C/4) channels (keys `heads.i.N`)."""

    def __init__(self, channels: list[int]) -> None:
        super().__init__()
        self.heads = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, max(32, c // 4), 1), nn.ReLU(), nn.Conv2d(max(32, c // 4), max(32, c // 4), 1))
            for c in channels
        )

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        return [head(f) for head, f in zip(self.heads, feats)]


def similarity_infonce(anchor: torch.Tensor, positives: list[torch.Tensor], negatives: list[torch.Tensor],
                       temperature: float = 0.07) -> torch.Tensor:
    """InfoNCE on similarity maps (N, P, K): each anchor map must be closer (cosine) to the positive map at the
    same query than to every negative map (any query); averaged over positives."""
    a = F.normalize(anchor.flatten(0, 1), dim=-1)  # (NP, K)
    neg = F.normalize(torch.cat([m.flatten(0, 1) for m in negatives]), dim=-1)  # (M, K)
    neg_logits = a @ neg.t()
    losses = []
    for positive in positives:
        pos = (a * F.normalize(positive.flatten(0, 1), dim=-1)).sum(-1, keepdim=True)
        logits = torch.cat([pos, neg_logits], dim=1) / temperature
        losses.append(F.cross_entropy(logits.float(), torch.zeros(len(a), dtype=torch.long, device=a.device)))
    return torch.stack(losses).mean()


def colour_jitter(x: torch.Tensor, brightness: float = 0.5, contrast: float = 0.5, saturation: float = 0.5,
                  hue: float = 0.3) -> torch.Tensor:
    """Random colour jitter of images in [-1, 1] (one draw per batch, torch RNG), back in [-1, 1]."""
    from torchvision.transforms.v2 import functional as TF

    y = ((x + 1) / 2).clamp(0, 1)
    y = TF.adjust_brightness(y, float(torch.empty(()).uniform_(1 - brightness, 1 + brightness)))
    y = TF.adjust_contrast(y, float(torch.empty(()).uniform_(1 - contrast, 1 + contrast)))
    y = TF.adjust_saturation(y, float(torch.empty(()).uniform_(1 - saturation, 1 + saturation)))
    y = TF.adjust_hue(y, float(torch.empty(()).uniform_(-hue, hue)))
    return y * 2 - 1
