"""`i2i export --format triton OUT`: a Triton Inference Server model repository.

OUT/NAME/config.pbtxt + OUT/NAME/1/model.onnx (the same verified ONNX export as `i2i export`), platform
onnxruntime_onnx, max_batch_size > 0 (the batch dimension is implicit in the dims) and dynamic batching. The
i2i metadata a client needs (inputs in [-1, 1], padded to size_multiple) is repeated as config parameters."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from i2i_cli.errors import ConfigError
from i2i_cli.export import ExportResult, export_onnx
from i2i_cli.fsutil import atomic_write_text, check_output_folder

PARAMETERS = ("method", "direction", "size_multiple", "min_size", "i2i_version")


@dataclass
class TritonResult:
    repository: Path
    config: Path
    model: Path
    export: ExportResult


def _dims(shape: list[object]) -> str:
    return ", ".join(str(d) if isinstance(d, int) else "-1" for d in shape[1:])  # batch dim: implicit


def config_pbtxt(name: str, inputs: list[tuple[str, list[object]]], outputs: list[tuple[str, list[object]]],
                 max_batch: int, metadata: dict[str, str], queue_delay_us: int = 100) -> str:
    """The text of config.pbtxt (Triton's model configuration, protobuf text format)."""
    def tensors(kind: str, items: list[tuple[str, list[object]]]) -> list[str]:
        rows = [f'  {{ name: "{n}" data_type: TYPE_FP32 dims: [ {_dims(s)} ] }}' for n, s in items]
        return [f"{kind} [", ",\n".join(rows), "]"]

    params = [f'  {{ key: "{k}" value: {{ string_value: "{metadata[k]}" }} }}' for k in PARAMETERS if k in metadata]
    lines = [f'name: "{name}"', 'platform: "onnxruntime_onnx"', f"max_batch_size: {max_batch}",
             *tensors("input", inputs), *tensors("output", outputs),
             f"dynamic_batching {{ max_queue_delay_microseconds: {queue_delay_us} }}",
             'instance_group [ { kind: KIND_AUTO } ]', "parameters [", ",\n".join(params), "]"]
    return "\n".join(lines) + "\n"


def _refuse_multi_domain(checkpoint: str | os.PathLike[str]) -> None:
    from i2i_cli.engine.checkpoint import load_for_inference
    from i2i_cli.models.base import StyleSource

    method = load_for_inference(checkpoint, device="cpu").method
    if isinstance(method, StyleSource):
        raise ConfigError(f"{method.name} exports three graphs (generator, style encoder, mapping); Triton needs "
                          "one model per graph and an ensemble, which i2i does not write: serve it with `i2i serve`")


def export_triton(checkpoint: str | os.PathLike[str], out: str | os.PathLike[str], *, name: str | None = None,
                  direction: str = "AtoB", opset: int = 18, fp16: bool = False,
                  static_size: tuple[int, int] | None = None, max_batch: int = 8,
                  overwrite: bool = False) -> TritonResult:
    """Write OUT/NAME/{config.pbtxt, 1/model.onnx}; the ONNX file is verified against PyTorch first."""
    import onnx

    repository = Path(out)
    check_output_folder(repository, "--out")
    if max_batch < 1:
        raise ConfigError(f"--max-batch {max_batch}: Triton's dynamic batching needs 1 or more")
    if name is not None and not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ConfigError(f"--name {name}: use letters, digits, '_', '-' and '.' (it is a folder name)")
    model_dir = repository / (name or "translator")
    model = model_dir / "1" / "model.onnx"
    config = model_dir / "config.pbtxt"
    if config.exists() and not overwrite:
        raise ConfigError(f"{config} already exists: pass --overwrite to replace the model, or another --name")
    _refuse_multi_domain(checkpoint)
    model.parent.mkdir(parents=True, exist_ok=True)
    result = export_onnx(checkpoint, model, direction=direction, opset=opset, fp16=fp16, static_size=static_size,
                         overwrite=overwrite)
    graph = onnx.load(str(model), load_external_data=False).graph
    shapes = {v.name: [d.dim_value if d.HasField("dim_value") else d.dim_param
                       for d in v.type.tensor_type.shape.dim] for v in [*graph.input, *graph.output]}
    text = config_pbtxt(model_dir.name, [(i.name, shapes[i.name]) for i in graph.input],
                        [(o.name, shapes[o.name]) for o in graph.output], max_batch, result.metadata)
    atomic_write_text(config, text, overwrite=True)
    return TritonResult(repository, config, model, result)
