"""The pix2pix U-Net generator.

Its module tree (and hence state_dict keys, `model.model.1.model.3...`) follows the reference implementation's
recursive skip blocks so that released pix2pix checkpoints load directly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from i2i_cli.models.networks.common import NormFactory, norm_layer, uses_bias


class UnetSkipBlock(nn.Module):
    """down -> submodule -> up, with the input concatenated to the output (except at the outermost level).

    The reference code's in-place LeakyReLU also rewrites the skip tensor, so the skip carries
    leaky_relu(x); we reproduce that explicitly so released weights behave identically.
    """

    def __init__(
        self,
        outer_nc: int,
        inner_nc: int,
        *,
        input_nc: int | None = None,
        submodule: nn.Module | None = None,
        outermost: bool = False,
        innermost: bool = False,
        norm: NormFactory,
        bias: bool,
        dropout: bool = False,
        skip: bool = True,
    ) -> None:
        """skip=False: no concatenation (the paper's encoder-decoder), so the up-convolution takes the inner
        block's inner_nc channels instead of 2 x inner_nc."""
        super().__init__()
        self.outermost = outermost
        self.skip = skip
        input_nc = outer_nc if input_nc is None else input_nc
        up_in = inner_nc * 2 if skip else inner_nc
        downconv = nn.Conv2d(input_nc, inner_nc, kernel_size=4, stride=2, padding=1, bias=bias)
        if outermost:
            assert submodule is not None
            upconv = nn.ConvTranspose2d(up_in, outer_nc, kernel_size=4, stride=2, padding=1)
            layers: list[nn.Module] = [downconv, submodule, nn.ReLU(), upconv, nn.Tanh()]
        elif innermost:
            upconv = nn.ConvTranspose2d(inner_nc, outer_nc, kernel_size=4, stride=2, padding=1, bias=bias)
            layers = [nn.LeakyReLU(0.2), downconv, nn.ReLU(), upconv, norm(outer_nc)]
        else:
            assert submodule is not None
            upconv = nn.ConvTranspose2d(up_in, outer_nc, kernel_size=4, stride=2, padding=1, bias=bias)
            layers = [nn.LeakyReLU(0.2), downconv, norm(inner_nc), submodule, nn.ReLU(), upconv, norm(outer_nc)]
            if dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost:
            return self.model(x)
        if not self.skip:
            return self.model(x)
        return torch.cat([F.leaky_relu(x, 0.2), self.model(x)], dim=1)


class UnetGenerator(nn.Module):
    """U-Net with `num_downs` stride-2 levels (8 for 256 px: unet_256; 7: unet_128); skips=False: the pix2pix
    paper's encoder-decoder (the same network with its skip connections removed; the official code has none)."""

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        num_downs: int = 8,
        ngf: int = 64,
        norm: str = "batch",
        dropout: bool = True,
        skips: bool = True,
    ) -> None:
        super().__init__()
        if num_downs < 5:
            raise ValueError("a U-Net needs at least 5 downsamplings")
        self.num_downs = num_downs
        factory, bias = norm_layer(norm), uses_bias(norm)
        block = UnetSkipBlock(ngf * 8, ngf * 8, innermost=True, norm=factory, bias=bias, skip=skips)
        for _ in range(num_downs - 5):
            block = UnetSkipBlock(ngf * 8, ngf * 8, submodule=block, norm=factory, bias=bias, dropout=dropout,
                                  skip=skips)
        block = UnetSkipBlock(ngf * 4, ngf * 8, submodule=block, norm=factory, bias=bias, skip=skips)
        block = UnetSkipBlock(ngf * 2, ngf * 4, submodule=block, norm=factory, bias=bias, skip=skips)
        block = UnetSkipBlock(ngf, ngf * 2, submodule=block, norm=factory, bias=bias, skip=skips)
        self.model = UnetSkipBlock(out_channels, ngf, input_nc=in_channels, submodule=block, outermost=True,
                                   norm=factory, bias=bias, skip=skips)

    @property
    def size_multiple(self) -> int:
        return 2**self.num_downs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)
