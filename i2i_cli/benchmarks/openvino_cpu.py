"""Recording script for docs/benchmarks.md "OpenVINO against ONNX Runtime and PyTorch on this CPU" (not run by tests).

    python -m i2i_cli.benchmarks.openvino_cpu --model cyclegan --size 256 --rounds 6 --int8
    python -m i2i_cli.benchmarks.openvino_cpu --model pix2pix --size 256 --rounds 6 --int8
    python -m i2i_cli.benchmarks.openvino_cpu --model cyclegan --size 1024 --rounds 5 --warmup 1 --held-out 1

One process: a fresh-weights run of the method's generator (cyclegan: ResNet-9; pix2pix: the U-Net, unet_256 at
256 px) exported with `export_onnx` (i2i's path), then batch 1 of size x size timed in PyTorch (fp32, bf16
autocast), ONNX Runtime (fp32; int8 QDQ as `i2i export --precision int8` with --int8) and OpenVINO (the same ONNX
file reshaped static, INFERENCE_PRECISION_HINT f32 / bf16, 2 threads, LATENCY; int8 from nncf.quantize with
--int8). Each runtime is warmed up twice, then every round times each once in a rotated order (a slow minute hits
all of them); a row is the median ms with min-max. PSNR: each output against PyTorch fp32 on synthetic scenes
(i2i_cli.data.synth) held out from the int8 calibration images. Fresh weights: int8 PSNR says little about a
trained model (speed only). OpenVINO and nncf are not i2i dependencies: `pip install openvino nncf`."""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

Runner = Callable[[np.ndarray], np.ndarray]  # (1, 3, H, W) float32 in [-1, 1] -> same shape
THREADS = 2


def _import_openvino() -> Any:
    try:
        import openvino
    except ImportError as error:
        raise SystemExit(f"OpenVINO is missing ({error}): pip install openvino") from None
    return openvino


def _fresh_run(model: str, size: int, root: Path) -> Path:
    """A run folder with freshly initialised weights (the speed does not depend on them)."""
    from i2i_cli.engine.checkpoint import RunConfig, save_checkpoint, write_run_config
    from i2i_cli.models import registry

    cls = registry.method_class(model)
    method = cls(cls.config_class(size=size))
    run = root / "run"
    run.mkdir()
    config = RunConfig(model, method.config.to_dict(), method.domains)
    write_run_config(run, config)
    save_checkpoint(run, config, 0, method.saved_state_dict(), None, None)
    return run


def scenes(count: int, size: int, seed: int = 0) -> list[np.ndarray]:
    """Synthetic street scenes (as `i2i data synth scenes`), each (1, 3, size, size) float32 in [-1, 1]."""
    from i2i_cli.data.synth import draw_scene, render_photo

    rng = np.random.default_rng(seed)
    images = []
    for _ in range(count):
        photo = render_photo(draw_scene(size, rng), "day", rng)
        x = photo.astype(np.float32).transpose(2, 0, 1)[None] / 127.5 - 1.0
        images.append(np.ascontiguousarray(x))
    return images


def torch_runners(run: Path) -> dict[str, Runner]:
    from i2i_cli.engine.checkpoint import load_for_inference
    from i2i_cli.inference import TorchTranslator

    loaded = load_for_inference(run)
    runners = {}
    for precision in ("fp32", "bf16"):
        translator = TorchTranslator(loaded, device="cpu", precision=precision)
        runners[f"PyTorch {precision}"] = lambda x, t=translator: t(torch.from_numpy(x)).numpy()
    return runners


def ort_runner(onnx_path: Path) -> Runner:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


def openvino_runner(model: Any, hint: str | None) -> Runner:
    """An OpenVINO CPU infer request; hint None leaves the plugin's default inference precision."""
    core = _import_openvino().Core()
    config: dict[str, Any] = {"INFERENCE_NUM_THREADS": THREADS, "PERFORMANCE_HINT": "LATENCY"}
    if hint:
        config["INFERENCE_PRECISION_HINT"] = hint
    request = core.compile_model(model, "CPU", config).create_infer_request()

    def run(x: np.ndarray) -> np.ndarray:
        request.infer({0: x})
        return request.get_output_tensor(0).data.copy()

    return run


def openvino_model(onnx_path: Path, size: int) -> Any:
    model = _import_openvino().Core().read_model(str(onnx_path))
    model.reshape({model.inputs[0].any_name: [1, 3, size, size]})  # static: batch 1, this size
    return model


def nncf_int8(model: Any, calibration: list[np.ndarray]) -> Any:
    try:
        import nncf
    except ImportError as error:
        raise SystemExit(f"nncf is missing ({error}): pip install nncf") from None
    return nncf.quantize(model, nncf.Dataset(calibration), subset_size=len(calibration))


def ort_int8(onnx_path: Path, calibration: list[np.ndarray]) -> Path:
    """The same QDQ quantization as `i2i export --precision int8` (percentile calibration, per-channel)."""
    from i2i_cli.quantization.int8 import _quantize

    target = onnx_path.with_name(onnx_path.stem + "_int8.onnx")
    arrays = [((x[0].transpose(1, 2, 0) + 1) * 127.5).round().astype(np.uint8) for x in calibration]
    _quantize(onnx_path, target, arrays)
    return target


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else min(99.0, 10 * np.log10(4.0 / mse))  # [-1, 1]: peak-to-peak 2; 99 = identical


