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


def onnx_session(path: Path, device: str, runtime: str = "auto", precision: str = "auto"
                 ) -> tuple[Any, dict[str, str]]:
    """An .onnx file opened in ONNX Runtime or OpenVINO (`runtime`: inference/openvino_runtime.py), and its
    metadata. `precision`: auto or fp32 run the file as exported; bf16 runs an fp32 or int8 file's float
    layers in bf16, in OpenVINO on the CPU."""
    import onnxruntime as ort

    from i2i_cli.export import onnx_providers, read_metadata
    from i2i_cli.inference.openvino_runtime import OpenVinoSession, choose_runtime

    providers = onnx_providers(device)  # raises a one-line error for --device cuda without a GPU
    _check_onnx_precision(precision, runtime, providers, device)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such ONNX file (write one with `i2i export`)")
    try:
        metadata = read_metadata(path)
    except Exception as exc:  # noqa: BLE001 - a broken file can fail in many ways
        raise CheckpointError(f"{path}: not a readable ONNX model ({str(exc).splitlines()[0][:200]})") from exc
    exported = metadata.get("precision", "fp32")
    if precision == "bf16" and exported not in ("fp32", "int8"):
        raise ConfigError(f"--precision bf16: {path} is a {exported} export; bf16 runs fp32 and int8 files (export "
                          "again without --fp16, or translate with --precision auto)")
    try:
        if choose_runtime(runtime, metadata, providers, precision) == "openvino":
            try:
                return OpenVinoSession(path, "bf16" if precision == "bf16" else "fp32"), metadata
            except Exception:  # noqa: BLE001 - auto falls back to ONNX Runtime; asked for, OpenVINO says why
                if runtime == "openvino" or precision == "bf16":
                    raise
        session = ort.InferenceSession(str(path), providers=providers)
    except Exception as exc:  # noqa: BLE001 - a broken file can fail in many ways
        raise CheckpointError(f"{path}: not a readable ONNX model ({str(exc).splitlines()[0][:200]})") from exc
    return session, metadata


def _check_onnx_precision(precision: str, runtime: str, providers: list[str], device: str) -> None:
    """What an .onnx file can run in, and where, before the file is read: one line for each refusal."""
    from i2i_cli.extras import require_extra

    if precision not in ("auto", "fp32", "bf16"):
        raise ConfigError(f"--precision {precision}: an ONNX file runs in the precision it was exported in "
                          "(`i2i export --fp16` for half precision), or in bf16 on the CPU (OpenVINO)")
    on_cpu = providers[0] == "CPUExecutionProvider"
    if runtime == "openvino" or precision == "bf16":
        asked = "--runtime openvino" if runtime == "openvino" else "--precision bf16 on an .onnx file"
        if precision == "bf16" and runtime == "onnxruntime":
            raise ConfigError("--precision bf16: ONNX Runtime has no bf16 convolutions for the CPU; use "
                              "--runtime openvino (or auto)")
        require_extra("openvino", "openvino", asked)
        if not on_cpu:
            raise ConfigError(f"{asked} runs in OpenVINO on the CPU: pass --device cpu (asked: {device})")


def onnx_precision(metadata: dict[str, str], session: Any) -> tuple[str, str]:
    """What an opened .onnx file runs in (fp32, bf16, fp16 or int8) and the line that says why."""
    exported = metadata.get("precision", "fp32")
    float_layers = getattr(session, "float_precision", "fp32")  # OpenVINO's; ONNX Runtime runs the file as is
    if float_layers != "bf16":
        return exported, f"{exported} (the exported file's)"
    if exported == "int8":
        return exported, "int8 (the exported file's; its float layers in bf16, OpenVINO)"
    return "bf16", f"bf16 (OpenVINO, from the {exported} file)"


def onnx_relative_direction(metadata: dict[str, str], default: str) -> str:
    """An export's direction relative to its run's training (what --direction means): its metadata records the
    dataset's names (`direction`) and the training direction (`trained_direction`; files from before it was
    recorded hold the relative direction and no `trained_direction`)."""
    if "direction" not in metadata:
        return default
    trained = metadata.get("trained_direction", "AtoB")
    return "AtoB" if metadata["direction"] == trained else "BtoA"


class OnnxTranslator:
    """An exported .onnx file in ONNX Runtime (CUDA provider when a GPU is present, else CPU) or OpenVINO.

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
        self.precision_ran, self.precision_note = onnx_precision(self.metadata, session)
        self.runtime_note = self.device if self.device.startswith("OpenVINO") else f"ONNX Runtime on {self.device}"
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
        session, metadata = onnx_session(path, device, precision=precision)
        translator = OnnxTranslator(path, direction, device, session=session, metadata=metadata)
        return translator, "; ".join(n for n in (note, translator.note, translator.runtime_note) if n)
    loaded = load_for_inference(path, device="cpu")
    return TorchTranslator(loaded, direction, device, precision), note
