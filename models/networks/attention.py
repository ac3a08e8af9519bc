"""The attention network of attention-guided CycleGAN (Mejjati et al., NeurIPS 2018): image -> mask in [0, 1]."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _Residual(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.block(x))


class AttentionNetwork(nn.Module):
    """c7s1-32, c3s2-64, one residual block, nearest x2 up-sampling, c3s1-64, c3s1-32, c7s1-1, sigmoid
    (the official TensorFlow layout, at half resolution inside)."""

    def __init__(self, ngf: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.ReflectionPad2d(3), nn.Conv2d(3, ngf, 7), nn.InstanceNorm2d(ngf), nn.ReLU(True),
            nn.Conv2d(ngf, ngf * 2, 3, stride=2, padding=1), nn.InstanceNorm2d(ngf * 2), nn.ReLU(True),
            _Residual(ngf * 2),
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(ngf * 2, ngf * 2, 3, padding=1), nn.InstanceNorm2d(ngf * 2), nn.ReLU(True),
            nn.Conv2d(ngf * 2, ngf, 3, padding=1), nn.InstanceNorm2d(ngf), nn.ReLU(True),
            nn.ReflectionPad2d(3), nn.Conv2d(ngf, 1, 7), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def attend(x: torch.Tensor, translated: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """m * G(x) + (1 - m) * x: only the attended region changes."""
    return mask * translated + (1 - mask) * x


class AttendedGenerator(nn.Module):
    """The inference composite, as one module for export: x -> attend(x, G(x), A(x))."""

    def __init__(self, generator: nn.Module, attention: nn.Module) -> None:
        super().__init__()
        self.generator = generator
        self.attention = attention

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return attend(x, self.generator(x), self.attention(x))
