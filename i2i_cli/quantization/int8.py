"""int8 ONNX exports: ONNX Runtime static quantization (QDQ, per-channel int8 weights, uint8 activations)
calibrated on the run's own images, its quality against the fp32 export measured on held-out images.

A quantized translator can look fine on noise and fall apart on photos (a naive export calibrated on noise
gave 18.8 dB PSNR), so the figures come from real images: the source side of the run's test split (else val,
else train) or `--calibrate DIR`; every other image calibrates, the rest are held out. Below MIN_PSNR the
export is refused with the measured figures unless the caller allows a lossy one; the figures are written into
the model's metadata either way.

int8 buys speed with quality, so it must buy enough: ONNX Runtime runs some layers in float between dequantize
and quantize nodes (instance norms, transposed convolutions), and a pix2pix U-Net measured 0.79x fp32's speed in
int8 at 47 dB (docs/benchmarks.md). Both files are timed on a held-out image, interleaved after a warm-up; under
MIN_SPEEDUP the export is refused with the figures and the layers left in float, unless the caller lowers the
bar (a CPU with native bf16 runs `i2i translate --precision bf16` about 2x fp32 at ~48 dB). Where the openvino
package is installed, `i2i translate` runs int8 files in OpenVINO (inference/openvino_runtime.py), which folds
those pairs into int8 kernels: quality and speed are then measured there, against ONNX Runtime's fp32."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from i2i_cli.data.images import list_images, load_image
from i2i_cli.errors import ConfigError, DataError, I2IError
from i2i_cli.export import ExportError, ExportResult, export_onnx
from i2i_cli.fsutil import atomic_path

MIN_PSNR = 30.0  # dB against the fp32 export on held-out images; below it an int8 export needs allow_lossy
MIN_SPEEDUP = 2.0  # int8 over fp32 in ONNX Runtime on this CPU; below it an int8 export needs a lower min_speedup
MAX_IMAGES = 32  # calibration + held-out images read from a run's data
RUNTIME_NAMES = {"onnxruntime": "ONNX Runtime", "openvino": "OpenVINO"}
TIMING_ROUNDS = 7  # interleaved fp32 / int8 runs on one held-out image, after a warm-up run of each


class LossyExportError(I2IError):
    exit_code = 1


@dataclass
class Int8Report:
    psnr_db: float  # mean over held-out images, int8 vs fp32 ONNX Runtime outputs on [-1, 1]
    psnr_min_db: float
    lpips: float | None  # mean paired LPIPS (AlexNet) int8 vs fp32; None when its weights are not available
    calibration_images: int
    held_out_images: int
    source: str  # where the images came from
    size: int
    fp32_ms: float  # median ms per image in ONNX Runtime (CPU): TIMING_ROUNDS interleaved runs after a warm-up
    int8_ms: float
    float_ops: str = ""  # the heavy layers ONNX Runtime still runs in float, e.g. "11 InstanceNormalization"
    runtime: str = "onnxruntime"  # what `i2i translate` runs the file in (runtime auto): quality and int8_ms are its
    int8_ms_by_runtime: dict[str, float] = field(default_factory=dict)
    note: str = ""
    files: list[str] = field(default_factory=list)

    @property
    def speedup(self) -> float:
        return self.fp32_ms / self.int8_ms if self.int8_ms else 0.0

    def metadata(self) -> dict[str, str]:
        return {"precision": "int8", "int8_quality": json.dumps({**asdict(self), "speedup": self.speedup})}


def _resize_square(array: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    h, w = array.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = array[top : top + side, left : left + side]
    return np.asarray(Image.fromarray(crop).resize((size, size), Image.BICUBIC))


def run_images(run_config: Any, direction: str) -> tuple[list[np.ndarray], str]:
    """Source-side images of the run's data: its test split, else val, else train (the layout knows its files)."""
    from i2i_cli.data.layouts import detect_layout

    root = Path(run_config.data.get("root", "") or "/nonexistent")
    if not root.is_dir():
        raise DataError(f"{root}: the run's data is not here to calibrate int8 on; pass --calibrate DIR (images)")
    layout = detect_layout(root)
    split = next((s for s in ("test", "val", "train") if s in layout.splits), None)
    if split is None:
        raise DataError(f"{root}: no split to calibrate int8 on; pass --calibrate DIR (images)")
    trained = str(run_config.config.get("direction", "AtoB"))
    groups = layout.groups(split)
    files = groups.get("B" if direction != trained else "A") or next(iter(groups.values()), [])
    arrays = []
    for file in files[:MAX_IMAGES]:
        with contextlib.suppress(I2IError):
            arrays.append(layout.source_part(load_image(file), trained))
    return arrays, f"{root}/{split}"


