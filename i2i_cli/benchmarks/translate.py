"""Translation benchmark: model-only images/s in PyTorch and ONNX Runtime, and end-to-end folder images/s.

Figures that can be trusted on a shared machine: every setting (precision x batch size) is measured in
`rounds` rounds, the settings interleaved within a round (in a rotated order), so a slow minute hits all of
them; each round measures a setting's model-only rate (median of `repeats` timed calls) and its end-to-end
rate (a folder of `images` JPEGs, PNG out) back to back, and the end-to-end / model-only ratio is taken
within the round. A row reports the median over rounds with the min-max. Model-only is host input to host
output on both sides (PyTorch's output is copied to the CPU as ONNX Runtime's is); with `tile` it is the
network over the image's blended tiles (tensor in, tensor out), the same path a folder runs minus decoding and
encoding. Uses a freshly initialised CycleGAN ResNet-9 generator (the usual shipped translator) unless another
method is asked for; weights do not change the speed.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image


@dataclass
class TranslateRow:
    """One (batch size, precision) setting: medians over the rounds with their (min, max)."""

    batch_size: int
    precision: str
    torch_model_only: float
    onnx_model_only: float | None  # fp32 / fp16 ONNX file; None for bf16 (no bf16 export)
    end_to_end: float
    torch_model_only_range: tuple[float, float] = (0.0, 0.0)
    onnx_model_only_range: tuple[float, float] | None = None
    end_to_end_range: tuple[float, float] = (0.0, 0.0)
    ratio: float = 0.0  # end to end / PyTorch model only, each round's pair measured back to back
    ratio_range: tuple[float, float] = (0.0, 0.0)


@dataclass
class TranslateBench:
    model: str  # the method whose generator was timed
    network: str
    size: int
    device: str
    images: int
    onnx_provider: str
    rows: list[TranslateRow]
    rounds: int = 1
    repeats: int = 1
    tile: int = 0
    torch_threads: int = field(default_factory=torch.get_num_threads)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Setting:
    batch: int
    precision: str
    translator: Any
    session: Any
    torch_rates: list[float] = field(default_factory=list)  # one median per round
    onnx_rates: list[float] = field(default_factory=list)
    end_to_end: list[float] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)


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


def _check(precisions: tuple[str, ...], batch_sizes: tuple[int, ...], images: int, repeats: int, rounds: int,
           dev: torch.device) -> tuple[str, ...]:
    """The precisions to time (auto resolved), refused before any work (fp16 on a CPU, counts below 1)."""
    from i2i_cli.engine.device import resolve_precision
    from i2i_cli.errors import ConfigError

    resolved = tuple(dict.fromkeys(resolve_precision(p, dev).name for p in precisions))
    if not batch_sizes or min(batch_sizes) < 1 or images < 1 or repeats < 1 or rounds < 1:
        raise ConfigError("--batch-size, --images, --repeats and --rounds must be >= 1")
    return resolved


def run_translate_benchmark(model: str = "cyclegan", size: int = 256, batch_sizes: tuple[int, ...] = (1,),
                            images: int = 20, device: str = "auto", repeats: int = 10,
                            precisions: tuple[str, ...] = ("fp32",),
                            progress: Callable[[str, int, int], None] | None = None, rounds: int = 3,
                            tile: int = 0) -> TranslateBench:
    """Every (batch size, precision): PyTorch model-only, ONNX Runtime model-only, and a folder end to end."""
    from i2i_cli.engine.device import resolve_device
    from i2i_cli.models import registry

    dev = resolve_device(device)
    precisions = _check(precisions, batch_sizes, images, repeats, rounds, dev)
    if model not in registry.list_methods():  # the ResNet-9 translator if registered, else pix2pix's U-Net
        model = "cyclegan" if "cyclegan" in registry.list_methods() else "pix2pix"
    with tempfile.TemporaryDirectory(prefix="i2i-bench-") as tmp:
        root = Path(tmp)
        settings, provider, network = _settings(model, size, tile, precisions, batch_sizes, dev, root)
        _write_jpegs(root / "in", images, size)
        total = rounds * len(settings)
        for r in range(rounds):
            shift = r % len(settings)  # rotate the order: no setting always runs first (or right after another)
            for i, setting in enumerate(settings[shift:] + settings[:shift]):
                if progress:
                    progress(f"round {r + 1}/{rounds}: batch {setting.batch}, {setting.precision}",
                             r * len(settings) + i, total)
                _measure_round(setting, size, tile, repeats, dev, root / f"out_{r}_{i}")
    rows = [_row(s) for s in settings]
    return TranslateBench(model, network, size, str(dev), images, provider, rows, rounds, repeats, tile)


def _settings(model: str, size: int, tile: int, precisions: tuple[str, ...], batch_sizes: tuple[int, ...],
              dev: torch.device, root: Path) -> tuple[list[_Setting], str, str]:
    """A run folder of fresh weights, its translators (and ONNX sessions for fp32 / fp16) per setting."""
    import onnxruntime as ort

    from i2i_cli.engine.checkpoint import RunConfig, load_for_inference, save_checkpoint, write_run_config
    from i2i_cli.export import export_onnx, onnx_providers
    from i2i_cli.inference import TorchTranslator
    from i2i_cli.models import registry

    cls = registry.method_class(model)
    method = cls(cls.config_class(size=tile or size))
    run = root / "run"
    run.mkdir()
    config = RunConfig(model, method.config.to_dict(), method.domains)
    write_run_config(run, config)
    save_checkpoint(run, config, 0, method.saved_state_dict(), None, None)
    loaded = load_for_inference(run)
    settings, provider = [], ""
    for precision in precisions:
        translator = TorchTranslator(loaded, device=str(dev), precision=precision)
        session = None
        if precision in ("fp32", "fp16") and not tile:
            onnx_file = root / f"m_{precision}.onnx"
            export_onnx(run, onnx_file, fp16=precision == "fp16")
            session = ort.InferenceSession(str(onnx_file), providers=onnx_providers())
            provider = session.get_providers()[0]
        settings += [_Setting(batch, precision, translator, session) for batch in batch_sizes]
    return settings, provider, type(settings[0].translator.net).__name__


def _measure_round(setting: _Setting, size: int, tile: int, repeats: int, dev: torch.device, out: Path) -> None:
    """One round of one setting: model-only (PyTorch, ONNX Runtime), then the folder end to end."""
    from i2i_cli.inference import TranslateOptions, translate_folder
    from i2i_cli.inference.tiling import run_tiled

    batch, translator = setting.batch, setting.translator
    x = torch.rand(batch, 3, size, size) * 2 - 1

    def torch_once() -> None:  # host input to host output, as ONNX Runtime's session.run below
        if tile:
            run_tiled(translator, x, tile, 32)
        else:
            translator(x).cpu()

    setting.torch_rates.append(statistics.median(_rates(torch_once, batch, repeats)))
    if setting.session is not None:
        session = setting.session
        dtype = np.float16 if setting.precision == "fp16" else np.float32
        feed = {session.get_inputs()[0].name: x.numpy().astype(dtype)}
        setting.onnx_rates.append(statistics.median(_rates(lambda: session.run(None, feed), batch, repeats)))
    images = len(list((out.parent / "in").iterdir()))
    start = time.perf_counter()
    # model-only figures above include no decode/encode; end to end includes everything a user waits for
    translate_folder(out.parent / "in", out, translator, TranslateOptions(batch_size=batch, device=str(dev),
                                                                          precision=setting.precision, tile=tile))
    setting.end_to_end.append(images / (time.perf_counter() - start))
    setting.ratios.append(setting.end_to_end[-1] / setting.torch_rates[-1])


def _spread(values: list[float]) -> tuple[float, tuple[float, float]]:
    return statistics.median(values), (min(values), max(values))


def _row(s: _Setting) -> TranslateRow:
    torch_rate, torch_range = _spread(s.torch_rates)
    onnx_rate, onnx_range = _spread(s.onnx_rates) if s.onnx_rates else (None, None)
    e2e, e2e_range = _spread(s.end_to_end)
    ratio, ratio_range = _spread(s.ratios)
    return TranslateRow(s.batch, s.precision, torch_rate, onnx_rate, e2e, torch_range, onnx_range, e2e_range,
                        ratio, ratio_range)
