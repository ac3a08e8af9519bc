"""The spatially-correlative loss of F-LSeSim (Zheng, Cham, Cai, CVPR 2021), as in lyndonzheng/F-LSeSim.

Each image is first compared with itself: features are mean-centred over the locations, then either
L2-normalised over channels (`use_norm`, cosine similarities) or divided by sqrt(C) (the official default,
similarities squashed by tanh(s / 10)). A query location's self-similarity map holds its similarity to the keys
of a `patch_size` window around it (every location when the window is not smaller than the map in both
dimensions). The loss compares the source's and the target's maps at the same sampled query locations, keeping
only the entries where the target's similarity is in its top quarter: blind to appearance, sensitive to
structure. FSeSim uses fixed VGG16 features; LSeSim adds a learned 1x1-conv head per layer, trained by its own
InfoNCE loss (`similarity_infonce`).

Shapes: features (N, C, H, W); `query_ids` (P,) flattened locations (row * W + col); similarity maps (N, P, K)
where K is the number of keys (patch_size**2 for a window, H * W for the whole map).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from i2i_cli.models.losses.precision import upcast

LOSS_MODES = ("cos", "l1")


def is_windowed(h: int, w: int, patch_size: int) -> bool:
    """The official rule: a window only when it is smaller than the map in both dimensions."""
    return patch_size < h and patch_size < w


def window_indices(h: int, w: int, query_ids: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(P, K) flattened key locations: the patch_size x patch_size window around each query, shifted to stay
    inside the map (the official clamping); every location (K = H * W) when the window is not smaller."""
    if not is_windowed(h, w, patch_size):
        return torch.arange(h * w, device=query_ids.device).expand(len(query_ids), h * w)
    qy, qx = query_ids // w, query_ids % w
    top = (qy - patch_size // 2).clamp(0, h - patch_size)
    left = (qx - patch_size // 2).clamp(0, w - patch_size)
    offsets = torch.arange(patch_size, device=query_ids.device)
    rows = (top[:, None] + offsets[None]).unsqueeze(2)
    cols = (left[:, None] + offsets[None]).unsqueeze(1)
    return (rows * w + cols).reshape(len(query_ids), patch_size * patch_size)


def sample_query_ids(h: int, w: int, num_patches: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """`num_patches` random distinct locations (torch RNG); every location when num_patches <= 0."""
    if num_patches <= 0:
        return torch.arange(h * w, device=device)
    return torch.randperm(h * w, device=device)[: min(num_patches, h * w)]


def centred_features(feat: torch.Tensor, use_norm: bool = False) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, HW): mean-centred over locations; L2-normalised over C, or divided by sqrt(C)."""
    flat = feat.flatten(2)
    flat = flat - flat.mean(dim=2, keepdim=True)
    return F.normalize(flat, dim=1) if use_norm else flat / math.sqrt(flat.shape[1])


def similarity_maps(feat: torch.Tensor, query_ids: torch.Tensor, patch_size: int, use_norm: bool = False
                    ) -> torch.Tensor:
    """(N, P, K) similarity of each query's feature to the keys of its window (or of the whole map)."""
    n, c, h, w = feat.shape
    flat = centred_features(feat, use_norm)
    queries = flat[:, :, query_ids]  # (N, C, P)
    if is_windowed(h, w, patch_size):
        keys = window_indices(h, w, query_ids, patch_size)  # (P, K)
        gathered = flat[:, :, keys.reshape(-1)].view(n, c, *keys.shape)  # (N, C, P, K)
        sim = torch.einsum("ncp,ncpk->npk", queries, gathered)
    else:
        sim = queries.transpose(1, 2) @ flat  # (N, P, HW), without materialising a copy per query
    return sim if use_norm else torch.tanh(sim / 10)


def map_distances(source: torch.Tensor, target: torch.Tensor, mode: str = "cos", use_norm: bool = False,
                  top_fraction: float = 0.25) -> torch.Tensor:
    """(N, P) distance between the source's and the target's map of each query (maps (N, P, K)).

    Entries where the target's similarity is below its (int(K * top_fraction) + 1)-th largest are zeroed in
    both maps (the official top-quarter selection). The official criterion is L1 with `use_norm`, SmoothL1
    (beta 1) without. cos: the criterion between 1 and the cosine of the two maps, i.e. 1 - cos with
    `use_norm` and SmoothL1(1 - cos) = 0.5 (1 - cos)^2 below 1, (1 - cos) - 0.5 above, without; l1: the
    criterion between both maps scaled by K / int(K * top_fraction), averaged over K, as the official code
    scales them.
    """
    if mode not in LOSS_MODES:
        raise ValueError(f"unknown loss_mode '{mode}' ({', '.join(LOSS_MODES)})")
    k = target.shape[-1]
    kept = max(1, int(k * top_fraction))
    if kept < k:
        threshold = target.topk(kept + 1, dim=-1).values[..., -1:]
        below = target < threshold
        source, target = source.masked_fill(below, 0.0), target.masked_fill(below, 0.0)
    if mode == "cos":
        cosine = F.cosine_similarity(source, target, dim=-1)
        ones = torch.ones_like(cosine)
        return (ones - cosine).abs() if use_norm else F.smooth_l1_loss(ones, cosine, reduction="none")
    scale = k / kept
    if use_norm:
        return (scale * source - scale * target).abs().mean(-1)
    return F.smooth_l1_loss(scale * source, scale * target, reduction="none").mean(-1)


def compare_maps(source: torch.Tensor, target: torch.Tensor, mode: str = "cos", use_norm: bool = False,
                 top_fraction: float = 0.25) -> torch.Tensor:
    """Scalar: the mean of `map_distances` (the official per-layer loss)."""
    return map_distances(source, target, mode, use_norm, top_fraction).mean()


def spatial_correlative_loss(src_feats: list[torch.Tensor], tgt_feats: list[torch.Tensor], num_patches: int = 256,
                             patch_size: int = 64, mode: str = "cos", use_norm: bool = False,
                             top_fraction: float = 0.25) -> torch.Tensor:
    """Mean over layers of `compare_maps`; each layer draws its own query locations, shared by both images."""
    losses = []
    for fs, ft in zip(src_feats, tgt_feats):
        ids = sample_query_ids(fs.shape[-2], fs.shape[-1], num_patches, fs.device)
        losses.append(compare_maps(similarity_maps(fs, ids, patch_size, use_norm),
                                   similarity_maps(ft, ids, patch_size, use_norm), mode, use_norm, top_fraction))
    return torch.stack(losses).mean()


def spatial_correlative_map(feat_src: torch.Tensor, feat_tgt: torch.Tensor, patch_size: int = 64, mode: str = "cos",
                            use_norm: bool = False, top_fraction: float = 0.25, chunk_elements: int = 1 << 25
                            ) -> torch.Tensor:
    """(N, H, W): the spatially-correlative distance with every location a query (for error maps).

    The mean of the returned map equals the loss with all locations sampled. Queries are processed in chunks
    so that no intermediate holds more than about `chunk_elements` values.
    """
    n, c, h, w = feat_src.shape
    keys = patch_size * patch_size if is_windowed(h, w, patch_size) else h * w
    per_query = n * keys * (c if is_windowed(h, w, patch_size) else 1)
    step = max(1, chunk_elements // max(1, per_query))
    ids = torch.arange(h * w, device=feat_src.device)
    rows = [map_distances(similarity_maps(feat_src, part, patch_size, use_norm),
                          similarity_maps(feat_tgt, part, patch_size, use_norm), mode, use_norm, top_fraction)
            for part in ids.split(step)]
    return torch.cat(rows, dim=1).view(n, h, w)


def layers_map(feats_src: list[torch.Tensor], feats_tgt: list[torch.Tensor], patch_size: int = 64, mode: str = "cos",
               use_norm: bool = False, top_fraction: float = 0.25) -> torch.Tensor:
    """(H, W) of the first image: spatial_correlative_map per layer (batch 1), each brought to the first layer's
    size, averaged over layers (the error map of the loss over several layers)."""
    size = feats_src[0].shape[-2:]
    maps = [F.interpolate(spatial_correlative_map(upcast(s), upcast(t), patch_size, mode, use_norm, top_fraction)[None],
                          size=size, mode="bilinear", align_corners=False)[0, 0]
            for s, t in zip(feats_src, feats_tgt)]
    return torch.stack(maps).mean(0)


class LearnedSimilarityHead(nn.Module):
    """LSeSim's per-layer head: 1x1 conv -> ReLU -> 1x1 conv with max(32, C/4) channels (keys `heads.i.N`;
    the official code names them conv_i.N inside its loss module)."""

    def __init__(self, channels: list[int]) -> None:
        super().__init__()
        self.heads = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, max(32, c // 4), 1), nn.ReLU(), nn.Conv2d(max(32, c // 4), max(32, c // 4), 1))
            for c in channels
        )

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        return [head(f) for head, f in zip(self.heads, feats)]


def similarity_infonce(source: torch.Tensor, target: torch.Tensor, other: torch.Tensor, temperature: float = 0.07
                       ) -> torch.Tensor:
    """The official InfoNCE on similarity maps, each (B, P, K), maps L2-normalised over K.

    For query i of image b the logits are: source_i . target_j for every query j of the same image (j = i is
    the positive), source_i . other_j and target_i . other_j for every j (negatives); cross-entropy with the
    positive, averaged over B * P rows.
    """
    b, p, _ = source.shape
    s, t, o = (F.normalize(upcast(m), dim=-1) for m in (source, target, other))
    logits = torch.cat([s @ t.transpose(1, 2), s @ o.transpose(1, 2), t @ o.transpose(1, 2)], dim=-1)
    labels = torch.arange(p, device=source.device).repeat(b)
    return F.cross_entropy(logits.reshape(b * p, 3 * p) / temperature, labels)


JITTER_RANGES = {"brightness": 0.5, "contrast": 0.5, "saturation": 0.5, "hue": 0.3}  # the official --augment


@dataclass(frozen=True)
class JitterDraw:
    """One image's ColorJitter draw: the order of the four adjustments (0 brightness, 1 contrast, 2 saturation,
    3 hue) and their factors."""

    order: tuple[int, ...]
    brightness: float | None  # None: that adjustment is off (a zero range)
    contrast: float | None
    saturation: float | None
    hue: float | None


def draw_jitter(ranges: dict[str, float] | None = None) -> JitterDraw:
    """torchvision's ColorJitter draw (torch RNG), with the official ranges unless `ranges` says otherwise."""
    from torchvision.transforms import ColorJitter

    jitter = ColorJitter(**(ranges or JITTER_RANGES))
    order, *factors = ColorJitter.get_params(jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue)
    return JitterDraw(tuple(int(i) for i in order), *(None if f is None else float(f) for f in factors))


def jitter_8bit(image: torch.Tensor, draw: JitterDraw) -> torch.Tensor:
    """uint8 (3, H, W) -> uint8 (3, H, W): the adjustments applied to the PIL image in the drawn order, each
    rounding to 8 bits, as ColorJitter does on the official loader's PIL crop."""
    import numpy as np
    from PIL import Image
    from torchvision.transforms import functional as TF

    pil = Image.fromarray(image.permute(1, 2, 0).cpu().numpy())
    steps = {0: (TF.adjust_brightness, draw.brightness), 1: (TF.adjust_contrast, draw.contrast),
             2: (TF.adjust_saturation, draw.saturation), 3: (TF.adjust_hue, draw.hue)}
    for step in draw.order:
        adjust, factor = steps[step]
        if factor is not None:
            pil = adjust(pil, factor)
    return torch.from_numpy(np.asarray(pil).copy()).permute(2, 0, 1)


def to_8bit(x: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] made from 8-bit pixels (every training batch) -> those uint8 pixels, exactly."""
    return (x.detach().float().cpu().clamp(-1, 1) + 1).mul(127.5).round().to(torch.uint8)


def from_8bit(image: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 -> [-1, 1] as the official ToTensor + Normalize(0.5, 0.5) computes it (in `dtype`: computed in
    float32 and cast, a float64 image would differ from the official float64 one by float32 round-off)."""
    return (image.to(dtype) / 255 - 0.5) / 0.5


def colour_jitter(x: torch.Tensor, draws: list[JitterDraw] | None = None) -> torch.Tensor:
    """LSeSim's augmentation: each image of the batch (in [-1, 1], from 8-bit pixels) jittered on its 8-bit
    pixels after crop and flip, as the official data loader does (`draws`: one per image, else drawn here)."""
    draws = draws if draws is not None else [draw_jitter() for _ in range(len(x))]
    dtype = torch.promote_types(x.dtype, torch.float32)  # float64 stays float64 (the golden replays)
    out = torch.stack([from_8bit(jitter_8bit(image, draw), dtype) for image, draw in zip(to_8bit(x), draws)])
    return out.to(device=x.device, dtype=x.dtype)
