"""VGG16 feature extractor (torchvision's `features.N` layout, so the official ImageNet file loads)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

# (name, index of the ReLU in torchvision's vgg16().features)
VGG16_LAYERS = {"relu1_1": 1, "relu1_2": 3, "relu2_1": 6, "relu2_2": 8, "relu3_1": 11, "relu3_2": 13, "relu3_3": 15,
                "relu4_1": 18, "relu4_2": 20, "relu4_3": 22, "relu5_1": 25, "relu5_2": 27, "relu5_3": 29}
# channels of each named activation (LSeSim builds its heads from these)
VGG16_CHANNELS = {name: (64, 128, 256, 512, 512)[int(name[4]) - 1] for name in VGG16_LAYERS}
_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class VGG16Features(nn.Module):
    """Frozen VGG16 trunk: images in [-1, 1] -> {layer name: activation}, ImageNet-normalised inside."""

    def __init__(self, layers: tuple[str, ...] = ("relu3_1", "relu4_1", "relu4_3")) -> None:
        super().__init__()
        unknown = [n for n in layers if n not in VGG16_LAYERS]
        if unknown:
            raise ValueError(f"unknown VGG16 layers {unknown}; known: {list(VGG16_LAYERS)}")
        self.layers = tuple(layers)
        last = max(VGG16_LAYERS[n] for n in layers)
        modules: list[nn.Module] = []
        channels = 3
        for v in _CFG:
            if v == "M":
                modules.append(nn.MaxPool2d(2, 2))
            else:
                modules += [nn.Conv2d(channels, int(v), 3, padding=1), nn.ReLU(inplace=False)]
                channels = int(v)
        self.features = nn.Sequential(*modules[: last + 1])
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)

    def _apply(self, fn: Any, recurse: bool = True) -> VGG16Features:
        super()._apply(fn, recurse)
        # the constants redrawn in the new dtype: float32's 0.485 cast to float64 is not 0.485 (golden tests)
        dtype, device = self.mean.dtype, self.mean.device
        self.mean = torch.tensor(IMAGENET_MEAN, dtype=dtype, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD, dtype=dtype, device=device).view(1, 3, 1, 1)
        return self

    def load_pretrained_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Load torchvision's vgg16 file (classifier and unused deeper layers are dropped)."""
        own = self.features.state_dict()
        wanted = {k: state[f"features.{k}"] for k in own if f"features.{k}" in state}
        missing = sorted(set(own) - set(wanted))
        if missing:
            raise KeyError(f"missing features.{missing[0]} (and {len(missing) - 1} more)")
        self.features.load_state_dict(wanted)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = ((x + 1) / 2 - self.mean) / self.std
        wanted = {VGG16_LAYERS[n]: n for n in self.layers}
        out = {}
        for index, module in enumerate(self.features):
            h = module(h)
            if index in wanted:
                out[wanted[index]] = h
        return out