def folder_images(folder: Path) -> tuple[list[np.ndarray], str]:
    arrays = []
    for file in list_images(folder)[:MAX_IMAGES]:
        with contextlib.suppress(I2IError):
            arrays.append(load_image(file))
    return arrays, str(folder)


def _batches(arrays: list[np.ndarray]) -> Iterator[dict[str, np.ndarray]]:
    for array in arrays:
        x = array.astype(np.float32).transpose(2, 0, 1)[None] / 127.5 - 1.0
        yield {"x": np.ascontiguousarray(x)}


def _quantize(fp32: Path, int8: Path, calibration: list[np.ndarray]) -> None:
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self, name: str) -> None:
            self.items = ({name: item["x"]} for item in _batches(calibration))

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.items, None)

    import onnx

    name = onnx.load(str(fp32), load_external_data=False).graph.input[0].name
    # the quantizer prints its progress and logs warnings on the root logger: the library prints nothing
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            _quantize_static(fp32, int8, Reader(name))
    finally:
        root.setLevel(level)


def _quantize_static(fp32: Path, int8: Path, reader: Any) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    # percentile calibration: min-max ranges are set by a few extreme activations and waste the 8 bits
    quantize_static(str(fp32), str(int8), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                    weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8,
                    calibrate_method=CalibrationMethod.Percentile,
                    extra_options={"CalibPercentile": 99.99, "ActivationSymmetric": False})


def _session(path: Path) -> Any:
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _outputs(session: Any, arrays: list[np.ndarray]) -> list[np.ndarray]:
    """Each image's output from an ONNX Runtime CPU session."""
    name = session.get_inputs()[0].name
    return [session.run(None, {name: feed["x"]})[0] for feed in _batches(arrays)]


def _median_ms(sessions: list[Any], image: np.ndarray, rounds: int = TIMING_ROUNDS) -> list[float]:
    """Median ms per run of each session on `image`: a warm-up run each, then `rounds` rounds taking the
    sessions in turn, so that a slow moment of a shared machine hits all of them."""
    feed = next(_batches([image]))["x"]
    times: list[list[float]] = [[] for _ in sessions]
    for round_ in range(rounds + 1):
        for session, spent in zip(sessions, times):
            start = time.perf_counter()
            session.run(None, {session.get_inputs()[0].name: feed})
            if round_:
                spent.append((time.perf_counter() - start) * 1000)
    return [statistics.median(spent) for spent in times]


HEAVY_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")


def float_ops(path: Path) -> str:
    """The int8 graph's heavy layers that stay in float: convolutions / matmuls whose weights are not
    dequantized int8, and the instance norms ONNX Runtime runs between dequantize and quantize nodes."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    dequantized = {out for node in graph.node if node.op_type == "DequantizeLinear" for out in node.output}
    counts: dict[str, int] = {}
    for node in graph.node:
        weight_in_float = node.op_type in HEAVY_OPS and len(node.input) > 1 and node.input[1] not in dequantized
        if weight_in_float or node.op_type == "InstanceNormalization":
            counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return ", ".join(f"{n} {op}" for op, n in sorted(counts.items()))


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(4.0 / mse)  # [-1, 1]: peak-to-peak 2


def _lpips(a: list[np.ndarray], b: list[np.ndarray]) -> tuple[float | None, str]:
    import torch

    from i2i_cli.evaluation.lpips_metric import build_lpips

    try:
        model, _ = build_lpips("alex")
    except I2IError as exc:
        return None, f"LPIPS not measured ({str(exc)[:120]})"
    with torch.no_grad():
        values = [float(model(torch.from_numpy(x), torch.from_numpy(y)).mean()) for x, y in zip(a, b)]
    return statistics.mean(values), ""


def _split(arrays: list[np.ndarray], source: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    if len(arrays) < 2:
        raise DataError(f"{source}: int8 needs at least 2 readable images (half calibrate, half are held out to "
                        "measure quality); pass --calibrate DIR with more")
    return arrays[0::2], arrays[1::2]


def export_int8(checkpoint: str | os.PathLike[str], out: str | os.PathLike[str], *, direction: str = "AtoB",
                calibrate: Path | None = None, allow_lossy: bool = False, overwrite: bool = False,
                opset: int = 18, min_speedup: float | None = None) -> tuple[ExportResult, Int8Report]:
    """Export fp32, quantize to int8 on calibration images, measure int8 vs fp32 on held-out images; write
    `out` only if PSNR >= MIN_PSNR (or `allow_lossy`) and int8 runs at least `min_speedup` (default MIN_SPEEDUP)
    times fp32's speed, else LossyExportError with the figures and nothing written."""
    from i2i_cli.engine.checkpoint import load_for_inference

    target = Path(out)
    if target.exists() and not overwrite:
        raise ExportError(f"{target} already exists: pass --overwrite to replace it")
    loaded = load_for_inference(checkpoint, device="cpu")
    size = int(loaded.run_config.config.get("size", 256) or 256)
    size -= size % loaded.method.size_multiple
    arrays, source = folder_images(calibrate) if calibrate else run_images(loaded.run_config, direction)
    calibration, held_out = _split([_resize_square(a, size) for a in arrays], source)
    with tempfile.TemporaryDirectory(prefix="i2i-int8-") as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        result = export_onnx(checkpoint, fp32, direction=direction, opset=opset)
        if len(result.files) > 1:
            raise ConfigError(f"--precision int8: {result.metadata['method']} exports several graphs (styles); "
                              "int8 covers single image-to-image generators")
        int8 = Path(tmp) / "int8.onnx"
        _quantize(fp32, int8, calibration)
        report = _measure(fp32, int8, held_out, len(calibration), source, size)
        report.files = [str(target)]
        _check(report, allow_lossy, MIN_SPEEDUP if min_speedup is None else min_speedup)
        _write(int8, target, {**result.metadata, **report.metadata()}, overwrite)
    result.path, result.files = target, [target]
    result.metadata.update(report.metadata())
    return result, report


