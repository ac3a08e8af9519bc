"""Recording script for docs/benchmarks.md "Each runtime end to end" (not run by tests): what `i2i translate`
delivers per runtime on the CPU, model only and through the folder path, with the PSNR of each against fp32.

    python -m i2i_cli.benchmarks.runtime_folder --model cyclegan --size 256 --rounds 3 --images 10

One process, through the library's own entry point (`i2i_cli.Translator`, as `i2i translate` builds it): a
fresh-weights run of the method's generator and its fp32 export (`export_onnx`), then these settings:
PyTorch fp32 and bf16 on the run folder, ONNX Runtime fp32 and OpenVINO bf16 (`precision="bf16"`) on the .onnx
file, and OpenVINO f32 (`runtime="openvino"`). Each is built once and warmed up; every round times each
setting in a rotated order (a slow minute hits all of them): model only (the median of `repeats` calls on one
(1, 3, S, S) tensor, host in and host out) and then a folder of `images` JPEG scenes to PNGs
(`Translator.translate_folder`); end to end / model only is taken within the round. PSNR: each setting's PNGs
against PyTorch fp32's, on [0, 255]. OpenVINO settings are skipped (named) where the package is missing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

SETTINGS = (  # label, source (run folder or .onnx file), precision, runtime
    ("PyTorch fp32", "run", "fp32", "auto"),
    ("PyTorch bf16", "run", "bf16", "auto"),
    ("ONNX Runtime fp32", "onnx", "fp32", "onnxruntime"),
    ("OpenVINO f32", "onnx", "fp32", "openvino"),
    ("OpenVINO bf16", "onnx", "bf16", "auto"),
)


def _write_scenes(folder: Path, count: int, size: int) -> None:
    """JPEG street scenes (as `i2i data synth scenes`): photo-like content, so decoding costs what it costs."""
    from PIL import Image

    from i2i_cli.benchmarks.openvino_cpu import scenes

    folder.mkdir()
    for i, scene in enumerate(scenes(count, size, seed=2)):
        array = ((scene[0].transpose(1, 2, 0) + 1) * 127.5).round().clip(0, 255).astype(np.uint8)
        Image.fromarray(array).save(folder / f"{i:04d}.jpg", quality=90)


def _translators(run: Path, onnx_file: Path) -> dict[str, Any]:
    from i2i_cli import Translator
    from i2i_cli.inference.openvino_runtime import openvino_installed

    chosen = {}
    for label, source, precision, runtime in SETTINGS:
        if "OpenVINO" in label and not openvino_installed():
            print(f"skipped {label}: pip install 'i2i[openvino]'")
            continue
        chosen[label] = Translator(run if source == "run" else onnx_file, device="cpu", precision=precision,
                                   runtime=runtime)
    return chosen


def _model_only(translator: Any, x: torch.Tensor, repeats: int) -> float:
    """Images/s: the median of `repeats` timed calls (after one untimed)."""
    translator(x)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        translator(x)
        rates.append(x.shape[0] / (time.perf_counter() - start))
    return statistics.median(rates)


def _end_to_end(translator: Any, src: Path, out: Path) -> float:
    images = len(list(src.iterdir()))
    start = time.perf_counter()
    translator.translate_folder(src, out)
    return images / (time.perf_counter() - start)


def _psnr(folder: Path, reference: Path) -> float:
    from i2i_cli.data.images import load_image

    values = []
    for file in sorted(reference.glob("*.png")):
        diff = load_image(folder / file.name).astype(np.float64) - load_image(file)
        mse = float(np.mean(diff**2))
        values.append(99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse))
    return min(values)


def measure(model: str, size: int, rounds: int, images: int, repeats: int) -> dict[str, Any]:
    from i2i_cli.benchmarks.openvino_cpu import _fresh_run
    from i2i_cli.export import export_onnx

    with tempfile.TemporaryDirectory(prefix="i2i-runtimes-") as tmp:
        root = Path(tmp)
        run = _fresh_run(model, size, root)
        export_onnx(run, root / "m.onnx")
        _write_scenes(root / "in", images, size)
        translators = _translators(run, root / "m.onnx")
        x = torch.rand(1, 3, size, size) * 2 - 1
        rows: dict[str, dict[str, list[float]]] = {k: {"model": [], "e2e": [], "ratio": []} for k in translators}
        labels = list(translators)
        for r in range(rounds):
            for label in labels[r % len(labels):] + labels[:r % len(labels)]:
                model_rate = _model_only(translators[label], x, repeats)
                e2e_rate = _end_to_end(translators[label], root / "in", root / f"out_{r}" / label)
                rows[label]["model"].append(model_rate)
                rows[label]["e2e"].append(e2e_rate)
                rows[label]["ratio"].append(e2e_rate / model_rate)
        reference = root / "out_0" / "PyTorch fp32"
        return {label: {**{k: [statistics.median(v), min(v), max(v)] for k, v in row.items()},
                        "precision_ran": translators[label].precision_ran, "device": translators[label].device,
                        "psnr_min_db": _psnr(root / "out_0" / label, reference)}
                for label, row in rows.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cyclegan")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = measure(args.model, args.size, args.rounds, args.images, args.repeats)
    fp32 = result["PyTorch fp32"]["e2e"][0]
    for label, row in result.items():
        model, e2e, ratio = row["model"], row["e2e"], row["ratio"]
        print(f"{label:18s} ran {row['precision_ran']:5s} model {model[0]:.3f} ({model[1]:.3f}-{model[2]:.3f}) img/s  "
              f"end to end {e2e[0]:.3f} ({e2e[1]:.3f}-{e2e[2]:.3f})  e2e/model {ratio[0]:.2f} ({ratio[1]:.2f}-"
              f"{ratio[2]:.2f})  / PyTorch fp32 e2e {e2e[0] / fp32:.2f}x  PSNR min {row['psnr_min_db']:.1f} dB")
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)}, "rows": result}, indent=1))


if __name__ == "__main__":
    main()
