"""A semantic segmenter (DRN-D-22 as in fyu/drn segment.py) trained on real photos and their label maps.

It exists for the FCN-score: the published Cityscapes segmenters of pix2pix (Caffe FCN-8s) and CUT /
F-LSeSim (a DRN-D-22 at 256x128) are not available, so a run of this method is the `--segmenter` of
`i2i eval fcn`. As a translator it maps a photo to its colourised label map (argmax of the logits drawn in
the palette), so `i2i translate` writes viewable segmentations.

Batches: {"A": photos (N, 3, h, w) in [-1, 1], "label": (N, h, w) int64 class ids, 255 = ignored}.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from i2i_cli.models.base import (
    DataSpec,
    LossDict,
    MethodConfig,
    OptimizerSpec,
    Phase,
    Progress,
    SegmentationData,
    SegmentationModel,
    TranslationMethod,
)
from i2i_cli.models.losses.precision import upcast
from i2i_cli.models.networks.drn import (
    CITYSCAPES_MEAN,
    CITYSCAPES_STD,
    CITYSCAPES_TRAIN_COLORS,
    DRN_D_22_LAYERS,
    DRNSeg,
)

IGNORE_INDEX = 255


@dataclass
class SegmenterConfig(MethodConfig):
    # SGD with He-initialised DRN weights and its own schedule: the GAN options do not apply.
    unused: ClassVar[tuple[str, ...]] = ("direction", "decay_epochs", "beta1", "beta2", "init_type", "init_gain")
    # Data: the official code crops `size` squares from full-size images; here also rectangles and a resize.
    size: int = 256  # crop width (and height unless crop_height is set)
    crop_height: int = 0  # 0: square crops of `size`
    load_size: int = 0  # resize photos (bicubic) and labels (nearest) to this width first; 0: keep
    load_height: int = 0  # and this height; 0 with load_size set: keep the aspect ratio
    random_scale: float = 0.0  # > 0: scale each image by a factor in [1/s, s] before cropping (segment.py)
    flip: bool = True
    label_side: Literal["auto", "left", "right"] = "auto"  # photo | label datasets: auto, left or right (pix2pix cityscapes: right)
    label_format: Literal["auto", "trainid", "cityscapes-id", "color"] = "auto"  # auto | trainid | cityscapes-id | color (as `i2i eval fcn --label-format`)
    palette: str = ""  # file of one 'r g b' per class for colour label maps (default: Cityscapes colours)
    palette_colors: tuple[int, ...] = ()  # filled from `palette` when training starts (flat r, g, b)
    n_classes: int = 19  # label classes (19: Cityscapes train ids)
    # Network: DRN-D-22 from ImageNet weights (drn_d_22-4bd2f8ea.pth, the weights registry), as segment.py does.
    base_channels: int = 16  # 16 = DRN-D-22; other widths cannot use the ImageNet file
    pretrained_backbone: bool = True  # start from the ImageNet DRN-D-22 weights
    # Input normalisation (RGB in [0, 1]); empty: as segment.py, the dataset's info.json, else measured on its
    # training photos when training starts (Cityscapes: ~ fyu/drn's info.json). Saved with the run.
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()  # its std per channel (as mean)
    # Optimisation: fyu/drn's README command for DRN-D-22 (segment.py train --batch-size 32 --epochs 250
    # --lr 0.01 --momentum 0.9 --step 100; weight decay 1e-4); `lr_mode=poly` is its recipe for the best models.
    batch_size: int = 32
    epochs: int = 250
    decay_epochs: int = 0
    lr: float = 0.01
    momentum: float = 0.9  # SGD momentum
    weight_decay: float = 1e-4  # SGD weight decay
    lr_mode: Literal["step", "poly"] = "step"  # step: lr * 0.1^(epoch // step_epochs) | poly: lr * (1 - step / total)^poly_power
    poly_power: float = 0.9  # exponent of the poly schedule
    step_epochs: int = 100  # step schedule: lr x 0.1 every this many epochs

    def data_spec(self) -> DataSpec:
        return DataSpec(segmentation=SegmentationData(
            label_side=self.label_side, label_format=self.label_format, palette_colors=self.palette_colors,
            n_classes=self.n_classes, load_width=self.load_size, load_height=self.load_height,
            crop_height=self.crop_height, random_scale=self.random_scale))


class Segmenter(TranslationMethod, SegmentationModel):
    name = "segmenter"
    config_class = SegmenterConfig
    summary = "Semantic segmenter (DRN-D-22) on real photos + label maps: the FCN-score's --segmenter"
    paper = "Yu, Koltun, Funkhouser. Dilated Residual Networks. CVPR 2017"
    code = "https://github.com/fyu/drn"
    accepts = ("segmentation", "aligned")
    evaluation = "segmentation"

    def __init__(self, config: SegmenterConfig, domains: list[str] | None = None) -> None:
        super().__init__(config, domains)
        if config.lr_mode not in ("poly", "step"):
            raise ValueError(f"lr_mode {config.lr_mode}: choose poly or step")
        if not 1 <= config.n_classes <= 255:
            raise ValueError(f"n_classes {config.n_classes}: must be in 1..255")
        channels = tuple(config.base_channels * m for m in (1, 2, 4, 8, 16, 32, 32, 32))
        self.net = DRNSeg(config.n_classes, DRN_D_22_LAYERS, channels)
        mean, std = config.mean or CITYSCAPES_MEAN, config.std or CITYSCAPES_STD  # unset outside training: Cityscapes'
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise ValueError(f"mean {mean} / std {std}: need 3 values each, std > 0")
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("colors", self._palette(config), persistent=False)

    @staticmethod
    def _palette(config: SegmenterConfig) -> torch.Tensor:
        """(n_classes + 1, 3) colours in [-1, 1]; the last row (black) draws ignored pixels."""
        # default: Cityscapes' colours (and the meaning of classes 0..18)
        flat = list(config.palette_colors) or [c for rgb in CITYSCAPES_TRAIN_COLORS for c in rgb]
        rows = [flat[i: i + 3] for i in range(0, len(flat), 3)][: config.n_classes]
        for k in range(len(rows), config.n_classes):  # classes beyond the palette: fixed distinct colours
            rows.append([(k * 97) % 256, (k * 57 + 80) % 256, (k * 151 + 40) % 256])
        rows.append([0, 0, 0])
        return torch.tensor(rows, dtype=torch.float32) / 127.5 - 1

    # --- training ---------------------------------------------------------------------------------
    def pretrained_weights(self) -> dict[str, str]:
        return {"net": "drn_d_22"} if self.config.pretrained_backbone else {}

    def _lr_factor(self, step: int, total: int) -> float:
        """segment.py's adjust_learning_rate, set once per epoch: step: 0.1 ** (epoch // step_epochs); poly:
        (1 - epoch / epochs) ** power. A run of N `--steps` spreads the config's `epochs` over those steps."""
        c = self.config
        epochs = max(1, c.epochs)
        epoch = step * epochs // max(total, 1)
        if c.lr_mode == "poly":
            return poly_factor(epoch, epochs, c.poly_power)
        return 0.1 ** (epoch // max(1, c.step_epochs))

    def optimizers(self) -> list[OptimizerSpec]:
        c = self.config
        return [OptimizerSpec("net", [{"params": self.net.trainable_parameters()}], c.lr, (0.9, 0.999),
                              weight_decay=c.weight_decay, kind="sgd", momentum=c.momentum, schedule=self._lr_factor)]

    @property
    def n_classes(self) -> int:
        return self.config.n_classes

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] -> the network's input (the training set's mean / std on RGB in [0, 1])."""
        return ((x + 1) / 2 - self.mean) / self.std

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [-1, 1] -> (N, n_classes, H, W) logits (bilinear to the input size if it is not a
        multiple of 8)."""
        out = self.net(self.normalize(x))
        if out.shape[-2:] != x.shape[-2:]:
            out = F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return out

    def _loss(self, batch: dict[str, torch.Tensor], cache: dict[str, Any]) -> LossDict:
        logits = upcast(self.logits(batch["A"]))
        return {"CE": F.cross_entropy(logits, batch["label"].long(), ignore_index=IGNORE_INDEX)}

    def phases(self, progress: Progress) -> list[Phase]:
        return [Phase("segment", ("net",), self._loss)]

    def colorize(self, classes: torch.Tensor) -> torch.Tensor:
        """(N, H, W) class ids (IGNORE -> black) -> (N, 3, H, W) colours in [-1, 1]."""
        index = torch.where((classes >= 0) & (classes < self.config.n_classes), classes,
                            torch.full_like(classes, self.config.n_classes))
        return self.colors[index].permute(0, 3, 1, 2)

    def sample_rows(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"photo": batch["A"], "prediction": self.translate(batch["A"]), "label": self.colorize(batch["label"])}

    # --- inference --------------------------------------------------------------------------------
    @property
    def size_multiple(self) -> int:
        return self.net.size_multiple

    @property
    def min_size(self) -> int:
        return 16

    @torch.no_grad()
    def translate(self, x: torch.Tensor, direction: str = "AtoB", **kwargs: Any) -> torch.Tensor:
        return self.colorize(self.logits(x).argmax(1))

    def export_module(self, direction: str = "AtoB", **kwargs: Any) -> nn.Module:
        return _ColourSegmentation(self)


class _ColourSegmentation(nn.Module):
    """Photo in [-1, 1] -> colourised label map in [-1, 1]: what `translate` computes, as one graph."""

    def __init__(self, method: Segmenter) -> None:
        super().__init__()
        self.net = method.net
        self.register_buffer("mean", method.mean.clone())
        self.register_buffer("std", method.std.clone())
        self.register_buffer("colors", method.colors.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.net(((x + 1) / 2 - self.mean) / self.std)
        classes = logits.argmax(1)
        return self.colors[classes].permute(0, 3, 1, 2)


def poly_factor(epoch: int, epochs: int, power: float = 0.9) -> float:
    """segment.py's poly schedule as a factor of the base lr: (1 - epoch / epochs) ** power."""
    return math.pow(max(0.0, 1 - epoch / max(epochs, 1)), power)
