"""Networks of attention-guided CycleGAN (Mejjati et al., NeurIPS 2018), laid out as the official TensorFlow
code (AlamiMejjati/Unsupervised-Attention-guided-Image-to-Image-Translation, model.py) builds them.

- `AttentionGuidedGenerator` (the official `build_generator_resnet_9blocks`): image -> image in [-1, 1].
- `AttentionNetwork` (the official `autoenc_upsample`): image -> mask in [0, 1] at the input's size.
- `AttentionGuidedDiscriminator` (the official `discriminator`): a PatchGAN whose instance norms can be
  switched off, as the official code does once the discriminator only sees the attended foreground.
- `attend` / `AttendedGenerator`: the composite m * G(x) + (1 - m) * x.

Strided layers pad as TensorFlow's "SAME" does: a total of max(k - s, 0) for a size divisible by the stride s,
the smaller half before (k 3, s 2: nothing before, one row/column after), where PyTorch's symmetric padding
would shift every output by a pixel. The networks take sizes that are multiples of 4, so every strided layer
sees a size divisible by its stride and the padding is fixed (exportable with dynamic height and width).
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


def same_padding(kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's "SAME" (before, after) for a size divisible by the stride: total max(k - s, 0), the
    smaller half before."""
    total = max(kernel - stride, 0)
    return total // 2, total - total // 2


class Conv2dSame(nn.Conv2d):
    """A convolution with TensorFlow's "SAME" padding (zeros; sizes divisible by the stride): output size
    size / stride. Same parameters as nn.Conv2d."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=0)
        self.same = same_padding(kernel_size, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        before, after = self.same
        # one more zero after than "SAME" needs: no window of a size divisible by the stride reaches it, and the
        # output size then reads (n + before - 1) // s + 1 (PyTorch's symmetric form), which torch.export can
        # prove equal to n / s through the generator; with the exact padding it cannot (the ONNX export fails)
        extra = 1 if self.stride[0] > 1 else 0
        return super().forward(F.pad(x, (before, after + extra, before, after + extra)))


class ConvTranspose2dSame(nn.ConvTranspose2d):
    """TensorFlow's conv2d_transpose with "SAME" padding: output size = size * stride, the adjoint of a
    Conv2dSame with the same weights (the full transposed output with the SAME conv's `before` rows and
    columns dropped at the start and its `after` ones at the end). Same parameters as nn.ConvTranspose2d."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=0)
        self.same = same_padding(kernel_size, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        before, after = self.same
        y = super().forward(x)
        return y[..., before : y.shape[-2] - after, before : y.shape[-1] - after]


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

    The official layout: reflect-pad 3, 7x7 conv stride 2 (ngf, "VALID"); 3x3 conv stride 2 (2 ngf, "SAME");
    one residual block;
    nearest x2, conv (2 ngf); nearest x2, conv (ngf); conv to 1 channel, sigmoid. Instance norm and ReLU after
    every conv but the last. The official code passes the kernel sizes of the last three convolutions where
    TensorFlow takes the stride, so they run as 1x1 convolutions; that is what its released models were trained
    with, and it is kept here.
    """

    def __init__(self, ngf: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.ReflectionPad2d(3), nn.Conv2d(3, ngf, 7, stride=2), _affine_instance_norm(ngf), nn.ReLU(True),
            Conv2dSame(ngf, ngf * 2, 3, stride=2), _affine_instance_norm(ngf * 2), nn.ReLU(True),
            AttentionResidualBlock(ngf * 2),
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(ngf * 2, ngf * 2, 1), _affine_instance_norm(ngf * 2), nn.ReLU(True),
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(ngf * 2, ngf, 1), _affine_instance_norm(ngf), nn.ReLU(True),
            nn.Conv2d(ngf, 1, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class GeneratorResidualBlock(nn.Module):
    """relu(x + IN(conv3(relu(IN(conv3(x)))))), zero padded (the official build_resnet_block with the
    "CONSTANT" padding its generator passes); the ReLU after the sum is the official one."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1), _affine_instance_norm(channels), nn.ReLU(True),
            nn.Conv2d(channels, channels, 3, padding=1), _affine_instance_norm(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.block(x))


class AttentionGuidedGenerator(nn.Module):
    """(N, 3, H, W) -> (N, 3, H, W) in [-1, 1]; H and W multiples of 4. The official TensorFlow generator:
    zero-pad 3, 7x7 conv (ngf); two 3x3 stride-2 convs, "SAME" (2 ngf, 4 ngf); n_blocks residual blocks; two
    3x3 stride-2 transposed convs, "SAME" (2 ngf, ngf); 7x7 conv to 3 channels, "SAME" (zeros, 3 each side);
    tanh. Affine instance norm and ReLU after every conv but the last."""

    def __init__(self, ngf: int = 32, n_blocks: int = 9, channels: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(channels, ngf, 7, padding=3), _affine_instance_norm(ngf), nn.ReLU(True)]
        for width in (ngf * 2, ngf * 4):
            layers += [Conv2dSame(width // 2, width, 3, stride=2), _affine_instance_norm(width), nn.ReLU(True)]
        layers += [GeneratorResidualBlock(ngf * 4) for _ in range(n_blocks)]
        for width in (ngf * 2, ngf):
            layers += [ConvTranspose2dSame(width * 2, width, 3, stride=2), _affine_instance_norm(width),
                       nn.ReLU(True)]
        layers += [nn.Conv2d(ngf, channels, 7, padding=3), nn.Tanh()]
        self.net = nn.Sequential(*layers)

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
