"""pix2pix-turbo's CLIP-similarity loss (GaParmar/img2img-turbo src/train_pix2pix_turbo.py):

    x = Normalize(CLIP mean, CLIP std)(images * 0.5 + 0.5)
    x = F.interpolate(x, (224, 224), mode="bilinear", align_corners=False)
    clipsim, _ = net_clip(x, caption_tokens)          # logits_per_image, (N, N)
    loss = 1 - clipsim.mean() / 100

The mean runs over the whole (N images x N captions) logit matrix, not only its diagonal: every image is pulled
towards every caption of the batch (the official batch size is 4). The CLIP is ViT-B/32, frozen, in eval mode.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from i2i_cli.models.losses.precision import upcast
from i2i_cli.models.networks.clip import CLIP_MEAN, CLIP_STD, Clip, ClipConfig

Tensor = torch.Tensor


def clip_normalise(images: Tensor, size: int = 224) -> Tensor:
    """[-1, 1] images (N, 3, H, W) -> CLIP-normalised (torchvision's Normalize), then bilinearly resized to
    size x size (align_corners False), in that order as the official."""
    x = images * 0.5 + 0.5
    mean = torch.as_tensor(CLIP_MEAN, dtype=x.dtype, device=x.device).view(-1, 1, 1)
    std = torch.as_tensor(CLIP_STD, dtype=x.dtype, device=x.device).view(-1, 1, 1)
    x = (x - mean) / std
    return F.interpolate(x, (size, size), mode="bilinear", align_corners=False)


def clip_similarity_loss(clip: Clip, images: Tensor, tokens: Tensor, size: int = 224) -> Tensor:
    """Scalar 1 - mean(CLIP logits of images x captions) / 100. images: (N, 3, H, W) in [-1, 1]; tokens:
    (M, context_length) token ids (clip.tokenize's layout, zero padded)."""
    logits_per_image, _ = clip(clip_normalise(images, size), tokens)
    return 1 - upcast(logits_per_image).mean() / 100


class ClipSimilarityLoss(nn.Module):
    """The loss with its frozen CLIP (`clip`, ViT-B/32 unless a config is given): `load_pretrained_state_dict`
    takes the released file's state dict (weights registry name "clip_vit_b32")."""

    def __init__(self, config: ClipConfig | None = None, size: int = 224) -> None:
        super().__init__()
        self.size = size
        self.clip = Clip(config)
        self.clip.requires_grad_(False)
        self.clip.eval()

    def train(self, mode: bool = True) -> ClipSimilarityLoss:  # noqa: ARG002 - the CLIP stays in eval mode
        return super().train(False)

    def load_pretrained_state_dict(self, state: dict[str, Any]) -> None:
        self.clip.load_pretrained_state_dict(state)

    def forward(self, images: Tensor, tokens: Tensor) -> Tensor:
        return clip_similarity_loss(self.clip, images, tokens, self.size)
