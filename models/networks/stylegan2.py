"""The StyleGAN2-style encoder-decoder generator and discriminator of CUT's single-image models (SinCUT, and
F-LSeSim's `--model sinsc`, which ships its own copy with small differences, selected by constructor arguments).

Written from the published architecture (Karras et al. 2020's equalised learning rate, [1, 3, 3, 1] blur
before strided convolutions, residual blocks scaled by 1/sqrt(2), un-modulated but demodulated up-convolutions
with learned-strength noise); module and parameter names follow CUT's models/stylegan_networks.py so that the
official state dicts load as they are (the golden tests do).

Widths: a resolution r gets channels(r) = round(k(r) * ngf / 32) for the generator (k = 4096, 2048, ... at 4,
8, ... px, capped at 512 below 64 px) and k(r) * ndf / 64 capped at 384 for the discriminator.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

_BLUR = (1.0, 3.0, 3.0, 1.0)
_BASE = {4: 4096, 8: 2048, 16: 1024, 32: 512, 64: 256, 128: 128, 256: 64, 512: 32, 1024: 16}


def channel_table(width: int, per: int, cap: int, rounding: str = "round") -> dict[int, int]:
    """{resolution: channels}: _BASE * width / per, capped at `cap` below 64 px; rounded (G, F-LSeSim's D) or
    truncated (CUT's D)."""
    convert = (lambda v: int(round(v))) if rounding == "round" else int
    return {r: (min(cap, convert(k * width / per)) if r < 64 else convert(k * width / per)) for r, k in _BASE.items()}


def blur_kernel(gain: float = 1.0) -> torch.Tensor:
    k = torch.tensor(_BLUR)
    k2 = k[None, :] * k[:, None]
    return k2 / k2.sum() * gain


def blur(x: torch.Tensor, kernel: torch.Tensor, pad: tuple[int, int]) -> torch.Tensor:
    """Pad (pad[0] before, pad[1] after, both axes) and filter each channel with the (flipped) kernel."""
    c = x.shape[1]
    x = F.pad(x, [pad[0], pad[1], pad[0], pad[1]])
    weight = torch.flip(kernel, [0, 1]).to(x.dtype)[None, None].expand(c, 1, *kernel.shape).contiguous()
    return F.conv2d(x, weight, groups=c)


class Blur(nn.Module):
    def __init__(self, pad: tuple[int, int], gain: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("kernel", blur_kernel(gain))
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return blur(x, self.kernel, self.pad)


class EqualConv2d(nn.Module):
    """A convolution whose N(0, 1) weights are scaled by 1/sqrt(fan-in) at run time (equalised learning rate)."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, padding: int = 0, bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, k, k))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        self.scale = 1 / math.sqrt(cin * k * k)
        self.stride, self.padding = stride, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, self.stride, self.padding)


class EqualLinear(nn.Module):
    def __init__(self, cin: int, cout: int, activate: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.scale = 1 / math.sqrt(cin)
        self.activate = activate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.activate:
            return F.leaky_relu(F.linear(x, self.weight * self.scale) + self.bias, 0.2) * math.sqrt(2)
        return F.linear(x, self.weight * self.scale, self.bias)


class FusedLeakyReLU(nn.Module):
    """Bias, leaky ReLU (0.2), times sqrt(2) (keeps the activations' scale)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x + self.bias, 0.2) * math.sqrt(2)


class ScaledLeakyReLU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x, 0.2) * math.sqrt(2)


class ConvLayer(nn.Sequential):
    """[blur,] equalised conv (stride 2 when downsampling), [bias + leaky ReLU]."""

    def __init__(self, cin: int, cout: int, k: int, downsample: bool = False, bias: bool = True,
                 activate: bool = True) -> None:
        layers: list[nn.Module] = []
        if downsample:
            p = 2 + (k - 1)  # blur taps - stride + kernel - 1
            layers.append(Blur(((p + 1) // 2, p // 2)))
        layers.append(EqualConv2d(cin, cout, k, stride=2 if downsample else 1, padding=0 if downsample else k // 2,
                                  bias=bias and not activate))
        if activate:
            layers.append(FusedLeakyReLU(cout) if bias else ScaledLeakyReLU())
        super().__init__(*layers)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, downsample: bool = True) -> None:
        super().__init__()
        self.conv1 = ConvLayer(cin, cin, 3)
        self.conv2 = ConvLayer(cin, cout, 3, downsample=downsample)
        self.skip: nn.Module = (ConvLayer(cin, cout, 1, downsample=downsample, bias=False, activate=False)
                                if cin != cout or downsample else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.conv2(self.conv1(x)) + self.skip(x)) / math.sqrt(2)


class DemodulatedUpConv(nn.Module):
    """StyleGAN2's modulated 3x3 transposed convolution (stride 2) with a unit style: weights scaled by
    1/sqrt(fan-in), each output filter normalised to unit norm, then the [1, 3, 3, 1] blur (gain 4)."""

    def __init__(self, cin: int, cout: int, k: int = 3) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, cout, cin, k, k))
        self.scale = 1 / math.sqrt(cin * k * k)
        p = 2 - (k - 1)  # blur taps - factor - (kernel - 1)
        self.blur = Blur(((p + 1) // 2 + 1, p // 2 + 1), gain=4.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight[0] * self.scale
        w = w * torch.rsqrt(w.pow(2).sum([1, 2, 3], keepdim=True) + 1e-8)
        return self.blur(F.conv_transpose2d(x, w.transpose(0, 1), stride=2))


class NoiseInjection(nn.Module):
    """x + weight * noise, one N(0, 1) value per pixel shared by the channels (weight starts at 0)."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return x + self.weight * noise


class StyledUpConv(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = DemodulatedUpConv(cin, cout)
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(cout)

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        out = self.conv(x)
        if noise is not None:
            out = self.noise(out, noise)
        return self.activate(out)


class StyleGAN2Encoder(nn.Module):
    """convs: identity (the image itself, NCE layer 0), 1x1 conv, n_down downsampling blocks, n_blocks // 2
    residual blocks."""

    def __init__(self, ngf: int, size: int, n_down: int, n_blocks: int = 6) -> None:
        super().__init__()
        ch = channel_table(ngf, 32, 512)
        res = 2 ** round(math.log2(size))
        convs: list[nn.Module] = [nn.Identity(), ConvLayer(3, ch[res], 1)]
        for _ in range(n_down):
            convs.append(ResBlock(ch[res], ch[res // 2], downsample=True))
            res //= 2
        convs += [ResBlock(ch[res], ch[res], downsample=False) for _ in range(n_blocks // 2)]
        self.convs = nn.Sequential(*convs)

    def forward(self, x: torch.Tensor, layers: list[int] | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The last features, and those of `layers` (indices into convs)."""
        feats = []
        for i, layer in enumerate(self.convs):
            x = layer(x)
            if layers and i in layers:
                feats.append(x)
        return x, feats


class StyleGAN2Decoder(nn.Module):
    def __init__(self, ngf: int, size: int, n_down: int, n_blocks: int = 6, tanh: bool = False) -> None:
        super().__init__()
        ch = channel_table(ngf, 32, 512)
        res = 2 ** round(math.log2(size)) // 2**n_down
        convs: list[nn.Module] = [ResBlock(ch[res], ch[res], downsample=False) for _ in range(n_blocks // 2)]
        for _ in range(n_down):
            convs.append(StyledUpConv(ch[res], ch[res * 2]))
            res *= 2
        convs.append(ConvLayer(ch[res], 3, 1))  # with its leaky ReLU, as the reference
        self.convs = nn.Sequential(*convs)
        self.tanh = tanh

    def forward(self, x: torch.Tensor, noises: list[torch.Tensor] | None) -> torch.Tensor:
        ups = 0
        for layer in self.convs:
            if isinstance(layer, StyledUpConv):
                x = layer(x, noises[ups] if noises is not None else None)
                ups += 1
            else:
                x = layer(x)
        return torch.tanh(x) if self.tanh else x


class StyleGAN2Generator(nn.Module):
    """Encoder-decoder; `noises` (one (N, 1, h, w) map per up-convolution, `noise_shapes`) are what the
    reference draws inside its forward pass; None leaves the noise out (its mean)."""

    def __init__(self, ngf: int, size: int, n_down: int, n_blocks: int = 6, tanh: bool = False) -> None:
        super().__init__()
        self.encoder = StyleGAN2Encoder(ngf, size, n_down, n_blocks)
        self.decoder = StyleGAN2Decoder(ngf, size, n_down, n_blocks, tanh)
        self.n_down = n_down

    def noise_shapes(self, x: torch.Tensor) -> list[tuple[int, int, int, int]]:
        n, _, h, w = x.shape
        return [(n, 1, h >> (self.n_down - 1 - i), w >> (self.n_down - 1 - i)) for i in range(self.n_down)]

    def make_noises(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [torch.randn(s, device=x.device, dtype=x.dtype) for s in self.noise_shapes(x)]

    def encode(self, x: torch.Tensor, layers: list[int]) -> list[torch.Tensor]:
        return self.encoder(x, layers)[1]

    def forward(self, x: torch.Tensor, noises: list[torch.Tensor] | None = None) -> torch.Tensor:
        return self.decoder(self.encoder(x)[0], noises)


class StyleGAN2Discriminator(nn.Module):
    """1x1 conv, downsampling residual blocks from the crop's resolution to `final_res`, a 3x3 conv, and two
    equalised linear layers to one logit per image (so it takes crops of exactly `size` px)."""

    def __init__(self, ndf: int, size: int, final_res: int = 4, rounding: str = "floor") -> None:
        super().__init__()
        ch = channel_table(ndf, 64, 384, rounding)
        res = 2 ** round(math.log2(size))
        convs: list[nn.Module] = [ConvLayer(3, ch[res], 1)]
        while res > final_res:
            convs.append(ResBlock(ch[res], ch[res // 2]))
            res //= 2
        self.convs = nn.Sequential(*convs)
        self.final_conv = ConvLayer(ch[res], ch[4], 3)
        self.final_linear = nn.Sequential(EqualLinear(ch[4] * res * res, ch[4], activate=True),
                                          EqualLinear(ch[4], 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.final_conv(self.convs(x))
        return self.final_linear(out.flatten(1))
