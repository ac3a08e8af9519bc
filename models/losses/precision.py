"""The precision losses are computed in."""

from __future__ import annotations

import torch

_HALF_TYPES = (torch.float16, torch.bfloat16)


def upcast(x: torch.Tensor) -> torch.Tensor:
    """x in float32 where autocast made it float16 / bfloat16 (a loss summed in half precision loses digits);
    float32 and float64 unchanged (the golden tests replay the official code in float64)."""
    return x.float() if x.dtype in _HALF_TYPES else x
