"""Translators: a run's inference network in PyTorch, or an exported .onnx file in ONNX Runtime.

The PyTorch translator is the method's pure inference network (`export_module`), so what `i2i translate` runs
is exactly what `i2i export` writes to ONNX. Every translator maps float (N, 3, H, W) in [-1, 1] to the same shape."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from i2i_cli.engine.checkpoint import LoadedModel, caption_option, load_for_inference
from i2i_cli.engine.device import resolve_device, resolve_precision
from i2i_cli.errors import CheckpointError, ConfigError
from i2i_cli.inference.checkpoints import resolve_checkpoint
from i2i_cli.models.base import AttentionMasks, StyleSource


class TorchTranslator:
    """A run's inference network on a device: float (N, 3, H, W) in [-1, 1] -> same shape."""

    def __init__(self, loaded: LoadedModel, direction: str = "AtoB", device: str = "auto", precision: str = "auto",
                 caption: str | None = None) -> None:
        method = loaded.method
        if isinstance(method, StyleSource):
            raise ConfigError(f"{loaded.run_dir} is a multi-domain {method.name} run: pass --style-ref or --domain")
        if direction == "BtoA" and not method.two_sided:
            raise ConfigError(f"--direction BtoA: {method.name} translates one way only (it was trained "
                              f"{loaded.run_config.config.get('direction', 'AtoB')}); use AtoB")
        usable = loaded.run_config.train.get("directions") or []
        if usable and direction not in usable:
            raise ConfigError(f"--direction {direction}: {loaded.run_dir} was imported with {', '.join(usable)} only")
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.loaded = loaded
        self.net = method.export_module(direction=direction, **caption_option(method, caption))
        self.net = self.net.to(self.device).eval()
        self.mask_net = (method.mask_module(direction).to(self.device).eval() if isinstance(method, AttentionMasks)
                         else None)
        self.size_multiple = method.size_multiple
        self.min_size = method.min_size

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with self.precision.autocast():
            return self.net(x.to(self.device)).float()


def onnx_session(path: Path, device: str, runtime: str = "auto") -> tuple[Any, dict[str, str]]:
    """An .onnx file opened in ONNX Runtime or OpenVINO (`runtime`: inference/openvino_runtime.py), and its
    metadata."""
    import onnxruntime as ort

    from i2i_cli.export import onnx_providers, read_metadata
    from i2i_cli.extras import require_extra
    from i2i_cli.inference.openvino_runtime import OpenVinoSession, choose_runtime

    providers = onnx_providers(device)  # raises a one-line error for --device cuda without a GPU
    if not path.is_file():
        raise CheckpointError(f"{path}: no such ONNX file (write one with `i2i export`)")
    if runtime == "openvino":
        require_extra("openvino", "openvino", "--runtime openvino")
        if providers[0] != "CPUExecutionProvider":
            raise ConfigError(f"--runtime openvino runs on the CPU: pass --device cpu (asked: {device})")
    try:
        metadata = read_metadata(path)
        if choose_runtime(runtime, metadata, providers) == "openvino":
            try:
                return OpenVinoSession(path), metadata
            except Exception:  # noqa: BLE001 - auto falls back to ONNX Runtime; an explicit openvino says why
                if runtime == "openvino":
                    raise
        session = ort.InferenceSession(str(path), providers=providers)
    except Exception as exc:  # noqa: BLE001 - a broken file can fail in many ways
        raise CheckpointError(f"{path}: not a readable ONNX model ({str(exc).splitlines()[0][:200]})") from exc
    return session, metadata


def onnx_relative_direction(metadata: dict[str, str], default: str) -> str:
    """An export's direction relative to its run's training (what --direction means): its metadata records the
    dataset's names (`direction`) and the training direction (`trained_direction`; files from before it was
    recorded hold the relative direction and no `trained_direction`)."""
    if "direction" not in metadata:
        return default
    trained = metadata.get("trained_direction", "AtoB")
    return "AtoB" if metadata["direction"] == trained else "BtoA"


class OnnxTranslator:
    """An exported .onnx file in ONNX Runtime (CUDA provider when a GPU is present, else CPU).

    A multi-domain generator (inputs image and style) runs with one fixed style code, given as `style`."""

    def __init__(self, path: Path, direction: str = "AtoB", device: str = "auto", style: np.ndarray | None = None,
                 session: Any = None, metadata: dict[str, str] | None = None) -> None:
        if session is None:
            session, metadata = onnx_session(Path(path), device)
        self.session, self.metadata = session, metadata or {}
        inputs = session.get_inputs()
        image = inputs[0]
        expected = 2 if style is not None else 1
        if len(inputs) != expected or (isinstance(image.shape[1], int) and image.shape[1] != 3):
            if len(inputs) == 2 and style is None and "companions" in self.metadata:
                raise ConfigError(f"{path} is a multi-domain {self.metadata.get('method', '')} generator: pass "
                                  "--style-ref or --domain")
            raise CheckpointError(f"{path}: expected one input of 3-channel images, found "
                                  f"{[(i.name, i.shape) for i in inputs]}")
        self.input_name = image.name
        self.style_name = inputs[1].name if style is not None else ""
        self.style = style
        exported = onnx_relative_direction(self.metadata, direction)
        if exported != direction:
            raise ConfigError(f"{path} translates {self.metadata['direction']} of its dataset (the run was trained "
                              f"{self.metadata.get('trained_direction', 'AtoB')}), the reverse of --direction "
                              f"{direction}: translate with --direction {exported}, or export again with --direction {direction}")
        self.size_multiple = int(self.metadata.get("size_multiple", 1))
        self.min_size = int(self.metadata.get("min_size", 1))
        dims = image.shape[2:4]
        self.static_size = (dims[0], dims[1]) if len(dims) == 2 and all(isinstance(d, int) for d in dims) else None
        self.device = session.get_providers()[0]
        self.note = "" if "i2i_version" in self.metadata else (
            f"{path} has no i2i metadata: assuming inputs in [-1, 1] and any size (multiple 1)")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        feed = {self.input_name: x.cpu().numpy().astype(np.float32)}
        if self.style is not None:
            feed[self.style_name] = np.repeat(self.style, x.shape[0], axis=0)
        return torch.from_numpy(self.session.run(None, feed)[0])


def load_translator(checkpoint: str | os.PathLike[str] | None, direction: str = "AtoB", device: str = "auto",
                    precision: str = "auto") -> tuple[Any, str]:
    """A translator for a run folder (PyTorch) or an .onnx file (ONNX Runtime), and a note to show."""
    path, note = resolve_checkpoint(checkpoint)
    if path.suffix == ".onnx":
        if precision not in ("auto", "fp32"):
            raise ConfigError(f"--precision {precision}: an ONNX file runs in the precision it was exported in "
                              "(`i2i export --fp16` for half precision)")
        translator = OnnxTranslator(path, direction, device)
        return translator, "; ".join(n for n in (note, translator.note, f"ONNX Runtime on {translator.device}") if n)
    loaded = load_for_inference(path, device="cpu")
    return TorchTranslator(loaded, direction, device, precision), note
