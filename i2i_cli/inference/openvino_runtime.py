"""OpenVINO for exported .onnx files on the CPU: the same file, a faster runtime for int8 and for bf16.

ONNX Runtime runs an int8 (QDQ) export's instance norms in float between dequantize and quantize nodes, and
a trained pix2pix U-Net ran slower in int8 than in fp32 there (0.83x); OpenVINO folds the same file's QDQ pairs
into int8 kernels: 2.7x ONNX Runtime's fp32 at the same PSNR on this project's AVX-512 CPU (docs/benchmarks.md,
"OpenVINO against ONNX Runtime"). OpenVINO reads the .onnx file itself, metadata and all, so nothing is
exported twice. `runtime auto` picks it for int8 files on the CPU when the openvino package is installed, and
for `precision bf16`: ONNX Runtime has no bf16 convolutions for the CPU, and OpenVINO runs an fp32 file's
layers in bf16 on CPUs that have it natively (avx512_bf16, AMX) at 2.4-2.6x ONNX Runtime's fp32 on a ResNet-9,
43-44 dB from fp32 (docs/benchmarks.md)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

RUNTIMES = ("auto", "onnxruntime", "openvino")
MAX_SHAPES = 8  # input shapes compiled statically per file; the rest run the dynamic model


@dataclass
class RuntimeInput:
    """What the translators read of an input: onnxruntime.NodeArg's name and shape (None: dynamic)."""

    name: str
    shape: list[int | None]


def openvino_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


def choose_runtime(runtime: str, metadata: dict[str, str], providers: list[str], precision: str = "auto") -> str:
    """`auto`: OpenVINO on the CPU when it is installed, for an int8 file or for `precision bf16`; ONNX Runtime
    otherwise."""
    if runtime != "auto":
        return runtime
    on_cpu = providers[0] == "CPUExecutionProvider"
    wanted = metadata.get("precision") == "int8" or precision == "bf16"
    return "openvino" if on_cpu and wanted and openvino_installed() else "onnxruntime"


def native_bf16(core: Any = None) -> bool:
    """Whether OpenVINO's CPU plugin runs bf16 natively here (it runs the bf16 hint in f32 where it does not)."""
    if core is None:
        import openvino as ov

        core = ov.Core()
    return "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")


class OpenVinoSession:
    """An .onnx file compiled by OpenVINO for the CPU, behind the part of onnxruntime.InferenceSession's
    interface the translators use (get_inputs, run, get_providers). Not thread-safe: one request object, as
    each translator runs one batch at a time. `precision` bf16 runs the float layers in bf16 where the CPU has
    it natively (`float_precision` says what runs); otherwise they run in f32, as the file was exported."""

    def __init__(self, path: Path, precision: str = "fp32") -> None:
        import openvino as ov

        self.core, self.path = ov.Core(), path
        self.float_precision = "bf16" if precision == "bf16" and native_bf16(self.core) else "fp32"
        self.model = self.core.read_model(str(path))
        self.inputs = [RuntimeInput(port.any_name, [d.get_length() if d.is_static else None
                                                    for d in port.get_partial_shape()]) for port in self.model.inputs]
        self.by_shape: dict[tuple[tuple[int, ...], ...], tuple[Any, Any]] = {}
        self.dynamic: tuple[Any, Any] | None = None  # compiled on first need: most files only meet a few sizes

    def _compile(self, model: Any) -> tuple[Any, Any]:
        # always a hint: OpenVINO's CPU default may pick bf16 where the CPU has it, and an fp32 file must give
        # fp32's outputs unless bf16 was asked for (int8 layers run int8 whatever the hint)
        hint = "bf16" if self.float_precision == "bf16" else "f32"
        compiled = self.core.compile_model(model, "CPU", {"PERFORMANCE_HINT": "LATENCY",
                                                          "INFERENCE_PRECISION_HINT": hint})
        return compiled, compiled.create_infer_request()

    def _for_shapes(self, feed: dict[str, np.ndarray]) -> tuple[Any, Any]:
        """A model compiled for these input shapes: static shapes ran a 128 px U-Net 1.5x faster than the
        dynamic model here; past MAX_SHAPES sizes (a folder of mixed sizes) new ones run the dynamic model."""
        key = tuple(tuple(feed[i.name].shape) for i in self.inputs)
        if key not in self.by_shape:
            if len(self.by_shape) >= MAX_SHAPES:
                self.dynamic = self.dynamic or self._compile(self.model)
                return self.dynamic
            model = self.model.clone()
            model.reshape({i.name: list(shape) for i, shape in zip(self.inputs, key)})
            self.by_shape[key] = self._compile(model)
        return self.by_shape[key]

    def get_inputs(self) -> list[RuntimeInput]:
        return self.inputs

    def get_providers(self) -> list[str]:
        return ["OpenVINO (CPU)"]

    def run(self, output_names: Any, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        compiled, request = self._for_shapes(feed)
        result = request.infer(feed)
        # copies: the request reuses its output buffers on the next call
        return [np.array(result[port], copy=True) for port in compiled.outputs]
