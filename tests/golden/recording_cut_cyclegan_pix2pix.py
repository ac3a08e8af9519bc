"""Helpers of the pix2pix / CycleGAN / CUT / FastCUT / segmenter recording scripts (run outside CI).

The official code runs in float64 (`use_float64()`: torch's default dtype, so the official constructors,
buffers and inputs are float64), and the fixture says so (`"dtype": "float64"`); the tests replay i2i in float64.
Storage keeps the fixtures small without losing what is compared:
- initial weights are rounded to float16-representable values *in the official network* before the step, so
  storing them as float16 is exact (the step then runs in float64 from exactly those weights);
- the change made by the optimizer step is stored as float32 (its rounding, 6e-8 of the step, is added to the
  tolerance: an Adam first step is ~lr, so that is ~1e-11);
- gradients, outputs, buffers and losses are float64; images are uint8 (x = u8 / 127.5 - 1 in float64).

The pix2pix and CycleGAN fixtures were recorded earlier in float32 (no "dtype" key): the float16 step with
float32 where float16 would round it by more than STEP_ROUNDOFF, float32 gradients.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

STEP_ROUNDOFF = 1e-6  # the float32 recordings only


def use_float64() -> None:
    """The official networks, buffers and inputs are built in float64 from here on."""
    torch.set_default_dtype(torch.float64)


def official_checkout(variable: str) -> tuple[Path, str]:
    """The checkout named by $variable, put first on sys.path; its commit from git or $variable_COMMIT."""
    if variable not in os.environ:
        sys.exit(f"set {variable} to a checkout of the official repository (see this script's docstring)")
    root = Path(os.environ[variable]).resolve()
    sys.path.insert(0, str(root))
    commit = os.environ.get(f"{variable}_COMMIT", "")
    if not commit:
        done = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True)
        commit = done.stdout.strip()
    if not commit:
        sys.exit(f"{root} is not a git checkout: set {variable}_COMMIT to the commit its files come from")
    return root, commit


def images_u8(generator: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.randint(0, 256, shape, generator=generator, dtype=torch.uint8)


def to_float(u8: torch.Tensor) -> torch.Tensor:
    """uint8 -> [-1, 1] in the default dtype (float64 after use_float64), the same expression as the tests use."""
    return u8.to(torch.get_default_dtype()) / 127.5 - 1


@torch.no_grad()
def round_weights_to_half(net: nn.Module) -> dict[str, torch.Tensor]:
    """Round the network's float tensors to float16-representable values in place; return its state_dict
    (float tensors as float16, exact; others unchanged)."""
    out = {}
    for key, value in net.state_dict().items():
        if value.is_floating_point():
            value.copy_(value.half().to(value.dtype))
            out[key] = value.half().clone()
        else:
            out[key] = value.clone()
    return out


def after_step(net: nn.Module, init: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """grad (as computed: float64) and step = after - before (float32) of every parameter; float buffers after
    the step (as computed)."""
    grads, steps, buffers = {}, {}, {}
    params = dict(net.named_parameters())
    for key, value in net.state_dict().items():
        if key in params:
            p = params[key]
            if p.grad is not None:
                if not bool(torch.isfinite(p.grad).all()):
                    raise RuntimeError(f"{key}: the official gradient is not finite; choose other widths or seeds")
                grads[key] = p.grad.detach().clone()
            steps[key] = (value - init[key].to(value.dtype)).float()
        elif value.is_floating_point():
            buffers[key] = value.clone()
        else:
            buffers[key] = value.clone()
    return {"grad": grads, "step": steps, "buffers": buffers}


def strip_module_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k.removeprefix("module."): v for k, v in state.items()}


def pack(state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """A dict of tensors as one flat tensor per dtype plus keys and shapes: a saved tensor costs ~300 bytes
    of bookkeeping, which for hundreds of small ones is a fifth of a fixture (the tests unpack)."""
    keys, shapes, dtypes, flat = [], [], [], {}
    for key, value in state.items():
        name = str(value.dtype).removeprefix("torch.")
        keys.append(key)
        shapes.append(list(value.shape))
        dtypes.append(name)
        flat.setdefault(name, []).append(value.reshape(-1))
    return {"packed": True, "keys": keys, "shapes": shapes, "dtypes": dtypes,
            "data": {name: torch.cat(parts) for name, parts in flat.items()}}


def _pack_tree(tree: Any) -> Any:
    """Every dict whose values are all tensors, packed; other containers walked."""
    if isinstance(tree, dict):
        if tree and all(isinstance(v, torch.Tensor) for v in tree.values()):
            return pack(tree)
        return {k: _pack_tree(v) for k, v in tree.items()}
    return tree


def save(fixture: dict[str, Any], name: str) -> None:
    path = Path(__file__).resolve().parent / f"{name}.pt"
    packed = {k: _pack_tree(v) if k in ("init", "after") else v for k, v in fixture.items()}
    torch.save(packed, path)
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")
