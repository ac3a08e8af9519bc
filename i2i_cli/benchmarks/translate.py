"""Translation benchmark: model-only images/s in PyTorch and ONNX Runtime, and end-to-end folder images/s.

Uses a freshly initialised CycleGAN ResNet-9 generator (the usual shipped translator) unless a run is given;
weights do not change the speed. End to end = JPEG decode, pad, network, PNG encode, atomic write.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image


@dataclass
class TranslateBench:
    model: str  # the method whose generator was timed
    network: str
    size: int
    batch_size: int
    device: str
    images: int
    torch_model_only: float
    onnx_model_only: float | None
    onnx_provider: str
    end_to_end: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _rate(fn: Any, batch: int, repeats: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return repeats * batch / (time.perf_counter() - start)


def run_translate_benchmark(model: str = "cyclegan", size: int = 256, batch_size: int = 1, images: int = 20,
                            device: str = "auto", repeats: int = 10) -> TranslateBench:
    import onnxruntime as ort

    from i2i_cli.engine.checkpoint import RunConfig, save_checkpoint, write_run_config
    from i2i_cli.engine.device import resolve_device
    from i2i_cli.export import export_onnx, onnx_providers
    from i2i_cli.inference import TorchTranslator, TranslateOptions, load_for_inference, translate_folder
    from models import registry

    dev = resolve_device(device)
    if model not in registry.list_methods():  # the ResNet-9 translator if registered, else pix2pix's U-Net
        model = "cyclegan" if "cyclegan" in registry.list_methods() else "pix2pix"
    cls = registry.method_class(model)
    method = cls(cls.config_class(size=size))
    with tempfile.TemporaryDirectory(prefix="i2i-bench-") as tmp:
        root = Path(tmp)
        run = root / "run"
        run.mkdir()
        config = RunConfig(model, method.config.to_dict(), method.domains)
        write_run_config(run, config)
        save_checkpoint(run, config, 0, method.saved_state_dict(), None, None)
        translator = TorchTranslator(load_for_inference(run), device=str(dev))
        x = torch.rand(batch_size, 3, size, size) * 2 - 1

        def torch_once() -> None:
            translator(x)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)

        torch_rate = _rate(torch_once, batch_size, repeats)
        export_onnx(run, root / "m.onnx")
        session = ort.InferenceSession(str(root / "m.onnx"), providers=onnx_providers())
        feed = {"image": x.numpy()}
        onnx_rate = _rate(lambda: session.run(None, feed), batch_size, repeats)
        src = root / "in"
        src.mkdir()
        rng = np.random.default_rng(0)
        for i in range(images):
            Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(src / f"{i:04d}.jpg", quality=90)
        start = time.perf_counter()
        translate_folder(src, root / "out", translator, TranslateOptions(batch_size=batch_size, device=str(dev)))
        # (model-only figures above include no decode/encode; end to end includes everything a user waits for)
        end_to_end = images / (time.perf_counter() - start)
    return TranslateBench(model, type(translator.net).__name__, size, batch_size, str(dev), images, torch_rate, onnx_rate,
                          session.get_providers()[0], end_to_end)
