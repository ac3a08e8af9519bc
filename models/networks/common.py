"""Shared building blocks: norm layers by name and weight initialisation."""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

NormFactory = Callable[[int], nn.Module]


def norm_layer(name: str) -> NormFactory:
    """'batch' | 'instance' | 'none' -> a factory taking the channel count (the reference code's settings)."""
    if name == "batch":
        return functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True)
    if name == "instance":
        return functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)
    if name == "none":
        return lambda channels: nn.Identity()
    raise ValueError(f"unknown norm '{name}' (batch, instance, none)")


def uses_bias(norm: str) -> bool:
    """Convolutions before a BatchNorm carry no bias (the norm's shift replaces it)."""
    return norm != "batch"


def init_weights(module: nn.Module, init_type: str = "normal", gain: float = 0.02) -> None:
    """Initialise conv/linear weights (and BatchNorm scales around 1) as the reference implementations do."""

    def init_one(m: nn.Module) -> None:
        classname = m.__class__.__name__
        if hasattr(m, "weight") and m.weight is not None and ("Conv" in classname or "Linear" in classname):
            if init_type == "normal":
                nn.init.normal_(m.weight, 0.0, gain)
            elif init_type == "xavier":
                nn.init.xavier_normal_(m.weight, gain=gain)
            elif init_type == "kaiming":
                nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
            elif init_type == "orthogonal":
                nn.init.orthogonal_(m.weight, gain=gain)
            else:
                raise ValueError(f"unknown init_type '{init_type}'")
            if getattr(m, "bias", None) is not None:
                nn.init.constant_(m.bias, 0.0)
        elif "BatchNorm2d" in classname and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.constant_(m.bias, 0.0)

    module.apply(init_one)


class PerImageBatchNorm(nn.Module):
    """A BatchNorm2d that normalises each image by its own statistics (same parameter names).

    The pix2pix reference tests with the network in training mode at batch size 1, i.e. BatchNorm uses the
    statistics of the one image. This reproduces that for any batch size, deterministically and exportably.
    """

    def __init__(self, bn: nn.BatchNorm2d) -> None:
        super().__init__()
        self.weight = bn.weight
        self.bias = bn.bias
        self.eps = bn.eps
        self.register_buffer("running_mean", bn.running_mean)
        self.register_buffer("running_var", bn.running_var)
        self.register_buffer("num_batches_tracked", bn.num_batches_tracked)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.instance_norm(x, weight=self.weight, bias=self.bias, eps=self.eps)


def with_per_image_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm2d in `module` (in place) by PerImageBatchNorm sharing its parameters."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, PerImageBatchNorm(child))
        else:
            with_per_image_batchnorm(child)
    return module
