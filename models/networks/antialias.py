"""Anti-aliased resampling of Zhang (ICML 2019) as CUT uses it: fixed binomial blurs, no parameters.

Key names (`filt` buffers) and arithmetic follow taesungp/contrastive-unpaired-translation's Downsample and
Upsample, so the generators and discriminators built from them load the released CUT weights strictly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_BINOMIAL_TAPS: dict[int, list[float]] = {
    1: [1.0], 2: [1.0, 1.0], 3: [1.0, 2.0, 1.0], 4: [1.0, 3.0, 3.0, 1.0], 5: [1.0, 4.0, 6.0, 4.0, 1.0],
    6: [1.0, 5.0, 10.0, 10.0, 5.0, 1.0], 7: [1.0, 6.0, 15.0, 20.0, 15.0, 6.0, 1.0],
}


def blur_kernel(size: int = 3) -> torch.Tensor:
    """(size, size) outer product of the binomial row [1, 2, 1] (size 3), [1, 3, 3, 1] (size 4), ..., sum 1."""
    if size not in _BINOMIAL_TAPS:
        raise ValueError(f"blur filter size {size} is not one of {sorted(_BINOMIAL_TAPS)}")
    taps = torch.tensor(_BINOMIAL_TAPS[size])
    kernel = taps[:, None] * taps[None, :]
    return kernel / kernel.sum()


class Downsample(nn.Module):
    """Blur then subsample: reflect pad, depthwise `filt_size` binomial filter with stride 2.

    (N, C, H, W) -> (N, C, ceil(H / 2), ceil(W / 2)) for filt_size 3.
    """

    def __init__(self, channels: int, filt_size: int = 3, stride: int = 2) -> None:
        super().__init__()
        self.channels = channels
        self.stride = stride
        before, after = (filt_size - 1) // 2, filt_size // 2  # floor and ceil of (filt_size - 1) / 2
        self.pad_sizes = [before, after, before, after]
        self.register_buffer("filt", blur_kernel(filt_size)[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, self.pad_sizes, mode="reflect")
        return F.conv2d(x, self.filt.to(x.dtype), stride=self.stride, groups=self.channels)


class Upsample(nn.Module):
    """x2 up-sampling by a transposed `filt_size` binomial blur (default [1, 3, 3, 1], gain stride**2),
    after a 1-pixel replicate pad that is cropped away again. (N, C, H, W) -> (N, C, 2H, 2W)."""

    def __init__(self, channels: int, filt_size: int = 4, stride: int = 2) -> None:
        super().__init__()
        self.channels = channels
        self.stride = stride
        self.filt_odd = filt_size % 2 == 1
        self.pad_size = (filt_size - 1) // 2
        self.register_buffer("filt", (blur_kernel(filt_size) * stride**2)[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, [1, 1, 1, 1], mode="replicate")
        y = F.conv_transpose2d(x, self.filt.to(x.dtype), stride=self.stride, padding=1 + self.pad_size,
                               groups=self.channels)[:, :, 1:, 1:]
        return y if self.filt_odd else y[:, :, :-1, :-1]
