"""Training benchmark: the tool's fast settings vs. a baseline that trains the way the official code does.

Both run in one process on the same synthetic data and seed: the baseline in eager fp32, channels-first,
decoding every image with PIL on every step (no cache), plain (non-fused) Adam; the fast settings with mixed
precision (bf16 on GPUs that have it), channels-last, decoded-once cached data, fused Adam, cuDNN autotuning
and optionally torch.compile. Reported: training images/s, generator inference images/s, peak memory, the
ratio of the two, and how closely the loss curves agree over the measured steps.
"""

from __future__ import annotations

import dataclasses
import resource
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from i2i_cli.config import resolve_config
from i2i_cli.engine.device import resolve_device
from i2i_cli.engine.trainer import Trainer, TrainEvent, TrainOptions


@dataclass
class Setting:
    name: str
    precision: str
    channels_last: bool
    cache: bool
    fused_optimizer: bool
    cudnn_benchmark: bool
    compile: bool = False
    workers: int = 0


@dataclass
class BenchRow:
    setting: str
    train_images_per_s: float
    translate_images_per_s: float
    peak_memory_mb: float  # CUDA: max allocated during the measured steps (after warm-up); CPU: peak RSS so far
    losses: list[dict[str, float]] = field(default_factory=list)
    warmup_peak_memory_mb: float | None = None  # CUDA: max allocated during warm-up (cuDNN autotuning, compile)


@dataclass
class BenchReport:
    model: str
    device: str
    size: int
    batch_size: int
    steps: int
    rows: list[BenchRow]
    loss_agreement: dict[str, float]  # per loss: mean |fast - baseline| / mean |baseline| over the measured steps

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def settings_for(device: torch.device, compile_: bool) -> list[Setting]:
    baseline = Setting("baseline (official-style)", "fp32", False, False, False, False, workers=0)
    if device.type == "cuda":
        precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        fast = Setting(f"i2i fast ({precision}, channels-last, cached, fused optimizer)", precision, True, True, True, True,
                       compile_)
    else:
        fast = Setting("i2i fast (cached data, foreach optimizer)", "fp32", False, True, True, True, compile_)
    return [baseline, fast]


class _StepTimer:
    """Trainer event hook: the (synchronised) time and losses at the end of every step."""

    def __init__(self, device: torch.device, warmup: int = 0) -> None:
        self.device = device
        self.warmup = warmup
        self.warmup_peak_mb: float | None = None
        self.times: list[float] = []
        self.losses: list[dict[str, float]] = []

    def __call__(self, event: TrainEvent) -> None:
        if event.kind == "step":
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self.times.append(time.perf_counter())
            self.losses.append(dict(event.losses))
            if len(self.times) == max(1, self.warmup) and self.device.type == "cuda":
                # one-off autotuning workspaces are not what training holds; keep them apart
                self.warmup_peak_mb = torch.cuda.max_memory_allocated(self.device) / 2**20
                torch.cuda.reset_peak_memory_stats(self.device)


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _synthetic_data(layout: str, size: int, root: Path, n: int) -> Path:
    from i2i_cli.data.synth import synthesize

    layout = "aligned" if layout == "segmentation" else layout  # label map | photo pairs train a segmenter
    return synthesize("scenes", root / layout, layout, size=size, n_train=n, n_test=0, n_domains=2).root


def _time_translate(method: Any, device: torch.device, size: int, batch: int, setting: Setting, repeats: int) -> float:
    """Images/s of the method's inference network (what `i2i translate` and ONNX export run)."""
    x = torch.rand(batch, 3, size, size, device=device) * 2 - 1
    if method.takes_style_reference:
        style = method.style_from_reference(x, torch.zeros(batch, dtype=torch.long, device=device))
        net = method.export_module(kind="generator").to(device)
        args: tuple[Any, ...] = (x, style)
    else:
        net = method.export_module(direction="AtoB").to(device)
        args = (x,)
    if setting.channels_last:
        net = net.to(memory_format=torch.channels_last)
        args = (x.contiguous(memory_format=torch.channels_last), *args[1:])
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(setting.precision)

    def once() -> None:
        with torch.no_grad(), torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            net(*args)

    for _ in range(3):
        once()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        once()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return repeats * batch / (time.perf_counter() - start)


def run_train_benchmark(
    model: str,
    *,
    size: int = 256,
    batch_size: int = 1,
    steps: int = 50,
    warmup: int = 10,
    device: str = "auto",
    compile_: bool = False,
    overrides: list[str] | None = None,
    images: int = 64,
) -> BenchReport:
    dev = resolve_device(device)
    config = resolve_config(model, overrides=overrides or [], explicit={"size": size, "batch_size": batch_size})
    if getattr(config, "pretrained_backbone", False):  # speed does not depend on the initial weights
        config = dataclasses.replace(config, pretrained_backbone=False)
    from models import registry

    layout = registry.method_class(model).layout
    rows = []
    with tempfile.TemporaryDirectory(prefix="i2i-bench-") as tmp:
        data = _synthetic_data(layout, config.load_size or size, Path(tmp), images)
        for setting in settings_for(dev, compile_):
            if dev.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(dev)
            timer = _StepTimer(dev, warmup)
            options = TrainOptions(
                data=data, out=Path(tmp) / f"run-{len(rows)}", steps=warmup + steps, device=str(dev),
                precision=setting.precision, channels_last=setting.channels_last, cache=setting.cache,
                fused_optimizer=setting.fused_optimizer, cudnn_benchmark=setting.cudnn_benchmark,
                compile=setting.compile, workers=setting.workers, save_every=10**9, sample_every=10**9,
                log_every=10**9,
            )
            result = Trainer(model, config, options, timer).run()
            measured = timer.times[warmup:]
            per_s = (len(measured) - 1) * batch_size / (measured[-1] - measured[0]) if len(measured) > 1 else 0.0
            train_peak = _peak_memory_mb(dev)
            method = result.method.eval()
            translate = _time_translate(method, dev, size, batch_size, setting, repeats=max(5, steps // 2))
            rows.append(BenchRow(setting.name, per_s, translate, train_peak, timer.losses, timer.warmup_peak_mb))
    return BenchReport(model, str(dev), size, batch_size, steps, rows, _agreement(rows[0].losses, rows[1].losses))


def _agreement(base: list[dict[str, float]], fast: list[dict[str, float]]) -> dict[str, float]:
    out = {}
    for key in base[0] if base else {}:
        a = [row[key] for row in base if key in row]
        b = [row[key] for row in fast if key in row]
        n = min(len(a), len(b))
        if n == 0:
            continue
        scale = sum(abs(v) for v in a[:n]) / n or 1.0
        out[key] = sum(abs(x - y) for x, y in zip(a[:n], b[:n])) / n / scale
    return out
