"""ONNX export of a run's inference network, with embedded metadata and a verified ONNX Runtime parity check.

The exported graph is exactly `method.export_module(direction)`, the network `i2i translate` runs: input
`image` (N, 3, H, W) float in [-1, 1], output `output` of the same shape; batch, height and width are dynamic
unless --static-size is given. Heights and widths must be multiples of the `size_multiple` written in the
metadata (`i2i translate` pads and crops automatically).
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from i2i_cli import __version__
from i2i_cli.engine.checkpoint import load_for_inference
from i2i_cli.errors import ConfigError, I2IError
from i2i_cli.fsutil import atomic_path

TOLERANCE = {False: 1e-4, True: 1e-2}  # fp32, fp16


class ExportError(I2IError):
    pass


class ParityError(I2IError):
    exit_code = 1


@dataclass
class ExportResult:
    path: Path
    metadata: dict[str, str]
    max_diff: dict[str, float] = field(default_factory=dict)  # input kind -> max |onnx - torch|
    tolerance: float = 1e-4
    provider: str = "CPUExecutionProvider"


def onnx_providers() -> list[str]:
    """CUDA only when a CUDA device is present (asking for it otherwise prints a C++ error), then CPU."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    providers = []
    if "CUDAExecutionProvider" in available and torch.cuda.is_available():
        providers.append("CUDAExecutionProvider")
    providers.append("CPUExecutionProvider")
    return providers


class _Half(torch.nn.Module):
    """fp16 weights and compute, fp32 in and out (so callers feed the same tensors)."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net.half()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.half()).float()


def _metadata(loaded: Any, direction: str, fp16: bool) -> dict[str, str]:
    method = loaded.method
    return {
        "i2i_version": __version__,
        "method": method.name,
        "direction": direction,
        "domains": json.dumps(method.domains),
        "normalization": "[-1,1]",
        "size_multiple": str(method.size_multiple),
        "min_size": str(method.min_size),
        "precision": "fp16" if fp16 else "fp32",
        "step": str(loaded.step),
        "run_config": json.dumps(loaded.run_config.to_json()),
    }


def _real_input(loaded: Any, size: int) -> torch.Tensor | None:
    """A real training image from the run's dataset, if it is still there."""
    from i2i_cli.data.images import list_images, load_image

    root = Path(loaded.run_config.data.get("root", ""))
    if not root.is_dir():
        return None
    files = list_images(root)[:1]
    if not files:
        return None
    array = load_image(files[0])
    if loaded.run_config.data.get("layout") == "aligned":
        array = array[:, : array.shape[1] // 2]
    x = torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)[None].float().div(127.5).sub(1)
    return torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


def export_onnx(checkpoint: str | os.PathLike[str], out: str | os.PathLike[str], *, direction: str = "AtoB",
                opset: int = 17, fp16: bool = False, static_size: tuple[int, int] | None = None,
                overwrite: bool = False) -> ExportResult:
    """Export, check with onnx.checker, compare ONNX Runtime with PyTorch; raise ParityError past tolerance."""
    import onnx
    import onnxruntime as ort

    target = Path(out)
    if target.exists() and not overwrite:
        raise ExportError(f"{target} already exists: pass --overwrite to replace it")
    loaded = load_for_inference(checkpoint, device="cpu")
    method = loaded.method
    if method.takes_style_reference:
        raise ExportError(f"{method.name}: export of multi-domain style networks is not supported by this i2i version")
    if direction == "BtoA" and not method.two_sided:
        raise ConfigError(f"--direction BtoA: {method.name} translates one way only")
    net = method.export_module(direction=direction).eval()
    reference = net
    if fp16:
        import copy

        net = _Half(copy.deepcopy(net)).eval()
    multiple = method.size_multiple
    size = max(multiple, 64 - 64 % multiple or multiple)
    h, w = static_size or (size, size)
    if h % multiple or w % multiple:
        raise ConfigError(f"--static-size {h} {w}: must be multiples of {multiple} for this network")
    example = torch.rand(1, 3, h, w) * 2 - 1
    dynamic = None if static_size else {"image": {0: "batch", 2: "height", 3: "width"},
                                        "output": {0: "batch", 2: "height", 3: "width"}}
    metadata = _metadata(loaded, direction, fp16)
    with atomic_path(target, overwrite=overwrite) as tmp:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(net, (example,), str(tmp), dynamo=False, opset_version=opset,
                                  input_names=["image"], output_names=["output"], dynamic_axes=dynamic)
        except Exception as exc:  # noqa: BLE001 - the exporter raises many types; name the operator if it says
            message = str(exc).splitlines()[0][:300]
            raise ExportError(f"ONNX cannot express {method.name}'s network at opset {opset}: {message}") from exc
        model = onnx.load(str(tmp))
        for key, value in metadata.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.checker.check_model(model)
        onnx.save(model, str(tmp))
        providers = onnx_providers()
        session = ort.InferenceSession(str(tmp), providers=providers)
        result = ExportResult(target, metadata, tolerance=TOLERANCE[fp16], provider=session.get_providers()[0])
        shapes = [(1, 3, h, w)] if static_size else [(1, 3, h, w), (2, 3, h + multiple, w + 2 * multiple)]
        torch.manual_seed(0)
        inputs = {f"random {s[0]}x{s[2]}x{s[3]}": torch.rand(*s) * 2 - 1 for s in shapes}
        real = _real_input(loaded, h)
        if real is not None and (static_size is None or real.shape[-2:] == (h, w)):
            inputs["real image"] = real
        for name, x in inputs.items():
            with torch.no_grad():
                expected = reference(x).numpy()
            got = session.run(None, {"image": x.numpy()})[0]
            result.max_diff[name] = float(np.abs(got - expected).max())
        worst = max(result.max_diff.values())
        if worst > result.tolerance:
            raise ParityError(f"ONNX Runtime differs from PyTorch by {worst:.3g} (tolerance {result.tolerance:g}, "
                              f"{result.provider}); the file was not written")
    return result


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}
