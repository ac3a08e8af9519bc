"""Training benchmark: the tool's fast settings vs. a baseline that trains the way the official code does.

Both run in one process on the same synthetic data and seed: the baseline in eager fp32, channels-first,
decoding every image with PIL on every step (no cache), plain (non-fused) Adam; the fast settings with mixed
precision (bf16 on GPUs that have it), channels-last, decoded-once cached data, fused Adam, cuDNN autotuning
and optionally torch.compile. Reported: training images/s, generator inference images/s, peak memory, the
ratio of the two, and how closely the loss curves agree over the measured steps. Train images/s is the batch
over the median measured step (with the slowest and fastest step); set-up (building, data, warm-up) and the
final step's sample and checkpoint are timed apart and never enter the step figures.
"""

from __future__ import annotations

import dataclasses
import resource
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from i2i_cli.config import resolve_config
from i2i_cli.engine.device import resolve_device
from i2i_cli.engine.trainer import Trainer, TrainEvent, TrainOptions
from i2i_cli.models.base import StyleSource


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
    train_images_per_s: float  # batch / the median step time of the measured steps
    translate_images_per_s: float  # median over the timed forward passes
    peak_memory_mb: float  # CUDA: max allocated during the measured steps (after warm-up); CPU: peak RSS so far
    losses: list[dict[str, float]] = field(default_factory=list)
    warmup_peak_memory_mb: float | None = None  # CUDA: max allocated during warm-up (cuDNN autotuning, compile)
    step_seconds: list[float] = field(default_factory=list)  # each measured step
    train_images_per_s_range: tuple[float, float] = (0.0, 0.0)  # (slowest, fastest step) in images/s
    translate_images_per_s_range: tuple[float, float] = (0.0, 0.0)
    setup_seconds: float = 0.0  # Trainer.run() to the end of warm-up: building, data, cache, warm-up steps
    finish_seconds: float = 0.0  # from the last measured step's end until the trainer has stopped
    translate_seconds: float = 0.0  # the inference timing, warm-up calls included


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
    """Trainer event hook: the (synchronised) time and losses at the end of every step.

    The trainer emits a step's event after that step's logging, sample and checkpoint, and on its last step it
    always writes a sample and a checkpoint: the hook stops training (_EnoughSteps) after `stop_after` steps, before
    any of that, so no step figure includes it."""

    def __init__(self, device: torch.device, warmup: int = 0, stop_after: int | None = None) -> None:
        self.device = device
        self.warmup = warmup
        self.stop_after = stop_after
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
            if self.stop_after is not None and len(self.times) >= self.stop_after:
                raise _EnoughSteps


class _EnoughSteps(Exception):
    """Raised by the step hook to end a benchmark's training before the trainer's final sample and checkpoint."""


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _synthetic_data(accepts: tuple[str, ...], size: int, root: Path, n: int) -> Path:
    """Synthetic data in the first layout the method accepts that `i2i data synth` writes (a segmenter:
    label map | photo pairs, its second layout)."""
    from i2i_cli.data.synth import SYNTH_LAYOUTS, synthesize

    layout = next(name for name in accepts if name in SYNTH_LAYOUTS)
    return synthesize("scenes", root / layout, layout, size=size, n_train=n, n_test=0, n_domains=2).root


def _time_translate(method: Any, device: torch.device, size: int, batch: int, setting: Setting,
                    repeats: int) -> list[float]:
    """Images/s of each timed forward of the method's inference network (what `i2i translate` and ONNX run)."""
    x = torch.rand(batch, 3, size, size, device=device) * 2 - 1
    if isinstance(method, StyleSource):
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
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    once()
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        once()
        rates.append(batch / (time.perf_counter() - start))
    return rates


def default_warmup(device: torch.device) -> int:
    """Warm-up steps: cuDNN autotuning and compilation need several on a GPU; a CPU step is steady after one."""
    return 10 if device.type == "cuda" else 1


def run_train_benchmark(
    model: str,
    *,
    size: int = 256,
    batch_size: int = 1,
    steps: int = 50,
    warmup: int | None = None,
    device: str = "auto",
    compile_: bool = False,
    overrides: list[str] | None = None,
    images: int = 16,
    translate_repeats: int | None = None,
) -> BenchReport:
    dev = resolve_device(device)
    warmup = max(1, default_warmup(dev) if warmup is None else warmup)  # the first step's end starts the clock
    config = resolve_config(model, overrides=overrides or [], explicit={"size": size, "batch_size": batch_size})
    if getattr(config, "pretrained_backbone", False):  # speed does not depend on the initial weights
        config = dataclasses.replace(config, pretrained_backbone=False)
    from i2i_cli.models import registry

    accepts = registry.method_class(model).accepts
    rows = []
    with tempfile.TemporaryDirectory(prefix="i2i-bench-") as tmp:
        data = _synthetic_data(accepts, config.load_size or size, Path(tmp), images)
        for setting in settings_for(dev, compile_):
            rows.append(_bench_setting(model, config, setting, data, Path(tmp) / f"run-{len(rows)}", dev, size,
                                       batch_size, steps, warmup, translate_repeats or max(3, min(10, steps))))
    return BenchReport(model, str(dev), size, batch_size, steps, rows, _agreement(rows[0].losses, rows[1].losses))


def _bench_setting(model: str, config: Any, setting: Setting, data: Path, out: Path, dev: torch.device, size: int,
                   batch_size: int, steps: int, warmup: int, translate_repeats: int) -> BenchRow:
    if dev.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)
    timer = _StepTimer(dev, warmup, stop_after=warmup + steps)
    options = TrainOptions(
        data=data, out=out, steps=warmup + steps + 1, device=str(dev), precision=setting.precision,
        channels_last=setting.channels_last, cache=setting.cache, fused_optimizer=setting.fused_optimizer,
        cudnn_benchmark=setting.cudnn_benchmark, compile=setting.compile, workers=setting.workers,
        save_every=10**9, sample_every=10**9, log_every=10**9,
    )
    start = time.perf_counter()
    trainer = Trainer(model, config, options, timer)
    try:
        trainer.run()
    except _EnoughSteps:
        pass
    finished = time.perf_counter()
    measured = timer.times[warmup - 1 : warmup + steps]  # the ends of the warm-up and of each measured step
    step_s = [b - a for a, b in zip(measured, measured[1:])]
    train_peak = _peak_memory_mb(dev)
    rates = _time_translate(_fresh_method(trainer, data, dev), dev, size, batch_size, setting, translate_repeats)
    return BenchRow(setting.name, batch_size / statistics.median(step_s), statistics.median(rates), train_peak,
                    timer.losses[: warmup + steps], timer.warmup_peak_mb, step_s,
                    (batch_size / max(step_s), batch_size / min(step_s)), (min(rates), max(rates)),
                    measured[0] - start, finished - measured[-1], time.perf_counter() - finished)


def _fresh_method(trainer: Trainer, data: Path, dev: torch.device) -> Any:
    """The trained method's architecture with fresh weights (speed does not depend on them), in eval mode."""
    from i2i_cli.models import registry

    cls = registry.method_class(trainer.method_name)
    domains = trainer._layout().domains() if cls.multi_domain else ["A", "B"]
    return cls(trainer.config, domains=domains).to(dev).eval()


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
