"""What a translation is asked to do (TranslateOptions) and what it did (TranslateResult)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ProgressFn = Callable[[int, int], None]


@dataclass
class TranslateOptions:
    direction: str = "AtoB"
    device: str = "auto"
    precision: str = "auto"  # bf16 on a CPU with native bf16 (avx512_bf16 / AMX), else fp32
    batch_size: int = 1
    resize: int | None = None  # resize the shorter side to N before translating (output keeps that size)
    keep_size: bool = False  # with resize: scale the output back to the input's size
    overwrite: bool = False
    skip_existing: bool = True
    threads: int = 4  # decode / encode threads
    max_pixels: int | None = None
    save_masks: bool = False  # attention methods: also write NAME__mask.png
    tag: str = ""  # output names become NAME__tag.png (one output per style)
    tile: int = 0  # translate images larger than this in overlapping tiles of this size (0: whole images)
    overlap: int = 32
    blend: str = "linear"  # tile seam weights: linear or cosine ramps


@dataclass
class TranslateResult:
    written: list[Path | str] = field(default_factory=list)  # paths; object-store outputs as URLs
    skipped: int = 0
    bad: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    device: str = ""  # torch device, or the ONNX Runtime provider that ran the network
    precision: str = ""  # what ran: fp32, bf16, fp16 (an ONNX file: the precision it was exported in)
    note: str = ""
    engine: str = "local"  # or "ray"
    workers: int = 1  # the Ray engine's actors

    @property
    def counts(self) -> dict[str, int]:
        return {"written": len(self.written), "skipped": self.skipped, "bad": len(self.bad)}
