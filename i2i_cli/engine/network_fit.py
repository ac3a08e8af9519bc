"""When a method's networks cannot take the training crop size (the first iteration fails on a shape), the
nearest sizes that work: found by dry iterations (forward only, nothing stepped, random state restored)."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import numpy as np
import torch

from i2i_cli.errors import ConfigError
from i2i_cli.models.base import MethodConfig, Progress, TranslationMethod

SHAPE_ERRORS = (RuntimeError, ValueError, IndexError, AssertionError, ZeroDivisionError)


def _resized(batch: dict[str, torch.Tensor], old: int, new: int) -> dict[str, torch.Tensor]:
    """Zeros shaped like `batch` with every old x old image (or label map) made new x new."""
    out = {}
    for key, value in batch.items():
        if value.ndim >= 2 and tuple(value.shape[-2:]) == (old, old):
            value = torch.zeros((*value.shape[:-2], new, new), dtype=value.dtype)
        out[key] = value
    return out


def dry_run(cls: type[TranslationMethod], config: MethodConfig, domains: list[str],
            batch: dict[str, torch.Tensor]) -> str | None:
    """None when one iteration's losses compute at config.size on `batch`; else the first line of the error."""
    states = (random.getstate(), np.random.get_state())
    try:
        with torch.random.fork_rng(devices=[]):
            method = cls(config, domains=domains)
            method.train()
            cache: dict[str, Any] = {}
            for phase in method.phases(Progress()):
                phase.compute(batch, cache)
    except SHAPE_ERRORS as exc:
        return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
    return None


def _candidates(size: int, multiple: int) -> list[int]:
    """Multiples of `multiple` around `size`, nearest first (a few each way)."""
    below = [size - size % multiple - multiple * k for k in range(0, 3)]
    above = [size - size % multiple + multiple * k for k in range(1, 6)]
    found = sorted({s for s in below + above if s >= 8 and s != size}, key=lambda s: (abs(s - size), s))
    return found


def size_error(cls: type[TranslationMethod], config: MethodConfig, domains: list[str],
               batch: dict[str, torch.Tensor], exc: BaseException) -> ConfigError:
    """The one-line error for a --size the method's networks cannot take, naming the nearest sizes that work."""
    problem = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
    multiple = cls(config, domains=domains).size_multiple
    working: list[int] = []
    for size in _candidates(config.size, multiple):
        trial = dataclasses.replace(config, size=size, load_size=max(config.load_size, size) if config.load_size else 0)
        if dry_run(cls, trial, domains, _resized(batch, config.size, size)) is None:
            working.append(size)
        if len(working) == 2:
            break
    hint = f"sizes that work near it: {' or '.join(map(str, sorted(working)))}" if working else \
        f"try a multiple of {multiple}"
    return ConfigError(f"--size {config.size}: the {cls.name} networks do not take {config.size}x{config.size} "
                       f"crops ({problem}); {hint}; the run folder was not kept")
