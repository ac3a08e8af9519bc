"""LPIPS (Zhang et al. 2018, v0.1) as a training loss: the lpips package's network with its shipped linear heads
and a torchvision backbone loaded from i2i's weights registry (the trainer's pretrained-weights contract), so
nothing is downloaded behind the registry's back. img2img-turbo trains with LPIPS-VGG."""

from __future__ import annotations

import warnings

import torch
from torch import nn

# the lpips backbone -> the weights registry's torchvision file
BACKBONE_WEIGHTS = {"alex": "alexnet", "vgg": "vgg16"}


def torchvision_to_lpips(target_keys: list[str], source: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """lpips keeps torchvision's feature indices in its slices: sliceK.N.weight <- features.N.weight."""
    mapped = {}
    for key in target_keys:
        tv_key = "features." + key.split(".", 1)[1]
        if tv_key not in source:
            raise KeyError(f"no {tv_key} (expected a torchvision feature extractor's state dict)")
        mapped[key] = source[tv_key]
    return mapped


class LpipsLoss(nn.Module):
    """(N, 3, H, W) images in [-1, 1] -> (N,) LPIPS distances; frozen, always in eval mode."""

    def __init__(self, net: str = "vgg") -> None:
        super().__init__()
        import lpips

        if net not in BACKBONE_WEIGHTS:
            raise ValueError(f"LPIPS backbone {net!r}: choose {', '.join(BACKBONE_WEIGHTS)}")
        self.backbone_name = net
        # pnet_rand: torchvision must not download the backbone; load_pretrained_state_dict fills it
        with warnings.catch_warnings():  # lpips passes torchvision's deprecated `pretrained` argument
            warnings.simplefilter("ignore", UserWarning)
            self.model = lpips.LPIPS(net=net, version="0.1", pretrained=True, pnet_rand=True, verbose=False)
        self.model.requires_grad_(False)
        self.model.eval()

    @property
    def weights_name(self) -> str:
        return BACKBONE_WEIGHTS[self.backbone_name]

    def load_pretrained_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        target = self.model.net.state_dict()
        self.model.net.load_state_dict(torchvision_to_lpips(list(target), state))

    def train(self, mode: bool = True) -> LpipsLoss:
        return super().train(False)  # dropout in the linear heads stays off, as the official eval-mode nets

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.model(x, y).flatten()
