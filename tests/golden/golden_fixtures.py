"""Golden fixtures: numbers recorded once from the official implementations, loaded and compared by CI.

Each fixture is `<name>.pt` beside this file: a flat or nested dict of tensors, numbers and strings saved with
torch.save and read back with weights_only=True. It names the official repository and commit it came from
(`official_repo`, `official_commit`). The script that recorded it is `record_<name>.py` beside it; it runs outside
CI against a checkout of the official code named by an environment variable and never copies that code here.

The tolerance policy (tests/golden/README.md has the table of measured differences):
- float64 fixtures (the official PyTorch code run in float64, i2i replayed in float64): FLOAT64_RTOL of the
  compared tensor's largest magnitude (or of a stated scale, e.g. a module's largest gradient). float64
  round-off is ~1e-16 per operation; the deepest of these graphs amplify it ~1e3 (InstanceNorm's 1 / std,
  PatchNCE's 1 / 0.07), so the differences measured on torch 2.13 and 2.14 are ~1e-13 of the scale and 1e-9
  leaves four orders of margin on every build while a wrong formula moves numbers by far more.
- Values stored as float32 to keep a fixture small (an optimizer's step) add their storage rounding,
  FLOAT32_STORAGE of each stored element.
- After one Adam step, elements whose gradient is within FLOAT64_RTOL of zero are left out: Adam's first step
  is lr * g / (|g| + eps), so a gradient that is zero in exact arithmetic steps by the sign of its round-off.
- float32 fixtures (where the reference cannot run in float64: the TensorFlow code of attention-guided
  CycleGAN, clean-fid's and the FID / metrics references, face alignment's OpenCV) keep their own stated
  tolerance, in their test's docstring.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

GOLDEN_DIR = Path(__file__).resolve().parent

FLOAT64_RTOL = 1e-9
FLOAT32_STORAGE = 2.0**-24  # the relative rounding of a float64 number stored as float32
_TINY = 1e-300


@contextmanager
def float64() -> Iterator[None]:
    """torch's default dtype float64 while i2i builds and runs a replay (as the recorders run the official
    code); restored afterwards, whatever happens."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


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
    _report(what, worst, max(float(expected.abs().max()), _TINY))
    assert worst <= atol, f"{what}: max |difference| {worst:.3g} > {atol:g}"


def assert_float64_close(actual: torch.Tensor, expected: torch.Tensor, what: str = "", scale: float | None = None,
                         slack: torch.Tensor | float = 0.0) -> None:
    """|actual - expected| <= FLOAT64_RTOL * scale (+ slack) element-wise; scale is the expected tensor's
    largest magnitude unless given, slack the storage rounding of what the fixture stored as float32. i2i's
    result must be float64 (a float32 cast inside a replay would hide behind float32 round-off)."""
    actual = torch.as_tensor(actual)
    expected = torch.as_tensor(expected).double()
    assert actual.dtype == torch.float64, f"{what}: i2i computed {actual.dtype}, the replay must run in float64"
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    if actual.numel() == 0:
        return
    scale = max(float(expected.abs().max()) if scale is None else scale, _TINY)
    bound = FLOAT64_RTOL * scale + torch.as_tensor(slack, dtype=torch.float64)
    diff = (actual.detach() - expected).abs()
    _report(what, float(diff.max()), scale)
    worst = int((diff - bound).argmax())
    assert bool((diff <= bound).all()), (f"{what}: |difference| {float(diff.flatten()[worst]):.3g} > "
                                         f"{float(bound.broadcast_to(diff.shape).flatten()[worst]):.3g} "
                                         f"({FLOAT64_RTOL:g} of {scale:.3g})")


def assert_float64_step_close(actual: torch.Tensor, before: torch.Tensor, step: torch.Tensor, grad: torch.Tensor,
                              grad_scale: float, what: str = "") -> None:
    """Weights after one Adam step (before + the official step, stored as float32) equal i2i's, except where
    the official gradient is within FLOAT64_RTOL * grad_scale of zero (there the step is the sign of
    round-off)."""
    keep = torch.as_tensor(grad).abs() > FLOAT64_RTOL * grad_scale
    step64 = torch.as_tensor(step).double()
    expected = torch.as_tensor(before).double() + step64
    slack = FLOAT32_STORAGE * step64.abs() if step.dtype != torch.float64 else torch.zeros_like(step64)
    scale = float(expected.abs().max()) if expected.numel() else 0.0
    assert_float64_close(torch.as_tensor(actual)[keep], expected[keep], what=f"{what} after one step", scale=scale,
                         slack=slack[keep])


def _report(what: str, worst: float, scale: float) -> None:
    """With $I2I_GOLDEN_REPORT set, one line per comparison (what, max |difference|, relative to the scale)
    appended there: how the README's table of measured differences is made."""
    path = os.environ.get("I2I_GOLDEN_REPORT")
    if path:
        with open(path, "a") as out:
            relative = f"{worst / scale:.3e}" if scale > _TINY else "nan"  # all zeros expected: no scale
            out.write(f"{os.environ.get('PYTEST_CURRENT_TEST', '').split(' ')[0]}\t{what}\t{worst:.3e}\t{relative}\n")


def assert_adam_step_close(
    actual: torch.Tensor, expected: torch.Tensor, grad: torch.Tensor, atol: float = 1e-5, grad_floor: float = 1e-7
) -> None:
    """Weights after one optimizer step equal the official ones, except where the gradient is ~0.

    Adam's first step is lr * g / (|g| + eps): for |g| near eps its size, and for g ~ 0 its sign, come from
    float round-off of a gradient that is zero in exact arithmetic, so those elements cannot be compared.
    """
    keep = torch.as_tensor(grad).abs() > grad_floor
    assert_close(torch.as_tensor(actual)[keep], torch.as_tensor(expected)[keep], atol=atol, what="after one step")
