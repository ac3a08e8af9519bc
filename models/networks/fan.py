"""FAN face-landmark network (98 WFLW landmarks) and the two face masks StarGAN v2's CelebA-HQ model uses.

Written from the facts of StarGAN v2's core/wing.py (itself adapted from face-alignment and AdaptiveWingLoss):
one hour-glass stack with CoordConv inputs, module names `conv1.conv`, `bn1`, `conv2`..`conv4`, `m0` (with
`coordconv.conv`, `b1_<level>`, `b2_<level>`, `b2_plus_1`, `b3_<level>`), `top_m_0`, `conv_last0`, `bn_end0`,
`l0`, so the released `wing.ckpt` (`{'state_dict': ...}`, trained with more stacks) loads by name; the keys of the
extra stacks are ignored, as the reference's loader ignores them.

`face_masks(x)` is the reference's `get_heatmap`: the image (any size, in [-1, 1]) is resized to 256 px
(bilinear), mapped to [0, 1], the heat maps (64 px) are up-sampled to 256 px (bilinear, align_corners) and turned
into two masks in [0, 1], (N, 1, 256, 256): the whole face (eyes, nose, mouth, chin, brows) for the generator's
32 px skip and the eyes-and-nose one for its 64 and 128 px skips. Nothing checks that the image is a face: on
any other image the network still finds 98 maxima and the masks follow them.

`landmarks(x)` is the reference's `get_landmark` (used by `i2i data align-faces`, i2i_cli/face_align.py): the
peaks of the raw 64 px heat maps, as its `get_preds_fromhm` places them, scaled to the input's pixels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

FAN_SIZE = 256  # the network's input size (its CoordConv grids are fixed to it)
NUM_LANDMARKS = 98
BN_EXTRAS = ("num_batches_tracked",)


def _coords(size: int) -> torch.Tensor:
    """(1, 3, size, size): row coordinate, column coordinate (both in [-1, 1]) and the normalised radius."""
    rows = (torch.arange(size).float()[:, None].expand(size, size) / (size - 1)) * 2 - 1
    cols = (torch.arange(size).float()[None, :].expand(size, size) / (size - 1)) * 2 - 1
    radius = torch.sqrt(rows.pow(2) + cols.pow(2))
    return torch.stack([rows, cols, radius / radius.max()])[None]


class CoordConv(nn.Module):
    """A convolution over the input with three coordinate channels appended (key: `conv`)."""

    def __init__(self, size: int, in_channels: int, out_channels: int, kernel_size: int, stride: int,
                 padding: int) -> None:
        super().__init__()
        self.register_buffer("coords", _coords(size), persistent=False)
        self.conv = nn.Conv2d(in_channels + 3, out_channels, kernel_size, stride, padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        coords = self.coords.to(x.dtype).expand(x.shape[0], -1, -1, -1)
        return self.conv(torch.cat([x, coords], dim=1))


class ConvBlock(nn.Module):
    """Pre-activation block of three 3x3 convolutions (out/2, out/4, out/4 channels) concatenated, + shortcut."""

    def __init__(self, in_planes: int, out_planes: int) -> None:
        super().__init__()
        half, quarter = out_planes // 2, out_planes // 4
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, half, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(half)
        self.conv2 = nn.Conv2d(half, quarter, 3, 1, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(quarter)
        self.conv3 = nn.Conv2d(quarter, quarter, 3, 1, 1, bias=False)
        self.downsample: nn.Module | None = None
        if in_planes != out_planes:
            self.downsample = nn.Sequential(nn.BatchNorm2d(in_planes), nn.ReLU(),
                                            nn.Conv2d(in_planes, out_planes, 1, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out1 = self.conv1(F.relu(self.bn1(x)))
        out2 = self.conv2(F.relu(self.bn2(out1)))
        out3 = self.conv3(F.relu(self.bn3(out2)))
        residual = self.downsample(x) if self.downsample is not None else x
        return torch.cat([out1, out2, out3], dim=1) + residual


class HourGlass(nn.Module):
    """CoordConv 1x1, then `depth` levels of (skip block | avg-pool, block, inner level, block, nearest x2)."""

    def __init__(self, depth: int, features: int, size: int) -> None:
        super().__init__()
        self.depth = depth
        self.coordconv = CoordConv(size, features, features, 1, 1, 0)
        for level in range(depth, 0, -1):
            self.add_module(f"b1_{level}", ConvBlock(features, features))
            self.add_module(f"b2_{level}", ConvBlock(features, features))
            self.add_module(f"b3_{level}", ConvBlock(features, features))
        self.add_module("b2_plus_1", ConvBlock(features, features))

    def _level(self, level: int, x: torch.Tensor) -> torch.Tensor:
        up = self._modules[f"b1_{level}"](x)
        low = self._modules[f"b2_{level}"](F.avg_pool2d(x, 2, stride=2))
        low = self._level(level - 1, low) if level > 1 else self._modules["b2_plus_1"](low)
        low = self._modules[f"b3_{level}"](low)
        return up + F.interpolate(low, scale_factor=2, mode="nearest")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._level(self.depth, self.coordconv(x))


class FAN(nn.Module):
    """256 px image in [0, 1] -> (N, 99, 64, 64) heat maps (98 landmarks + the boundary map).

    `width` is 256 in the release; tests build smaller stand-ins (a multiple of 16). The network is fixed:
    `train()` keeps it in eval mode (BatchNorm statistics) and its parameters never require gradients."""

    def __init__(self, width: int = 256, num_landmarks: int = NUM_LANDMARKS) -> None:
        super().__init__()
        self.conv1 = CoordConv(FAN_SIZE, 3, width // 4, 7, 2, 3)
        self.bn1 = nn.BatchNorm2d(width // 4)
        self.conv2 = ConvBlock(width // 4, width // 2)
        self.conv3 = ConvBlock(width // 2, width // 2)
        self.conv4 = ConvBlock(width // 2, width)
        self.m0 = HourGlass(4, width, FAN_SIZE // 4)
        self.top_m_0 = ConvBlock(width, width)
        self.conv_last0 = nn.Conv2d(width, width, 1, 1, 0)
        self.bn_end0 = nn.BatchNorm2d(width)
        self.l0 = nn.Conv2d(width, num_landmarks + 1, 1, 1, 0)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> FAN:
        return super().train(False)

    def forward(self, x01: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x01)))
        x = self.conv4(self.conv3(F.avg_pool2d(self.conv2(x), 2, stride=2)))
        x = self.top_m_0(self.m0(x))
        return self.l0(F.relu(self.bn_end0(self.conv_last0(x))))

    def load_pretrained_state_dict(self, state: dict) -> None:
        """Load wing.ckpt's `state_dict` (or a bare state_dict); keys of stacks this network lacks are ignored."""
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
        state = {k.removeprefix("module."): v for k, v in state.items()}
        own = self.state_dict()
        missing = [k for k in own if k not in state and not k.endswith(BN_EXTRAS)]
        if missing:
            raise KeyError(f"missing {missing[0]} (and {len(missing) - 1} more)")
        wanted = {k: state.get(k, own[k]) for k in own}
        for key, value in wanted.items():
            if tuple(value.shape) != tuple(own[key].shape):
                raise ValueError(f"{key} has shape {tuple(value.shape)}, the FAN wants {tuple(own[key].shape)}")
        self.load_state_dict(wanted)

    @torch.no_grad()
    def heatmaps(self, x: torch.Tensor) -> torch.Tensor:
        """The 98 landmark heat maps of images in [-1, 1] (any size), up-sampled to 256 px."""
        x = F.interpolate(x, size=(FAN_SIZE, FAN_SIZE), mode="bilinear", align_corners=False)
        maps = self(x * 0.5 + 0.5)[:, :-1]
        return F.interpolate(maps, size=(FAN_SIZE, FAN_SIZE), mode="bilinear", align_corners=True)

    @torch.no_grad()
    def face_masks(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return masks_from_heatmaps(self.heatmaps(x))

    @torch.no_grad()
    def landmarks(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 98, 2) landmark (x, y) of images in [-1, 1] (square, any size), in the input's pixel coordinates
        (pixel i spans [i, i + 1)), as the reference's get_landmark: the 64 px heat maps' peaks, see
        `landmarks_from_heatmaps`, times size / 64 (the reference's integer size // 64: equal for multiples of 64)."""
        small = F.interpolate(x, size=(FAN_SIZE, FAN_SIZE), mode="bilinear", align_corners=False)
        maps = self(small * 0.5 + 0.5)[:, :-1]
        return landmarks_from_heatmaps(maps.float()) * (x.shape[-1] / maps.shape[-1])


def landmarks_from_heatmaps(maps: torch.Tensor) -> torch.Tensor:
    """(N, L, H, W) heat maps -> (N, L, 2) peak (x, y) in heat-map pixels, the reference's get_preds_fromhm:
    the arg-max pixel's centre (column + 0.5, row + 0.5), moved a quarter pixel towards the larger neighbour in x
    and in y (not at all on a tie, nor for a peak on the border: the reference's 0 < p < 63 test, kept literally,
    so on maps other than 64 px it still reads 63)."""
    n, count, height, width = maps.shape
    flat = maps.reshape(n, count, height * width)
    index = flat.argmax(dim=2)
    col, row = index % width, index // width
    inner = (col > 0) & (col < 63) & (row > 0) & (row < 63)

    def at(r: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        r, c = r.clamp(0, height - 1), c.clamp(0, width - 1)
        return flat.gather(2, (r * width + c).unsqueeze(2)).squeeze(2)

    dx = torch.sign(at(row, col + 1) - at(row, col - 1))
    dy = torch.sign(at(row + 1, col) - at(row - 1, col))
    zero = torch.zeros_like(dx)
    x = col.to(maps.dtype) + 0.5 + 0.25 * torch.where(inner, dx, zero)
    y = row.to(maps.dtype) + 0.5 + 0.25 * torch.where(inner, dy, zero)
    return torch.stack([x, y], dim=2)


# WFLW landmark groups the reference reshapes: (start, end, shift in rows at 256 px, exponent). A shift of N
# moves the heat map up by N rows (down for N < 0), wrapping around, as the reference's permutation does.
_SHAPED = ((8, 25, 0, 3),  # chin (the face outline without its 8 outermost points on each side)
           (34, 46, -7, 2),  # eyebrows (33:51 without the corners 33 and 46, which are zeroed), moved down
           (47, 51, -7, 2),
           (55, 60, 8, 4),  # nostrils, moved up
           (77, 82, -8, 4),  # upper lip, down
           (83, 88, 8, 4),  # lower lip, up
           (88, 96, -2, 3))  # inner lip, down
_ZEROED = ((0, 8), (25, 34), (46, 47), (76, 77), (82, 83))  # outer face line, brow and lip corners
_NOSE = (51, 55)  # its tip stays, the rest moves up 4 rows
_EYES = (60, 76)
_INNER_DROPPED = ((8, 25), (33, 51), (76, 96))  # the second mask: no chin, eyebrows or mouth


def _shift(x: torch.Tensor, rows: int) -> torch.Tensor:
    """Row i of the result is row (i + rows) mod H of x: positive `rows` moves the content up."""
    return torch.roll(x, shifts=-rows, dims=2) if rows else x


def _shaped(x: torch.Tensor, scale: int) -> list[tuple[int, torch.Tensor]]:
    """(first channel, maps) for every landmark group the reference changes, in channel order."""
    parts = [(start, _shift(x[:, start:end], rows * scale) ** power) for start, end, rows, power in _SHAPED]
    parts += [(start, torch.zeros_like(x[:, start:end])) for start, end in _ZEROED]
    parts.append((_NOSE[0], x[:, _NOSE[0]:_NOSE[0] + 1]))
    parts.append((_NOSE[0] + 1, _shift(x[:, _NOSE[0] + 1:_NOSE[1]], 4 * scale)))
    eyes = x[:, _EYES[0]:_EYES[1]]
    parts.append((_EYES[0], _shift(eyes, -8) ** 3 + _shift(eyes, -24)))
    return parts


def _assemble(x: torch.Tensor, parts: list[tuple[int, torch.Tensor]]) -> torch.Tensor:
    """x with each part's channels replaced (parts may leave gaps, which keep x's channels)."""
    pieces, at = [], 0
    for start, maps in sorted(parts, key=lambda p: p[0]):
        if start > at:
            pieces.append(x[:, at:start])
        pieces.append(maps)
        at = start + maps.shape[1]
    pieces.append(x[:, at:])
    return torch.cat(pieces, dim=1)


def masks_from_heatmaps(heatmaps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference's heat-map preprocessing: (N, 98, H, W) -> (whole-face mask, eyes-and-nose mask), each
    (N, 1, H, W) in [0, 1]. Heat maps below 0.1 are cut, each map is min-max normalised, groups are shifted
    and sharpened (powers), and the maps are summed; H is 256 for the shifts' sizes."""
    x = torch.where(heatmaps < 0.1, torch.zeros_like(heatmaps), heatmaps)
    flat = x.flatten(2)
    low, high = flat.min(dim=2, keepdim=True)[0], flat.max(dim=2, keepdim=True)[0]
    x = ((flat - low) / (high - low + 1e-6)).view_as(x)
    whole = _assemble(x, _shaped(x, x.shape[2] // 256))
    inner = _assemble(whole, [(start, torch.zeros_like(whole[:, start:end])) for start, end in _INNER_DROPPED])
    whole = whole.sum(dim=1, keepdim=True)
    inner = inner.sum(dim=1, keepdim=True)
    # the reference zeroes NaNs of the first mask only (its second test reads the already cleaned first one)
    whole = torch.where(torch.isnan(whole), torch.zeros_like(whole), whole)
    return whole.clamp(0, 1), inner.clamp(0, 1)
