"""Networks of attention-guided CycleGAN (Mejjati et al., NeurIPS 2018), laid out as the official TensorFlow
code (AlamiMejjati/Unsupervised-Attention-guided-Image-to-Image-Translation, model.py) builds them.

- `AttentionNetwork` (the official `autoenc_upsample`): image -> mask in [0, 1] at the input's size.
- `AttentionGuidedDiscriminator` (the official `discriminator`): a PatchGAN whose instance norms can be
  switched off, as the official code does once the discriminator only sees the attended foreground.
- `attend` / `AttendedGenerator`: the composite m * G(x) + (1 - m) * x.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _affine_instance_norm(channels: int) -> nn.InstanceNorm2d:
    """TensorFlow's instance_norm of the official code: learned scale ~ N(1, 0.02) and offset 0."""
    norm = nn.InstanceNorm2d(channels, affine=True)
    nn.init.normal_(norm.weight, 1.0, 0.02)
    nn.init.zeros_(norm.bias)
    return norm


class AttentionResidualBlock(nn.Module):
    """relu(x + IN(conv3(relu(IN(conv3(x)))))), reflection padded (the official build_resnet_block_Att)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), _affine_instance_norm(channels), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), _affine_instance_norm(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.block(x))


class AttentionNetwork(nn.Module):
    """(N, 3, H, W) -> (N, 1, H, W) mask in [0, 1]; H and W multiples of 4.

    The official layout: reflect-pad 3, 7x7 conv stride 2 (ngf); 3x3 conv stride 2 (2 ngf); one residual block;
    nearest x2, conv (2 ngf); nearest x2, conv (ngf); conv to 1 channel, sigmoid. Instance norm and ReLU after
    every conv but the last. The official code passes the kernel sizes of the last three convolutions where
    TensorFlow takes the stride, so they run as 1x1 convolutions; that is what its released models were trained
    with, and it is kept here.
    """

    def __init__(self, ngf: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.ReflectionPad2d(3), nn.Conv2d(3, ngf, 7, stride=2), _affine_instance_norm(ngf), nn.ReLU(True),
            nn.Conv2d(ngf, ngf * 2, 3, stride=2, padding=1), _affine_instance_norm(ngf * 2), nn.ReLU(True),
            AttentionResidualBlock(ngf * 2),
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(ngf * 2, ngf * 2, 1), _affine_instance_norm(ngf * 2), nn.ReLU(True),
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(ngf * 2, ngf, 1), _affine_instance_norm(ngf), nn.ReLU(True),
            nn.Conv2d(ngf, 1, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class AttentionGuidedDiscriminator(nn.Module):
    """The official PatchGAN: zero-pad 2 before each 4x4 conv; strides 2, 2, 2, 1, 1; ndf, 2, 4, 8 ndf, 1;
    instance norm (affine) and LeakyReLU 0.2 after each conv but the last, the first included.

    `normalise` switches every instance norm on or off (the official `donorm`: off once D sees only the
    attended foreground, whose zeroed background would dominate the statistics). (N, C, H, W) -> logits.
    """

    def __init__(self, in_channels: int = 3, ndf: int = 64) -> None:
        super().__init__()
        widths = [ndf, ndf * 2, ndf * 4, ndf * 8]
        strides = [2, 2, 2, 1]
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        previous = in_channels
        for width, stride in zip(widths, strides):
            self.convs.append(nn.Conv2d(previous, width, 4, stride=stride, padding=2))
            self.norms.append(_affine_instance_norm(width))
            previous = width
        self.last = nn.Conv2d(previous, 1, 4, stride=1, padding=2)
        self.normalise = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv, norm in zip(self.convs, self.norms):
            x = conv(x)
            x = F.leaky_relu(norm(x) if self.normalise else x, 0.2)
        return self.last(x)


def attend(x: torch.Tensor, translated: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """m * G(x) + (1 - m) * x: only the attended region changes (mask (N, 1, H, W) broadcast over channels)."""
    return mask * translated + (1 - mask) * x


def foreground(image: torch.Tensor, mask: torch.Tensor, threshold: float) -> torch.Tensor:
    """The official discriminator input: image * (mask >= threshold); no gradient flows through the mask."""
    return image * (mask.detach() >= threshold).to(image.dtype)


class AttendedGenerator(nn.Module):
    """The inference composite, as one module for export: x -> attend(x, G(x), A(x))."""

    def __init__(self, generator: nn.Module, attention: nn.Module) -> None:
        super().__init__()
        self.generator = generator
        self.attention = attention

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return attend(x, self.generator(x), self.attention(x))
