"""Dilated Residual Networks, type D (Yu, Koltun, Funkhouser, CVPR 2017), and the segmentation head of fyu/drn.

`DRN` keeps the official module names (layer0 .. layer8, avgpool, fc), so the published ImageNet files
(e.g. drn_d_22-4bd2f8ea.pth) load with `load_state_dict`. `DRNSeg` is segment.py's DRNSeg: the DRN without
its pooling and classifier as `base` (an nn.Sequential, keys base.0 .. base.8), a 1x1 `seg` convolution to the
classes, and `up`, a fixed bilinear x8 transposed convolution (not trained). Output stride 8: layers 2-4
halve the resolution, layers 5-8 keep it with dilations 2, 4, 2, 1.
"""

from __future__ import annotations

import math

import torch
from torch import nn

DRN_D_22_LAYERS = (1, 1, 2, 2, 2, 2, 1, 1)
# fyu/drn datasets/cityscapes/info.json: mean and std of the Cityscapes training photos (RGB in [0, 1]), the
# input normalisation of its Cityscapes segmenters.
CITYSCAPES_MEAN = (0.290101, 0.328081, 0.286964)
CITYSCAPES_STD = (0.182954, 0.186566, 0.184475)
# Cityscapes' 19 train-id colours (road, sidewalk, ... bicycle), from the dataset's labels table: the colours of
# the classes a Cityscapes DRN predicts. i2i_cli.data.labels builds its label tables on them.
CITYSCAPES_TRAIN_COLORS: tuple[tuple[int, int, int], ...] = (
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153),
    (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60), (255, 0, 0),
    (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32),
)
DRN_D_CHANNELS = (16, 32, 64, 128, 256, 512, 512, 512)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with BatchNorm and a residual connection; `dilation` per convolution."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 dilation: tuple[int, int] = (1, 1), residual: bool = True) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=dilation[0], dilation=dilation[0],
                               bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=dilation[1], dilation=dilation[1], bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.residual:
            out = out + (self.downsample(x) if self.downsample is not None else x)
        return self.relu(out)


