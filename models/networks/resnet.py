"""ResNet generators: CycleGAN's (reference key layout `model.N`) and CUT's anti-aliased variant.

The module tree follows junyanz/pytorch-CycleGAN-and-pix2pix's ResnetGenerator (and, with antialias=True,
taesungp/contrastive-unpaired-translation's), so the released generators load strictly. `encode` returns
the activations after chosen indices of the Sequential, the layers PatchNCE reads (CUT: 0, 4, 8, 12, 16).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.networks.common import NormFactory, norm_layer, uses_bias


def _blur_kernel(size: int = 3) -> torch.Tensor:
    taps = {1: [1.0], 2: [1.0, 1.0], 3: [1.0, 2.0, 1.0], 4: [1.0, 3.0, 3.0, 1.0], 5: [1.0, 4.0, 6.0, 4.0, 1.0]}[size]
    a = torch.tensor(taps)
    k = a[:, None] * a[None, :]
    return k / k.sum()


class Downsample(nn.Module):
    """Anti-aliased stride-2 down-sampling: reflect pad, then a [1, 2, 1] blur with stride 2 (per channel)."""

    def __init__(self, channels: int, filt_size: int = 3, stride: int = 2) -> None:
        super().__init__()
        self.stride = stride
        self.channels = channels
        pad = (filt_size - 1) / 2
        self.pad_sizes = [int(pad), int(pad + 0.5), int(pad), int(pad + 0.5)]
        self.register_buffer("filt", _blur_kernel(filt_size)[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, self.pad_sizes, mode="reflect")
        return F.conv2d(x, self.filt.to(x.dtype), stride=self.stride, groups=self.channels)


class Upsample(nn.Module):
    """Anti-aliased x2 up-sampling: a transposed [1, 2, 1] blur (x4 gain), as CUT's Upsample."""

    def __init__(self, channels: int, filt_size: int = 4, stride: int = 2) -> None:
        super().__init__()
        self.stride = stride
        self.channels = channels
        self.filt_odd = filt_size % 2 == 1
        self.pad_size = (filt_size - 1) // 2
        self.register_buffer("filt", (_blur_kernel(filt_size) * stride**2)[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, [1, 1, 1, 1], mode="replicate")
        y = F.conv_transpose2d(x, self.filt.to(x.dtype), stride=self.stride, padding=1 + self.pad_size,
                               groups=self.channels)[:, :, 1:, 1:]
        return y if self.filt_odd else y[:, :, :-1, :-1]


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
    """c7s1-ngf, 2 stride-2 downs, n_blocks residual blocks, 2 ups, c7s1-3, tanh (Johnson et al.)."""

    def __init__(self, in_channels: int = 3, out_channels: int = 3, ngf: int = 64, n_blocks: int = 9,
                 norm: str = "instance", dropout: bool = False, padding: str = "reflect", antialias: bool = False,
                 antialias_up: bool | None = None) -> None:
        super().__init__()
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

    def encode(self, x: torch.Tensor, layers: list[int]) -> list[torch.Tensor]:
        """The outputs of the Sequential's layers at the indices in `layers` (CUT's nce_layers convention:
        0 is the reflection-padded input, 4 and 8 the down-sampling convolutions, 12+ residual blocks)."""
        wanted, feats, h = set(layers), [], x
        for index, layer in enumerate(self.model):
            h = layer(h)
            if index in wanted:
                feats.append(h)
            if index >= max(wanted):
                break
        return feats
