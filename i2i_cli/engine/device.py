"""Device and precision: the one place that picks a device, autocast dtype and gradient scaling."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from i2i_cli.errors import ConfigError

PRECISIONS = ("fp32", "bf16", "fp16")
AUTO = "auto"  # inference: bf16 on a CPU with native bf16 (avx512_bf16 or AMX), fp32 elsewhere


def cpu_has_native_bf16() -> bool:
    """avx512_bf16 or AMX tiles, as torch's CPU probes report them (a torch without the probes reads as no).

    Without them bf16 matmuls are emulated in fp32 and run slower than fp32 itself (measured on an AVX2 EPYC:
    docs/benchmarks.md), so `auto` picks bf16 only where the processor has it."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, probe, lambda: False)()) for probe in probes)


def auto_precision(device: torch.device) -> str:
    """What `--precision auto` runs on `device`: bf16 on a CPU with native bf16, else fp32 (GPUs included)."""
    if device.type == "cpu" and cpu_has_native_bf16():
        return "bf16"
    return "fp32"


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' -> cuda (this process's local rank under torchrun) when available, else cpu."""
    if name == "auto":
        if torch.cuda.is_available():
            import os

            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: no CUDA device is available here; use --device cpu or auto")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"--device {name}: not a device; use auto, cpu, cuda or cuda:N") from None


@dataclass
class Precision:
    name: str  # what runs: fp32, bf16 or fp16 (never auto)
    device: torch.device
    auto: bool = False  # chosen by --precision auto

    def describe(self) -> str:
        """For the one line a command prints: 'bf16 (auto: native bf16 on this CPU)'."""
        if not self.auto:
            if self.name == "bf16" and self.device.type == "cpu" and not cpu_has_native_bf16():
                return "bf16 (no native bf16 on this CPU: emulated, far slower than fp32)"
            return self.name
        why = "native bf16 on this CPU" if self.name == "bf16" else (
            "no native bf16 on this CPU" if self.device.type == "cpu" else "auto keeps fp32 on GPUs")
        return f"{self.name} (auto: {why})"

    @property
    def dtype(self) -> torch.dtype | None:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.name)

    @property
    def uses_scaler(self) -> bool:
        return self.name == "fp16" and self.device.type == "cuda"

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        if self.dtype is None:
            yield
            return
        with torch.autocast(device_type=self.device.type, dtype=self.dtype):
            yield


def preview_precision(training: Precision) -> Precision:
    """What a run's sample grids render in: the training precision, or `auto` where training runs fp32. A grid is
    a preview, not a result; on a CPU with native bf16 it then costs half as much (a CUT grid at 256 px is about
    two thirds of a training step in fp32), and bf16 stays within 40 dB of fp32 (docs/benchmarks.md)."""
    if training.name != "fp32":
        return training
    return resolve_precision(AUTO, training.device)


def resolve_precision(name: str, device: torch.device) -> Precision:
    """A precision by name; `auto` (inference) resolves to what this device runs best (auto_precision)."""
    if name == AUTO:
        return Precision(auto_precision(device), device, auto=True)
    if name not in PRECISIONS:
        raise ConfigError(f"--precision {name}: choose {AUTO}, {', '.join(PRECISIONS)}")
    if name == "fp16" and device.type == "cpu":
        raise ConfigError("--precision fp16 needs a CUDA device; use bf16 or fp32 on the CPU")
    if name == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError("--precision bf16: this GPU does not support bfloat16; use fp16 or fp32")
    return Precision(name, device)
