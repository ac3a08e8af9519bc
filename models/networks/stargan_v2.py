"""StarGAN v2 networks (Choi, Uh, Yoo, Ha, CVPR 2020): generator with AdaIN, mapping network, style encoder,
multi-head discriminator.

Written from the paper and the facts of the official module tree (attribute names `from_rgb`, `encode`,
`decode`, `to_rgb`, `shared`, `unshared`, `main`, block layers `conv1`, `conv2`, `norm1`, `norm2`,
`conv1x1`, AdaIN `fc`), so the released checkpoints' state_dicts load strictly.

The generator also has the reference's high-pass skip path (w_hpf > 0, its CelebA-HQ setting): one more
down/up-sampling pair, decoder blocks without their identity shortcut, and, when face masks are given,
high-pass-filtered encoder features added back at 32, 64 and 128 px. The masks come from the FAN face-landmark
network (models/networks/fan.py); `MaskedGenerator` puts the two together. The filter is fixed, so it is a
non-persistent buffer here; the reference registers it as a persistent one, and `release_buffers()` names it so
that an import of the reference's state_dict can check its value instead of loading it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _repeat(img_size: int, offset: int) -> int:
    return int(math.log2(img_size)) - offset


class ResBlk(nn.Module):
    """Pre-activation residual block (optionally instance-normalised, optionally down-sampling), / sqrt(2)."""

    def __init__(self, dim_in: int, dim_out: int, normalize: bool = False, downsample: bool = False) -> None:
        super().__init__()
        self.normalize = normalize
        self.downsample = downsample
        self.learned_sc = dim_in != dim_out
        self.conv1 = nn.Conv2d(dim_in, dim_in, 3, 1, 1)
        self.conv2 = nn.Conv2d(dim_in, dim_out, 3, 1, 1)
        if normalize:
            self.norm1 = nn.InstanceNorm2d(dim_in, affine=True)
            self.norm2 = nn.InstanceNorm2d(dim_in, affine=True)
        if self.learned_sc:
            self.conv1x1 = nn.Conv2d(dim_in, dim_out, 1, 1, 0, bias=False)

    def _shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.learned_sc:
            x = self.conv1x1(x)
        return F.avg_pool2d(x, 2) if self.downsample else x

    def _residual(self, x: torch.Tensor) -> torch.Tensor:
        if self.normalize:
            x = self.norm1(x)
        x = self.conv1(F.leaky_relu(x, 0.2))
        if self.downsample:
            x = F.avg_pool2d(x, 2)
        if self.normalize:
            x = self.norm2(x)
        return self.conv2(F.leaky_relu(x, 0.2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self._shortcut(x) + self._residual(x)) / math.sqrt(2)


class AdaIN(nn.Module):
    """Instance norm whose scale and shift come from the style code: (1 + gamma) * norm(x) + beta."""

    def __init__(self, style_dim: int, num_features: int) -> None:
        super().__init__()
        self.norm = nn.InstanceNorm2d(num_features, affine=False)
        self.fc = nn.Linear(style_dim, num_features * 2)

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.fc(s)[:, :, None, None].chunk(2, dim=1)
        return (1 + gamma) * self.norm(x) + beta


class AdainResBlk(nn.Module):
    """Pre-activation residual block with AdaIN; with w_hpf > 0 the identity shortcut is dropped (the
    generator's high-pass skips carry the detail instead), as in the reference."""

    def __init__(self, dim_in: int, dim_out: int, style_dim: int = 64, upsample: bool = False,
                 w_hpf: float = 0.0) -> None:
        super().__init__()
        self.upsample = upsample
        self.w_hpf = w_hpf
        self.learned_sc = dim_in != dim_out
        self.conv1 = nn.Conv2d(dim_in, dim_out, 3, 1, 1)
        self.conv2 = nn.Conv2d(dim_out, dim_out, 3, 1, 1)
        self.norm1 = AdaIN(style_dim, dim_in)
        self.norm2 = AdaIN(style_dim, dim_out)
        if self.learned_sc:
            self.conv1x1 = nn.Conv2d(dim_in, dim_out, 1, 1, 0, bias=False)

    def _shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.conv1x1(x) if self.learned_sc else x

    def _residual(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self.norm1(x, s), 0.2)
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = self.conv1(x)
        return self.conv2(F.leaky_relu(self.norm2(x, s), 0.2))

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        out = self._residual(x, s)
        if self.w_hpf > 0:
            return out
        return (out + self._shortcut(x)) / math.sqrt(2)


class HighPass(nn.Module):
    """Depth-wise 3x3 Laplacian (centre 8, ring -1) divided by w_hpf: keeps edges, drops flat colour."""

    def __init__(self, w_hpf: float) -> None:
        super().__init__()
        kernel = torch.tensor([[-1.0, -1.0, -1.0], [-1.0, 8.0, -1.0], [-1.0, -1.0, -1.0]]) / w_hpf
        # Not persistent: it is a constant of w_hpf (the reference saves it; an import checks its value).
        self.register_buffer("filter", kernel, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        weight = self.filter.to(x.dtype)[None, None].expand(channels, 1, 3, 3)
        return F.conv2d(x, weight, padding=1, groups=channels)


# Feature sizes at which the reference adds masked high-pass skips (it hard-codes them for 256 px faces):
# the first mask (eyes) drives the 32 px skip, the second (face outline) the 64 and 128 px ones.
HPF_SKIP_SIZES = (32, 64, 128)


class Generator(nn.Module):
    """Encoder of down-sampling ResBlks + 2 bottleneck blocks; AdaIN decoder mirrored; (x, style) -> image.

    log2(img_size) - 4 down/up-sampling pairs (one more when w_hpf > 0), widths from dim_in (2**14 // img_size
    unless given) doubling up to max_conv_dim. `masks` (two (N, 1, h, w) heat maps in [0, 1]) switch on the
    high-pass skips when w_hpf > 0; without them the generator runs its decoder alone.
    """

    def __init__(self, img_size: int = 256, style_dim: int = 64, max_conv_dim: int = 512,
                 dim_in: int | None = None, w_hpf: float = 0.0) -> None:
        super().__init__()
        dim_in = dim_in or 2**14 // img_size
        self.img_size = img_size
        self.w_hpf = w_hpf
        self.from_rgb = nn.Conv2d(3, dim_in, 3, 1, 1)
        self.encode = nn.ModuleList()
        self.decode = nn.ModuleList()
        self.to_rgb = nn.Sequential(nn.InstanceNorm2d(dim_in, affine=True), nn.LeakyReLU(0.2), nn.Conv2d(dim_in, 3, 1, 1, 0))
        self.n_down = _repeat(img_size, 4) + (1 if w_hpf > 0 else 0)
        dim_out = dim_in
        for _ in range(self.n_down):
            dim_out = min(dim_in * 2, max_conv_dim)
            self.encode.append(ResBlk(dim_in, dim_out, normalize=True, downsample=True))
            self.decode.insert(0, AdainResBlk(dim_out, dim_in, style_dim, upsample=True, w_hpf=w_hpf))
            dim_in = dim_out
        for _ in range(2):
            self.encode.append(ResBlk(dim_out, dim_out, normalize=True))
            self.decode.insert(0, AdainResBlk(dim_out, dim_out, style_dim, w_hpf=w_hpf))
        if w_hpf > 0:
            self.hpf = HighPass(w_hpf)

    def release_buffers(self) -> dict[str, torch.Tensor]:
        """Fixed buffers the reference's state_dicts hold and i2i's do not: {key: the value they must have}."""
        return {"hpf.filter": self.hpf.filter} if self.w_hpf > 0 else {}

    def forward(self, x: torch.Tensor, s: torch.Tensor,
                masks: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        use_skips = masks is not None and self.w_hpf > 0
        x = self.from_rgb(x)
        skips: dict[int, torch.Tensor] = {}
        for block in self.encode:
            if use_skips and x.shape[2] in HPF_SKIP_SIZES:
                skips[x.shape[2]] = x
            x = block(x)
        for block in self.decode:
            x = block(x, s)
            if use_skips and x.shape[2] in skips:
                assert masks is not None
                mask = masks[0] if x.shape[2] == HPF_SKIP_SIZES[0] else masks[1]
                mask = F.interpolate(mask, size=x.shape[2], mode="bilinear")
                x = x + self.hpf(mask * skips[x.shape[2]])
        return self.to_rgb(x)


class MaskedGenerator(nn.Module):
    """(image, style) -> image with the face masks computed inside: the CelebA-HQ (w_hpf > 0) generator as one
    module, for translation and ONNX export.

    Images of another size than the training size are resized to it (bilinear, antialiased, as the reference's
    loader resizes every image to img_size) and the output is resized back: the skips sit at fixed feature sizes
    (32, 64, 128 px of a 256 px image), so the generator only does what it learned at its own size."""

    def __init__(self, generator: Generator, fan: nn.Module) -> None:
        super().__init__()
        self.generator, self.fan = generator, fan

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        size = self.generator.img_size
        height, width = x.shape[2], x.shape[3]
        resized = (height, width) != (size, size)
        if resized:
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        out = self.generator(x, s, self.fan.face_masks(x))
        if resized:
            out = F.interpolate(out, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
        return out


class MappingNetwork(nn.Module):
    """z (N, latent_dim) and target domains (N,) -> style (N, style_dim): 4 shared layers, 4 per domain."""

    def __init__(self, latent_dim: int = 16, style_dim: int = 64, num_domains: int = 2, hidden: int = 512) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Linear(latent_dim, hidden), nn.ReLU()]
        for _ in range(3):
            layers += [nn.Linear(hidden, hidden), nn.ReLU()]
        self.shared = nn.Sequential(*layers)
        self.unshared = nn.ModuleList(
            nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                          nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, style_dim))
            for _ in range(num_domains))

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.shared(z)
        out = torch.stack([head(h) for head in self.unshared], dim=1)
        return out[torch.arange(len(y), device=y.device), y]


def _trunk(img_size: int, max_conv_dim: int, dim_in: int | None = None) -> tuple[list[nn.Module], int]:
    dim_in = dim_in or 2**14 // img_size
    blocks: list[nn.Module] = [nn.Conv2d(3, dim_in, 3, 1, 1)]
    dim_out = dim_in
    for _ in range(_repeat(img_size, 2)):
        dim_out = min(dim_in * 2, max_conv_dim)
        blocks.append(ResBlk(dim_in, dim_out, downsample=True))
        dim_in = dim_out
    blocks += [nn.LeakyReLU(0.2), nn.Conv2d(dim_out, dim_out, 4, 1, 0), nn.LeakyReLU(0.2)]
    return blocks, dim_out


class StyleEncoder(nn.Module):
    """Reference image (N, 3, img_size, img_size) and its domain -> style code; one linear head per domain."""

    def __init__(self, img_size: int = 256, style_dim: int = 64, num_domains: int = 2, max_conv_dim: int = 512,
                 dim_in: int | None = None) -> None:
        super().__init__()
        blocks, dim_out = _trunk(img_size, max_conv_dim, dim_in)
        self.shared = nn.Sequential(*blocks)
        self.unshared = nn.ModuleList(nn.Linear(dim_out, style_dim) for _ in range(num_domains))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.shared(x).flatten(1)
        out = torch.stack([head(h) for head in self.unshared], dim=1)
        return out[torch.arange(len(y), device=y.device), y]


class Discriminator(nn.Module):
    """Image and domain -> real/fake logit of that domain's head (N,)."""

    def __init__(self, img_size: int = 256, num_domains: int = 2, max_conv_dim: int = 512,
                 dim_in: int | None = None) -> None:
        super().__init__()
        blocks, dim_out = _trunk(img_size, max_conv_dim, dim_in)
        blocks[-1:] = [nn.LeakyReLU(0.2), nn.Conv2d(dim_out, num_domains, 1, 1, 0)]
        self.main = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = self.main(x).flatten(1)
        return out[torch.arange(len(y), device=y.device), y]
