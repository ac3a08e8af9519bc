"""ResNet generators: CycleGAN's (reference key layout `model.N`) and CUT's anti-aliased variant.

The module tree follows junyanz/pytorch-CycleGAN-and-pix2pix's ResnetGenerator (and, with antialias=True,
taesungp/contrastive-unpaired-translation's), so the released generators load strictly. `encode` returns
the activations after chosen indices of the Sequential, the layers PatchNCE reads (CUT: 0, 4, 8, 12, 16).
"""

from __future__ import annotations

import torch
from torch import nn

from i2i_cli.models.networks.antialias import Downsample, Upsample
from i2i_cli.models.networks.common import NormFactory, norm_layer, uses_bias

__all__ = ["Downsample", "ResnetBlock", "ResnetGenerator", "Upsample"]


class ResnetBlock(nn.Module):
    """x + conv-norm-relu-[dropout]-conv-norm(x), reflection padded (`conv_block.N` keys)."""

    def __init__(self, dim: int, norm: NormFactory, bias: bool, dropout: bool = False, padding: str = "reflect") -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(2):
            if padding == "reflect":
                layers.append(nn.ReflectionPad2d(1))
            elif padding == "replicate":
                layers.append(nn.ReplicationPad2d(1))
            layers += [nn.Conv2d(dim, dim, 3, padding=0 if padding in ("reflect", "replicate") else 1, bias=bias),
                       norm(dim)]
            if i == 0:
                layers.append(nn.ReLU(True))
                if dropout:
                    layers.append(nn.Dropout(0.5))
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    """c7s1-ngf, 2 stride-2 downs, n_blocks residual blocks, 2 ups, c7s1-3, tanh (Johnson et al.).

    antialias: each down is a stride-1 conv-norm-relu followed by a blur Downsample (CUT's default);
    antialias_up (defaults to antialias): each up is a blur Upsample then a stride-1 conv, instead of a
    transposed convolution. (N, in, H, W) -> (N, out, H, W) for H, W multiples of 4.
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 3, ngf: int = 64, n_blocks: int = 9,
                 norm: str = "instance", dropout: bool = False, padding: str = "reflect", antialias: bool = False,
                 antialias_up: bool | None = None) -> None:
        super().__init__()
        if padding not in ("reflect", "replicate", "zero"):
            raise ValueError(f"unknown padding '{padding}' (reflect, replicate, zero)")
        factory, bias = norm_layer(norm), uses_bias(norm)
        antialias_up = antialias if antialias_up is None else antialias_up
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, ngf, 7, padding=0, bias=bias),
                                   factory(ngf), nn.ReLU(True)]
        for i in range(2):
            mult = 2**i
            if antialias:
                layers += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=1, padding=1, bias=bias),
                           factory(ngf * mult * 2), nn.ReLU(True), Downsample(ngf * mult * 2)]
            else:
                layers += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1, bias=bias),
                           factory(ngf * mult * 2), nn.ReLU(True)]
        for _ in range(n_blocks):
            layers.append(ResnetBlock(ngf * 4, factory, bias, dropout, padding))
        for i in range(2):
            mult = 2 ** (2 - i)
            if antialias_up:
                layers += [Upsample(ngf * mult), nn.Conv2d(ngf * mult, ngf * mult // 2, 3, stride=1, padding=1, bias=bias),
                           factory(ngf * mult // 2), nn.ReLU(True)]
            else:
                layers += [nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, stride=2, padding=1, output_padding=1,
                                              bias=bias), factory(ngf * mult // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7, padding=0), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def forward_with_features(self, x: torch.Tensor, layers: list[int]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """forward(x) and encode(x, layers) from one pass: the same tensors, without running the encoder twice."""
        return self._walk(x, layers, to_end=True)

    def encode(self, x: torch.Tensor, layers: list[int]) -> list[torch.Tensor]:
        """The outputs of the Sequential's layers at the indices in `layers`, in index order, computing no
        further than the largest index (CUT's `netG(x, nce_layers, encode_only=True)`). With antialias, CUT's
        0,4,8,12,16 are the reflection-padded input, the two stride-1 down convolutions, residual blocks 1, 5."""
        return self._walk(x, layers, to_end=False)[1] if layers else []

    def _walk(self, x: torch.Tensor, layers: list[int], to_end: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Run the Sequential, keeping the outputs at `layers`; stop after the last of them unless `to_end`."""
        wanted, feats, h = set(layers), [], x
        last = len(self.model) - 1 if to_end else max(wanted)
        for index, layer in enumerate(self.model):
            h = layer(h)
            if index in wanted:
                feats.append(h)
            if index >= last:
                break
        return h, feats
