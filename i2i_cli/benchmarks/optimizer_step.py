"""One optimizer step over a method's parameters: the trainer's kernels against the alternatives, on this device.

    python -m i2i_cli.benchmarks.optimizer_step pix2pix fastcut cyclegan [--size 256] [--rounds 12] [--json out.json]

For each method, its networks at their defaults (fresh weights: the step's cost depends on the shapes only) and
its own optimizer specs (`method.optimizers()`: Adam, AdamW or SGD with the paper's hyper-parameters), three
copies of every parameter list: torch's fused kernel (what the trainer runs where FUSED_OPTIMIZER_DEVICES has
the device), foreach kernels, and the plain per-tensor loop (torch's default on the CPU, so the official
code's). Every copy gets the same gradients; the rounds interleave the three; the first two are left out as
warm-up. Reports the median (min-max) milliseconds per step over all of a method's optimizers, and how far the
fused and foreach parameters ended from the loop's (fused kernels round differently; foreach should not).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch

KERNELS = {"fused": {"fused": True}, "foreach": {"foreach": True}, "loop": {"foreach": False}}


def _optimizers(method: Any, kernel: str) -> tuple[list[torch.optim.Optimizer], list[torch.Tensor]]:
    """Copies of the method's parameters (gradients set), grouped as its specs group them, under `kernel`."""
    from i2i_cli.engine.trainer import OPTIMIZER_KINDS, optimizer_hyperparameters

    optimizers, copies = [], []
    generator = torch.Generator().manual_seed(0)
    for spec in method.optimizers():
        groups = []
        for group in spec.param_groups:
            params = [p.detach().clone().requires_grad_() for p in group["params"] if p.requires_grad]
            for p in params:
                p.grad = torch.randn(p.shape, generator=generator, dtype=p.dtype)
            copies += params
            groups.append({**group, "params": params})
        hyper = optimizer_hyperparameters(spec)
        optimizers.append(OPTIMIZER_KINDS[spec.kind](groups, **hyper, **KERNELS[kernel]))
    return optimizers, copies


def measure(name: str, size: int, rounds: int) -> dict[str, Any]:
    from i2i_cli.models import registry

    cls = registry.method_class(name)
    torch.manual_seed(0)
    method = cls(cls.config_class(size=size))
    built = {kernel: _optimizers(method, kernel) for kernel in KERNELS}
    times: dict[str, list[float]] = {kernel: [] for kernel in KERNELS}
    for r in range(rounds):
        order = list(KERNELS)[r % 3:] + list(KERNELS)[:r % 3]
        for kernel in order:
            start = time.perf_counter()
            for optimizer in built[kernel][0]:
                optimizer.step()
            times[kernel].append((time.perf_counter() - start) * 1000)
    loop = built["loop"][1]
    return {
        "method": name, "parameters_m": round(sum(p.numel() for p in loop) / 1e6, 2), "tensors": len(loop),
        "ms": {k: [statistics.median(v[2:]), min(v[2:]), max(v[2:])] for k, v in times.items()},
        "max_abs_from_loop": {k: max(float((a.detach() - b.detach()).abs().max()) for a, b in zip(built[k][1], loop))
                              for k in ("fused", "foreach")},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("methods", nargs="+")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = [measure(name, args.size, args.rounds) for name in args.methods]
    for row in rows:
        cells = "  ".join(f"{k} {v[0]:.1f} ms ({v[1]:.1f}-{v[2]:.1f})" for k, v in row["ms"].items())
        drift = ", ".join(f"{k} {v:.2g}" for k, v in row["max_abs_from_loop"].items())
        print(f"{row['method']:10s} {row['parameters_m']:6.1f} M in {row['tensors']:3d} tensors  {cells}  "
              f"max |x - loop| after {args.rounds} steps: {drift}")
    if args.json:
        args.json.write_text(json.dumps({"args": {**vars(args), "json": str(args.json)}, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
