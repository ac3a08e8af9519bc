"""Translation benchmark: model-only images/s in PyTorch and ONNX Runtime, and end-to-end folder images/s.

Model-only figures are the median over --repeats timed calls (with their min-max), host input to host output
on both sides (PyTorch's output is copied to the CPU as ONNX Runtime's is). Uses a freshly initialised CycleGAN ResNet-9 generator (the usual shipped translator) unless a run is given;
weights do not change the speed. End to end = JPEG decode, pad, network, PNG encode, atomic write.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image


@dataclass
class TranslateRow:
    """One (batch size, precision) setting."""

    batch_size: int
    precision: str
    torch_model_only: float  # median over the timed calls
    onnx_model_only: float | None  # fp32 / fp16 ONNX file; None for bf16 (no bf16 export)
    end_to_end: float
    torch_model_only_range: tuple[float, float] = (0.0, 0.0)  # (min, max) images/s over the timed calls
    onnx_model_only_range: tuple[float, float] | None = None


@dataclass
class TranslateBench:
    model: str  # the method whose generator was timed
    network: str
    size: int
    device: str
    images: int
    onnx_provider: str
    rows: list[TranslateRow]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _rates(fn: Any, batch: int, repeats: int) -> list[float]:
    """Images/s of each timed call, after one untimed call (allocation, lazy initialisation)."""
    fn()
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        rates.append(batch / (time.perf_counter() - start))
    return rates


def _write_jpegs(folder: Path, images: int, size: int) -> None:
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(images):
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(folder / f"{i:04d}.jpg", quality=90)


def run_translate_benchmark(model: str = "cyclegan", size: int = 256, batch_sizes: tuple[int, ...] = (1,),
                            images: int = 20, device: str = "auto", repeats: int = 10,
                            precisions: tuple[str, ...] = ("fp32",),
                            progress: Callable[[str, int, int], None] | None = None) -> TranslateBench:
    """Every (batch size, precision): PyTorch model-only, ONNX Runtime model-only, and a folder end to end."""
    import onnxruntime as ort

    from i2i_cli.engine.checkpoint import RunConfig, load_for_inference, save_checkpoint, write_run_config
    from i2i_cli.engine.device import resolve_device, resolve_precision
    from i2i_cli.errors import ConfigError
    from i2i_cli.export import export_onnx, onnx_providers
    from i2i_cli.inference import TorchTranslator
    from i2i_cli.models import registry

    dev = resolve_device(device)
    for precision in precisions:
        resolve_precision(precision, dev)  # refuse fp16 on a CPU before any work
    if not batch_sizes or min(batch_sizes) < 1 or images < 1 or repeats < 1:
        raise ConfigError("--batch-size, --images and --repeats must be >= 1")
    if model not in registry.list_methods():  # the ResNet-9 translator if registered, else pix2pix's U-Net
        model = "cyclegan" if "cyclegan" in registry.list_methods() else "pix2pix"
    cls = registry.method_class(model)
    method = cls(cls.config_class(size=size))
    rows: list[TranslateRow] = []
    with tempfile.TemporaryDirectory(prefix="i2i-bench-") as tmp:
        root = Path(tmp)
        run = root / "run"
        run.mkdir()
        config = RunConfig(model, method.config.to_dict(), method.domains)
        write_run_config(run, config)
        save_checkpoint(run, config, 0, method.saved_state_dict(), None, None)
        loaded = load_for_inference(run)
        _write_jpegs(root / "in", images, size)
        sessions: dict[str, Any] = {}
        provider = ""
        for precision in precisions:
            translator = TorchTranslator(loaded, device=str(dev), precision=precision)
            if precision in ("fp32", "fp16"):
                onnx_file = root / f"m_{precision}.onnx"
                export_onnx(run, onnx_file, fp16=precision == "fp16")
                sessions[precision] = ort.InferenceSession(str(onnx_file), providers=onnx_providers())
                provider = sessions[precision].get_providers()[0]
            for batch in batch_sizes:
                if progress:
                    progress(f"batch {batch}, {precision}", len(rows), len(batch_sizes) * len(precisions))
                rows.append(_measure(translator, sessions.get(precision), batch, precision, size, repeats, dev,
                                     root, images))
        network = type(translator.net).__name__
    return TranslateBench(model, network, size, str(dev), images, provider, rows)


def _measure(translator: Any, session: Any, batch: int, precision: str, size: int, repeats: int,
             dev: torch.device, root: Path, images: int) -> TranslateRow:
    from i2i_cli.inference import TranslateOptions, translate_folder

    x = torch.rand(batch, 3, size, size) * 2 - 1

    def torch_once() -> None:  # host input to host output, as ONNX Runtime's session.run below
        translator(x).cpu()

    torch_rates = _rates(torch_once, batch, repeats)
    onnx_rates = None
    if session is not None:
        feed = {session.get_inputs()[0].name: x.numpy().astype(np.float16 if precision == "fp16" else np.float32)}
        onnx_rates = _rates(lambda: session.run(None, feed), batch, repeats)
    out = root / f"out_{precision}_{batch}"
    start = time.perf_counter()
    # model-only figures above include no decode/encode; end to end includes everything a user waits for
    translate_folder(root / "in", out, translator, TranslateOptions(batch_size=batch, device=str(dev),
                                                                    precision=precision))
    return TranslateRow(batch, precision, statistics.median(torch_rates),
                        statistics.median(onnx_rates) if onnx_rates else None, images / (time.perf_counter() - start),
                        (min(torch_rates), max(torch_rates)), (min(onnx_rates), max(onnx_rates)) if onnx_rates else None)