def time_interleaved(runners: dict[str, Runner], x: np.ndarray, rounds: int, warmup: int = 2) -> dict[str, list[float]]:
    """ms per call of each runner: `warmup` calls each, then `rounds` rounds in a rotated order."""
    for run in runners.values():
        for _ in range(warmup):
            run(x)
    ms: dict[str, list[float]] = {name: [] for name in runners}
    names = list(runners)
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            start = time.perf_counter()
            runners[name](x)
            ms[name].append((time.perf_counter() - start) * 1000)
        print(f"round {r}: " + ", ".join(f"{k} {v[-1]:.0f}" for k, v in ms.items()), flush=True)
    return ms


def quality(runners: dict[str, Runner], images: list[np.ndarray]) -> dict[str, tuple[float, float]]:
    """Mean and min PSNR (dB) of each runner's output against PyTorch fp32 over the held-out images."""
    reference = [runners["PyTorch fp32"](x) for x in images]
    scores = {}
    for name, run in runners.items():
        values = [psnr(run(x), ref) for x, ref in zip(images, reference)]
        scores[name] = (statistics.mean(values), min(values))
    return scores


def run_scenes(run: Path) -> tuple[list[np.ndarray], list[np.ndarray], int]:
    """A trained run's own images, split as `i2i export --precision int8` splits them (calibration, held out)."""
    from i2i_cli.engine.checkpoint import load_for_inference
    from i2i_cli.quantization.int8 import _resize_square, _split, run_images

    loaded = load_for_inference(run, device="cpu")
    size = int(loaded.run_config.config.get("size", 256))
    arrays, source = run_images(loaded.run_config, "AtoB")
    calibration, held_out = _split([_resize_square(a, size) for a in arrays], source)
    as_input = [np.ascontiguousarray(a.astype(np.float32).transpose(2, 0, 1)[None] / 127.5 - 1.0)
                for a in calibration + held_out]
    return as_input[: len(calibration)], as_input[len(calibration):], size


def build(run: Path, size: int, root: Path, int8: bool, calibration: list[np.ndarray]) -> dict[str, Runner]:
    from i2i_cli.export import export_onnx

    onnx_path = root / "m.onnx"
    export_onnx(run, onnx_path)
    runners = {**torch_runners(run), "ONNX Runtime fp32": ort_runner(onnx_path)}
    ov_model = openvino_model(onnx_path, size)
    runners["OpenVINO f32"] = openvino_runner(ov_model, "f32")
    runners["OpenVINO bf16"] = openvino_runner(ov_model, "bf16")
    if int8:
        runners["ONNX Runtime int8"] = ort_runner(ort_int8(onnx_path, calibration))
        quantized = nncf_int8(ov_model, calibration)
        runners["OpenVINO int8 (rest f32)"] = openvino_runner(quantized, "f32")
        runners["OpenVINO int8 (rest bf16)"] = openvino_runner(quantized, "bf16")
    return runners


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="cyclegan")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--int8", action="store_true", help="also nncf / ONNX Runtime int8 (16 calibration scenes)")
    parser.add_argument("--held-out", type=int, default=4, help="scenes for the PSNR")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls of each runtime first")
    parser.add_argument("--checkpoint", type=Path, help="a trained run (its size, its own test images) instead of "
                        "fresh weights and synthetic scenes")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    openvino = _import_openvino()
    torch.set_num_threads(THREADS)
    with tempfile.TemporaryDirectory(prefix="i2i-ov-") as tmp:
        if args.checkpoint:
            calibration, held_out, args.size = run_scenes(args.checkpoint)
            run = args.checkpoint
        else:
            calibration = scenes(16, args.size) if args.int8 else []
            held_out = scenes(args.held_out, args.size, seed=1)
            run = _fresh_run(args.model, args.size, Path(tmp))
        runners = build(run, args.size, Path(tmp), args.int8, calibration)
        ms = time_interleaved(runners, held_out[0], args.rounds, args.warmup)
        scores = quality(runners, held_out)
    versions = {"openvino": openvino.__version__, "torch": torch.__version__}
    for package in ("onnxruntime", "nncf"):
        try:
            versions[package] = __import__(package).__version__
        except ImportError:
            pass
    fp32 = statistics.median(ms["PyTorch fp32"])
    print(json.dumps(versions))
    print(f"{args.model} {args.size} px, batch 1, {THREADS} threads, {args.rounds} rounds")
    rows = []
    for name, values in ms.items():
        median = statistics.median(values)
        rows.append({"runtime": name, "median_ms": median, "min_ms": min(values), "max_ms": max(values),
                     "speedup_vs_torch_fp32": fp32 / median, "psnr_db": scores[name][0], "psnr_min_db": scores[name][1]})
        print(f"| {name} | {median:.0f} ({min(values):.0f}-{max(values):.0f}) | {fp32 / median:.2f}x | "
              f"{scores[name][0]:.1f} (min {scores[name][1]:.1f}) |")
    if args.json:
        args.json.write_text(json.dumps({"model": args.model, "size": args.size, "rounds": args.rounds,
                                         "versions": versions, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
