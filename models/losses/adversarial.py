"""Adversarial losses on discriminator logits: vanilla (BCE), lsgan (MSE), wgangp/nonsaturating (softplus)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from i2i_cli.models.losses.precision import upcast
from torch import nn


def gan_loss(logits: torch.Tensor, target_is_real: bool, mode: str = "vanilla") -> torch.Tensor:
    """Mean adversarial loss of logits (any shape) against an all-real or all-fake target.

    vanilla: BCE with logits (pix2pix); lsgan: MSE to 1/0 (CycleGAN, CUT); nonsaturating: softplus(-x) for
    real and softplus(x) for fake (StarGAN v2, = BCE with logits); wgangp: -mean for real, mean for fake.
    """
    if mode in ("vanilla", "nonsaturating"):
        target = torch.ones_like(logits) if target_is_real else torch.zeros_like(logits)
        return F.binary_cross_entropy_with_logits(logits, target)
    if mode == "lsgan":
        target = torch.ones_like(logits) if target_is_real else torch.zeros_like(logits)
        return F.mse_loss(logits, target)
    if mode == "wgangp":
        return -logits.mean() if target_is_real else logits.mean()
    raise ValueError(f"unknown gan mode '{mode}' (vanilla, lsgan, nonsaturating, wgangp)")


class GANLoss(nn.Module):
    def __init__(self, mode: str = "vanilla") -> None:
        super().__init__()
        self.mode = mode

    def forward(self, logits: torch.Tensor, target_is_real: bool) -> torch.Tensor:
        return gan_loss(upcast(logits), target_is_real, self.mode)
