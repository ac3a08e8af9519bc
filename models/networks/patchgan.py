"""PatchGAN discriminators, reference key layouts: NLayerDiscriminator (`model.N`; receptive field 16x16 with
n_layers=1, 70x70 with 3, 286x286 with 5) and the 1x1 PixelDiscriminator (`net.N`)."""

from __future__ import annotations

import torch
from torch import nn

from i2i_cli.models.networks.antialias import Downsample
from i2i_cli.models.networks.common import norm_layer, uses_bias


class PatchDiscriminator(nn.Module):
    """Classifies overlapping patches as real or fake; returns (N, 1, H', W') logits."""

    def __init__(self, in_channels: int = 3, ndf: int = 64, n_layers: int = 3, norm: str = "batch",
                 antialias: bool = False) -> None:
        """antialias: CUT's default discriminator: each stride-2 convolution becomes a stride-1 one followed by
        a blur Downsample (keys `model.N.filt`), as in taesungp/contrastive-unpaired-translation."""
        super().__init__()
        factory, bias = norm_layer(norm), uses_bias(norm)
        stride = 1 if antialias else 2
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, stride=stride, padding=1), nn.LeakyReLU(0.2)]
        if antialias:
            layers.append(Downsample(ndf))
        mult = 1
        for n in range(1, n_layers):
            prev, mult = mult, min(2**n, 8)
            layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride=stride, padding=1, bias=bias), factory(ndf * mult),
                       nn.LeakyReLU(0.2)]
            if antialias:
                layers.append(Downsample(ndf * mult))
        prev, mult = mult, min(2**n_layers, 8)
        layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride=1, padding=1, bias=bias), factory(ndf * mult),
                   nn.LeakyReLU(0.2)]
        layers += [nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1)]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class PixelDiscriminator(nn.Module):
    """The 1x1 PatchGAN ("PixelGAN", the official `--netD pixel`): each pixel classified on its own by three 1x1
    convolutions; (N, 1, H, W) logits. As the official code, the last convolution has no bias under BatchNorm."""

    def __init__(self, in_channels: int = 3, ndf: int = 64, norm: str = "batch") -> None:
        super().__init__()
        factory, bias = norm_layer(norm), uses_bias(norm)
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, ndf, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(ndf, ndf * 2, 1, bias=bias), factory(ndf * 2), nn.LeakyReLU(0.2),
            nn.Conv2d(ndf * 2, 1, 1, bias=bias),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
