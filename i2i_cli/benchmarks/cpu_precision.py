"""Recording script for docs/benchmarks.md "CPU precision and the folder path" (not run by the tests).

    python -m i2i_cli.benchmarks.cpu_precision conv            # one 3x3 convolution: fp32 vs bf16 autocast
    python -m i2i_cli.benchmarks.cpu_precision folder 256 6 3  # ResNet-9: model-only vs folder, 4 vs 1 threads
    python -m i2i_cli.benchmarks.cpu_precision gemm            # the fp32 GEMM limit: torch.mm 2048^3, GFLOP/s
    python -m i2i_cli.benchmarks.cpu_precision flops 256       # ResNet-9 generator: GFLOP per image

Both interleave what they compare (rotated order per round) and print medians with min-max."""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def _summary(name: str, values: list[float], unit: str) -> str:
    return f"{name}: median {statistics.median(values):.3f} {unit} (min {min(values):.3f}, max {max(values):.3f})"


def conv(rounds: int = 6) -> None:
    layer = torch.nn.Conv2d(64, 64, 3, padding=1).eval()
    x = torch.rand(1, 64, 128, 128)
    ms: dict[str, list[float]] = {"fp32": [], "bf16": []}
    with torch.no_grad():
        for r in range(rounds):
            for kind in ("fp32", "bf16") if r % 2 == 0 else ("bf16", "fp32"):
                start = time.perf_counter()
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=kind == "bf16"):
                    layer(x)
                ms[kind].append((time.perf_counter() - start) * 1000)
    for kind, values in ms.items():
        print(_summary(kind, values[1:], "ms"))  # the first call of each allocates


def gemm(n: int = 2048, rounds: int = 12) -> None:
    """The fp32 GEMM limit of this CPU at torch's thread count: 2 n^3 FLOP per n x n matrix product."""
    a, b = torch.rand(n, n), torch.rand(n, n)
    torch.mm(a, b)  # first call: allocation, kernel choice
    rates = []
    for _ in range(rounds):
        start = time.perf_counter()
        torch.mm(a, b)
        rates.append(2 * n**3 / (time.perf_counter() - start) / 1e9)
    print(f"threads {torch.get_num_threads()}: " + _summary(f"torch.mm {n}^3 fp32", rates, "GFLOP/s"))


def flops(size: int) -> None:
    """FLOP of one forward pass of the ResNet-9 generator (torch's flop counter: convolutions and matmuls)."""
    from torch.utils.flop_counter import FlopCounterMode

    from i2i_cli.models import registry

    cls = registry.method_class("cyclegan")
    method = cls(cls.config_class(size=size))
    net = method.export_module("AtoB") if hasattr(method, "export_module") else method.netG_A
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(torch.rand(1, 3, size, size))
    print(f"{type(net).__name__} at {size} px: {counter.get_total_flops() / 1e9:.1f} GFLOP per image")


def folder(size: int, images: int, rounds: int) -> None:
    from i2i_cli.data.images import load_image
    from i2i_cli.engine.checkpoint import RunConfig, load_for_inference, save_checkpoint, write_run_config
    from i2i_cli.inference import TorchTranslator, TranslateOptions, translate_folder
    from i2i_cli.models import registry

    root = Path(tempfile.mkdtemp(prefix="i2i-cpu-"))
    cls = registry.method_class("cyclegan")
    method = cls(cls.config_class(size=size))
    config = RunConfig("cyclegan", method.config.to_dict(), method.domains)
    (root / "run").mkdir()
    write_run_config(root / "run", config)
    save_checkpoint(root / "run", config, 0, method.saved_state_dict(), None, None)
    translator = TorchTranslator(load_for_inference(root / "run"), device="cpu", precision="fp32")
    (root / "in").mkdir()
    rng = np.random.default_rng(0)
    for i in range(images):
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / "in" / f"{i}.jpg")
    x = torch.rand(1, 3, size, size) * 2 - 1
    translator(x)
    rates: dict[str, list[float]] = {"model": [], "threads 4": [], "threads 1": []}
    for r in range(rounds):
        order = list(rates)
        for kind in order[r % 3:] + order[: r % 3]:
            start = time.perf_counter()
            if kind == "model":
                for _ in range(images):
                    translator(x).cpu()
            else:
                translate_folder(root / "in", root / f"out{r}{kind[-1]}", translator,
                                 TranslateOptions(threads=int(kind[-1])))
            rates[kind].append(images / (time.perf_counter() - start))
        start = time.perf_counter()
        load_image(root / "in" / "0.jpg")
        print(f"round {r}: " + ", ".join(f"{k} {v[-1]:.3f} img/s" for k, v in rates.items())
              + f", JPEG decode {(time.perf_counter() - start) * 1000:.1f} ms", flush=True)
    for kind, values in rates.items():
        print(_summary(kind, values, "img/s"))
        if kind != "model":
            print(_summary(f"{kind} / model (same round)", [a / b for a, b in zip(values, rates["model"])], ""))


if __name__ == "__main__":
    if sys.argv[1:2] == ["conv"]:
        conv()
    elif sys.argv[1:2] == ["gemm"]:
        gemm()
    elif sys.argv[1:2] == ["flops"]:
        flops(int(sys.argv[2]))
    else:
        folder(*(int(a) for a in sys.argv[2:5]))
