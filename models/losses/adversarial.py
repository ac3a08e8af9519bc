"""Adversarial losses on discriminator logits: vanilla (BCE), lsgan (MSE), wgangp/nonsaturating (softplus)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from i2i_cli.models.losses.precision import upcast


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


def r1_penalty(logits: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Mescheder et al.'s R1: the mean over images of |d sum(logits) / d real|^2 (`real` must require grad); the
    caller weights it (SinCUT: lambda_R1 / 2)."""
    (grad,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()


def interpolated_gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, alpha: torch.Tensor,
                                  constant: float = 1.0) -> torch.Tensor:
    """WGAN-GP's penalty (the pix2pix family's `cal_gradient_penalty`, type 'mixed'): mean over images of
    (|grad of the critic at alpha * real + (1 - alpha) * fake| - constant)^2; alpha: (N,) in [0, 1)."""
    a = alpha.to(real.dtype).view(-1, *([1] * (real.dim() - 1)))
    mixed = (a * real.detach() + (1 - a) * fake.detach()).requires_grad_(True)
    out = critic(mixed)
    (grad,) = torch.autograd.grad(out, mixed, torch.ones_like(out), create_graph=True)
    return ((grad.flatten(1) + 1e-16).norm(2, dim=1) - constant).pow(2).mean()