class DRN(nn.Module):
    """DRN type D: a 7x7 stem, two plain conv levels, four residual levels, two plain dilated levels.

    x (N, 3, H, W) -> logits (N, num_classes) after `pool_size` average pooling (num_classes > 0), or the
    stride-8 feature map (N, channels[-1], H/8, W/8) when num_classes == 0.
    """

    def __init__(self, layers: tuple[int, ...] = DRN_D_22_LAYERS, channels: tuple[int, ...] = DRN_D_CHANNELS,
                 num_classes: int = 1000, pool_size: int = 28) -> None:
        super().__init__()
        if len(layers) != 8 or len(channels) != 8:
            raise ValueError("DRN-D needs 8 layer counts and 8 channel widths")
        self.inplanes = channels[0]
        self.out_dim = channels[-1]
        self.layer0 = nn.Sequential(nn.Conv2d(3, channels[0], 7, stride=1, padding=3, bias=False),
                                    nn.BatchNorm2d(channels[0]), nn.ReLU(inplace=True))
        self.layer1 = self._conv_layers(channels[0], layers[0], stride=1)
        self.layer2 = self._conv_layers(channels[1], layers[1], stride=2)
        self.layer3 = self._residual_layers(channels[2], layers[2], stride=2)
        self.layer4 = self._residual_layers(channels[3], layers[3], stride=2)
        self.layer5 = self._residual_layers(channels[4], layers[4], dilation=2, new_level=False)
        self.layer6 = self._residual_layers(channels[5], layers[5], dilation=4, new_level=False)
        self.layer7 = self._conv_layers(channels[6], layers[6], dilation=2)
        self.layer8 = self._conv_layers(channels[7], layers[7], dilation=1)
        self.num_classes = num_classes
        if num_classes > 0:
            self.avgpool = nn.AvgPool2d(pool_size)
            self.fc = nn.Conv2d(self.out_dim, num_classes, 1, bias=True)
        self._init_weights()

    def _init_weights(self) -> None:
        # The official init: He normal with fan-out for convolutions, BatchNorm at identity.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _residual_layers(self, planes: int, blocks: int, stride: int = 1, dilation: int = 1,
                         new_level: bool = True) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes, 1, stride=stride, bias=False),
                                       nn.BatchNorm2d(planes))
        first = (1, 1) if dilation == 1 else (dilation // 2 if new_level else dilation, dilation)
        modules = [BasicBlock(self.inplanes, planes, stride, downsample, dilation=first)]
        self.inplanes = planes
        modules += [BasicBlock(planes, planes, dilation=(dilation, dilation)) for _ in range(1, blocks)]
        return nn.Sequential(*modules)

    def _conv_layers(self, channels: int, convs: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
        modules: list[nn.Module] = []
        for i in range(convs):
            modules += [nn.Conv2d(self.inplanes, channels, 3, stride=stride if i == 0 else 1, padding=dilation,
                                  dilation=dilation, bias=False),
                        nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]
            self.inplanes = channels
        return nn.Sequential(*modules)

    def levels(self) -> list[nn.Sequential]:
        return [self.layer0, self.layer1, self.layer2, self.layer3, self.layer4, self.layer5, self.layer6,
                self.layer7, self.layer8]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for level in self.levels():
            x = level(x)
        if self.num_classes > 0:
            x = self.fc(self.avgpool(x)).flatten(1)
        return x


def drn_d_22(num_classes: int = 1000, channels: tuple[int, ...] = DRN_D_CHANNELS) -> DRN:
    """DRN-D-22: levels of 1, 1, 2, 2, 2, 2, 1, 1 (conv, conv, basic blocks x4, conv, conv)."""
    return DRN(DRN_D_22_LAYERS, channels, num_classes)


def bilinear_up_kernel(channels: int, kernel: int) -> torch.Tensor:
    """(channels, 1, k, k) weights making a grouped transposed convolution a bilinear upsampler (fyu/drn's)."""
    f = math.ceil(kernel / 2)
    c = (2 * f - 1 - f % 2) / (2.0 * f)
    ramp = 1 - torch.abs(torch.arange(kernel, dtype=torch.float64) / f - c)
    return (ramp[:, None] * ramp[None, :]).float().expand(channels, 1, kernel, kernel).clone()


class DRNSeg(nn.Module):
    """fyu/drn segment.py's DRNSeg: DRN base, 1x1 classifier, fixed bilinear x8 upsampling.

    x (N, 3, H, W), normalised as the training data -> logits (N, classes, 8 * ceil(H / 8), 8 * ceil(W / 8)).
    """

    def __init__(self, classes: int, layers: tuple[int, ...] = DRN_D_22_LAYERS,
                 channels: tuple[int, ...] = DRN_D_CHANNELS) -> None:
        super().__init__()
        backbone = DRN(layers, channels, num_classes=0)
        self.base = nn.Sequential(*backbone.levels())
        self.seg = nn.Conv2d(backbone.out_dim, classes, 1, bias=True)
        nn.init.normal_(self.seg.weight, 0.0, math.sqrt(2.0 / classes))  # fan-out of a 1x1 conv
        nn.init.zeros_(self.seg.bias)
        self.up = nn.ConvTranspose2d(classes, classes, 16, stride=8, padding=4, groups=classes, bias=False)
        with torch.no_grad():
            self.up.weight.copy_(bilinear_up_kernel(classes, 16))
        self.up.weight.requires_grad_(False)  # a fixed interpolation, as in the official code

    @property
    def size_multiple(self) -> int:
        return 8

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The base and the classifier (the official optim_parameters); `up` stays bilinear."""
        return list(self.base.parameters()) + list(self.seg.parameters())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.seg(self.base(x)))

    def load_pretrained_state_dict(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Load an ImageNet DRN file (keys layer0.* .. layer8.*, fc.*) into `base`; the classifier is dropped."""
        mapped = {}
        for key, value in state_dict.items():
            name = key[len("module."):] if key.startswith("module.") else key
            head, _, rest = name.partition(".")
            if head.startswith("layer") and head[5:].isdigit():
                mapped[f"{head[5:]}.{rest}"] = value
        if not mapped:
            raise KeyError("no layer0..layer8 keys: not a DRN state_dict")
        missing, unexpected = self.base.load_state_dict(mapped, strict=False)
        if missing or unexpected:
            raise KeyError(f"missing keys {missing[:4]}, unexpected keys {unexpected[:4]}")

    def load_official_state_dict(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Load a fyu/drn segmentation file: DRNSeg's own keys (base.*, seg.*, up.weight), optionally under a
        checkpoint's "state_dict" and DataParallel's "module." prefix."""
        if "state_dict" in state_dict and isinstance(state_dict["state_dict"], dict):
            state_dict = state_dict["state_dict"]
        mapped = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state_dict.items()}
        if not any(k.startswith("base.") for k in mapped):
            raise KeyError("no base.* keys: not a DRNSeg segmentation state_dict")
        missing, unexpected = self.load_state_dict(mapped, strict=False)
        missing = [k for k in missing if k != "up.weight"]  # fixed bilinear weights; some files omit them
        if missing or unexpected:
            raise KeyError(f"missing keys {missing[:4]}, unexpected keys {unexpected[:4]}")
