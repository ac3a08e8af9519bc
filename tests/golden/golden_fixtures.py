"""Golden fixtures: numbers recorded once from the official implementations, loaded and compared by CI.

Each fixture is `<name>.pt` beside this file: a flat or nested dict of tensors, numbers and strings saved with
torch.save and read back with weights_only=True. It names the official repository and commit it came from
(`official_repo`, `official_commit`). The script that recorded it is `record_<name>.py` beside it; it runs outside
CI against a checkout of the official code named by an environment variable and never copies that code here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

GOLDEN_DIR = Path(__file__).resolve().parent


def load_fixture(name: str) -> dict[str, Any]:
    path = GOLDEN_DIR / f"{name}.pt"
    return torch.load(path, map_location="cpu", weights_only=True)


def assert_close(actual: torch.Tensor, expected: torch.Tensor, atol: float = 1e-6, what: str = "") -> None:
    """Element-wise |actual - expected| <= atol, reporting the worst element."""
    actual = torch.as_tensor(actual, dtype=torch.float64)
    expected = torch.as_tensor(expected, dtype=torch.float64)
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    if actual.numel() == 0:
        return
    diff = (actual - expected).abs()
    worst = float(diff.max())
    assert worst <= atol, f"{what}: max |difference| {worst:.3g} > {atol:g}"


def assert_adam_step_close(
    actual: torch.Tensor, expected: torch.Tensor, grad: torch.Tensor, atol: float = 1e-5, grad_floor: float = 1e-7
) -> None:
    """Weights after one optimizer step equal the official ones, except where the gradient is ~0.

    Adam's first step is lr * g / (|g| + eps): for |g| near eps its size, and for g ~ 0 its sign, come from
    float round-off of a gradient that is zero in exact arithmetic, so those elements cannot be compared.
    """
    keep = torch.as_tensor(grad).abs() > grad_floor
    assert_close(torch.as_tensor(actual)[keep], torch.as_tensor(expected)[keep], atol=atol, what="after one step")