def _measure(fp32: Path, int8: Path, held_out: list[np.ndarray], calibrated: int, source: str,
             size: int) -> Int8Report:
    """Quality (PSNR, LPIPS) on every held-out image and speed on the first: the fp32 file in ONNX Runtime, the
    int8 file in each runtime installed; quality in the one `i2i translate` picks for it (OpenVINO if installed)."""
    from i2i_cli.inference.openvino_runtime import OpenVinoSession, choose_runtime

    reference_session = _session(fp32)
    int8_sessions: dict[str, Any] = {"onnxruntime": _session(int8)}
    note = ""
    if choose_runtime("auto", {"precision": "int8"}, ["CPUExecutionProvider"]) == "openvino":  # translate's rule
        try:
            int8_sessions["openvino"] = OpenVinoSession(int8)
        except Exception as exc:  # noqa: BLE001 - translate's `auto` falls back to ONNX Runtime the same way
            note = f"OpenVINO could not compile the int8 file ({str(exc).splitlines()[0][:120]}): measured in ONNX Runtime"
    runtime = "openvino" if "openvino" in int8_sessions else "onnxruntime"
    reference, quantized = _outputs(reference_session, held_out), _outputs(int8_sessions[runtime], held_out)
    psnrs = [_psnr(a, b) for a, b in zip(quantized, reference)]
    lpips, lpips_note = _lpips(quantized, reference)
    note = "; ".join(n for n in (note, lpips_note) if n)
    fp32_ms, *int8_ms = _median_ms([reference_session, *int8_sessions.values()], held_out[0])
    by_runtime = dict(zip(int8_sessions, int8_ms))
    return Int8Report(statistics.mean(psnrs), min(psnrs), lpips, calibrated, len(held_out), source, size, fp32_ms,
                      by_runtime[runtime], float_ops(int8), runtime, by_runtime, note)


def _check(report: Int8Report, allow_lossy: bool, min_speedup: float) -> None:
    """Refuses (LossyExportError, the figures in one line) an int8 file that loses too much or gains too little."""
    figures = (f"{report.psnr_db:.1f} dB PSNR against fp32 on {report.held_out_images} held-out images of "
               f"{report.source}; {report.speedup:.2f}x fp32's speed on this CPU ({report.int8_ms:.1f} ms in "
               f"{RUNTIME_NAMES[report.runtime]} against {report.fp32_ms:.1f} in ONNX Runtime fp32 per {report.size} px "
               f"image, median of {TIMING_ROUNDS})")
    if report.psnr_db < MIN_PSNR and not allow_lossy:
        raise LossyExportError(f"int8 export refused: {figures}; under {MIN_PSNR:g} dB: keep --precision fp32, or "
                               "pass --allow-lossy to write it anyway")
    if report.speedup < min_speedup:
        in_float = f"; in float in ONNX Runtime: {report.float_ops}" if report.float_ops else ""
        openvino = "" if report.runtime == "openvino" else " (or pip install openvino: it runs int8 files faster)"
        raise LossyExportError(
            f"int8 export refused: {figures}{in_float}; under {min_speedup:g}x it is not worth its loss: keep "
            "--precision fp32 (or `i2i translate --precision bf16` on a CPU with native bf16)" + openvino +
            ", or pass --min-speedup 0 to write it anyway")


def _write(source: Path, target: Path, metadata: dict[str, str], overwrite: bool) -> None:
    import onnx

    model = onnx.load(str(source))
    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    with atomic_path(target, overwrite=overwrite) as tmp:
        onnx.save(model, str(tmp))
