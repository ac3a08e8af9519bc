"""ONNX export of a run's inference network, with embedded metadata and a verified ONNX Runtime parity check.

The exported graph is exactly `method.export_module(direction)`, the network `i2i translate` runs: input
`image` (N, 3, H, W) float in [-1, 1], output `output` of the same shape; batch, height and width are dynamic
unless --static-size is given. Heights and widths must be multiples of the `size_multiple` written in the
metadata (`i2i translate` pads and crops automatically).

Multi-domain methods (StarGAN v2) export three files so that reference- and latent-guided translation both run
without PyTorch: OUT (the generator: `image`, `style` -> `output`), OUT's stem + `.style_encoder.onnx`
(`reference` at the training size, `domain` int64 -> `style`) and OUT's stem + `.mapping.onnx` (`z`, `domain`
-> `style`). The generator's metadata names the other two (`companions`).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from i2i_cli import __version__
from i2i_cli.data.images import to_tensor
from i2i_cli.engine.checkpoint import LoadedModel, caption_option, load_for_inference
from i2i_cli.errors import ConfigError, I2IError
from i2i_cli.fsutil import TEMP_MARKER, atomic_path, remove_stale_temporaries
from i2i_cli.models.base import StyleSource

TOLERANCE = {False: 1e-4, True: 1e-2}  # fp32, fp16
DEFAULT_OPSET = 18  # the lowest opset the dynamo exporter writes natively
COMPANIONS = {"style_encoder": ".style_encoder.onnx", "mapping": ".mapping.onnx"}


class ExportError(I2IError):
    pass


class ParityError(I2IError):
    exit_code = 1


@dataclass
class ExportResult:
    path: Path
    metadata: dict[str, str]
    max_diff: dict[str, float] = field(default_factory=dict)  # "graph: input kind" -> max |onnx - torch|
    tolerance: float = 1e-4
    provider: str = "CPUExecutionProvider"
    files: list[Path] = field(default_factory=list)  # every file written (StarGAN v2: three)


@dataclass
class _Graph:
    """One network to export: its module, example inputs, names, dynamic axes and the inputs to compare on."""

    name: str
    module: torch.nn.Module
    example: tuple[torch.Tensor, ...]
    input_names: list[str]
    dynamic: list[dict[int, Any]]
    checks: dict[str, tuple[torch.Tensor, ...]]
    reference: torch.nn.Module | None = None  # what the ONNX graph must equal (default: module itself)


def onnx_providers(device: str = "auto") -> list[str]:
    """ONNX Runtime providers for --device: CUDA only when a CUDA device is present (asking for it otherwise
    prints an alarming C++ error before falling back), then CPU."""
    import onnxruntime as ort

    cuda_ok = "CUDAExecutionProvider" in ort.get_available_providers() and torch.cuda.is_available()
    if device.startswith("cuda") and not cuda_ok:
        raise ConfigError(f"--device {device}: no CUDA device or no CUDA-enabled onnxruntime here; use --device cpu")
    if device == "cpu" or not cuda_ok:
        return ["CPUExecutionProvider"]
    return ["CUDAExecutionProvider", "CPUExecutionProvider"]


class _Half(torch.nn.Module):
    """fp16 weights and compute, fp32 in and out (so callers feed the same tensors); integer inputs untouched."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net.half()

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.net(*(t.half() if t.is_floating_point() else t for t in inputs)).float()


def companion_paths(main: Path) -> dict[str, Path]:
    """Where a multi-domain export's style encoder and mapping network live, next to the generator file."""
    stem = main.name[: -len(".onnx")] if main.name.endswith(".onnx") else main.name
    return {kind: main.with_name(stem + suffix) for kind, suffix in COMPANIONS.items()}


def dataset_direction(trained: str, direction: str) -> str:
    """What an export of `--direction direction` translates, in the dataset's own A/B names. `--direction` is
    relative to training (AtoB: the way the run was trained, BtoA: the reverse), and a run trained BtoA has
    its source on the dataset's B side, so its default export translates B to A."""
    return trained if direction == "AtoB" else ("AtoB" if trained == "BtoA" else "BtoA")


def _metadata(loaded: LoadedModel, direction: str, fp16: bool, opset: int, extra: dict[str, str]) -> dict[str, str]:
    method = loaded.method
    trained = str(loaded.run_config.config.get("direction", "AtoB"))
    return {
        "i2i_version": __version__,
        "method": method.name,
        "direction": dataset_direction(trained, direction),
        "trained_direction": trained,
        "domains": json.dumps(method.domains),
        "normalization": "[-1,1]",
        "size_multiple": str(method.export_size_multiple),
        "min_size": str(method.min_size),
        "precision": "fp16" if fp16 else "fp32",
        "opset": str(opset),
        "exporter": "torch.onnx (dynamo)",
        "step": str(loaded.step),
        "run_config": json.dumps(loaded.run_config.to_json()),
        **extra,
    }


def _real_input(loaded: LoadedModel, size: tuple[int, int], direction: str = "AtoB") -> torch.Tensor | None:
    """A real input image from the run's training data, if it is still there, resized to `size`: the source
    side of the export's direction. None when there is none readable (the random checks still run)."""
    from i2i_cli.data.layouts import detect_layout

    root = Path(loaded.run_config.data.get("root", "") or "/nonexistent")
    if not root.is_dir():
        return None
    try:
        layout = detect_layout(root)
    except I2IError:
        return None
    array = layout.parity_source(direction, loaded.run_config.config.get("direction", "AtoB"))
    if array is None:
        return None
    x = to_tensor(array)[None]
    return torch.nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False)


def _images(shapes: list[tuple[int, int, int, int]]) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {f"random {n}x{h}x{w}": torch.rand(n, 3, h, w, generator=generator) * 2 - 1 for n, _, h, w in shapes}


def _image_graph(loaded: LoadedModel, direction: str, h: int, w: int, static: bool,
                 caption: str | None = None) -> _Graph:
    multiple = loaded.method.export_size_multiple
    shapes = [(2, 3, h, w), (1, 3, h, w) if static else (1, 3, h + multiple, w + 2 * multiple)]
    checks = {k: (v,) for k, v in _images(shapes).items()}
    real = _real_input(loaded, (h, w), direction)
    if real is not None:
        checks["real image"] = (real,)
    net = loaded.method.export_module(direction=direction, **caption_option(loaded.method, caption)).eval()
    example = (torch.rand(2, 3, h, w) * 2 - 1,)  # batch 2: an example of batch 1 would specialise the batch axis
    auto = torch.export.Dim.AUTO
    dynamic = {0: auto} if static else {0: auto, 2: auto, 3: auto}  # --static-size fixes H and W, not the batch
    return _Graph("generator", net, example, ["image"], [dynamic], checks)


class _PerDomainHeads(torch.nn.Module):
    """A StarGAN v2 style encoder or mapping network whose per-domain head is picked with `gather`.

    The networks pick with `out[arange(N), y]`, which the exporter fixes to the example's batch; `gather` on
    the same stacked head outputs is the identical selection with a dynamic batch. The parity check compares
    this graph with the network's own forward, so a divergence cannot go unnoticed."""

    def __init__(self, net: torch.nn.Module, flatten: bool) -> None:
        super().__init__()
        self.shared, self.unshared, self.flatten = net.shared, net.unshared, flatten

    def forward(self, x: torch.Tensor, domain: torch.Tensor) -> torch.Tensor:
        h = self.shared(x)
        h = h.flatten(1) if self.flatten else h
        out = torch.stack([head(h) for head in self.unshared], dim=1)  # (N, domains, style_dim)
        index = domain.long()[:, None, None].expand(-1, 1, out.shape[2])
        return out.gather(1, index)[:, 0]


def _style_graphs(loaded: LoadedModel, h: int, w: int, static: bool) -> list[_Graph]:
    """StarGAN v2: the generator (image, style), the style encoder (reference, domain), the mapping (z, domain)."""
    method = loaded.method
    assert isinstance(method, StyleSource)  # export_onnx asks for style graphs only then
    auto = torch.export.Dim.AUTO
    size, n_domains, style_dim = method.style_size, len(method.domains), method.style_dim
    generator = torch.Generator().manual_seed(1)

    def styles(n: int) -> torch.Tensor:
        return torch.randn(n, style_dim, generator=generator)

    def domains(n: int) -> torch.Tensor:
        return torch.arange(n) % n_domains

    image = _image_graph(loaded, "AtoB", h, w, static)
    image.module = method.export_module(kind="generator")
    image.example = (*image.example, styles(2))
    image.input_names.append("style")
    image.dynamic.append({0: auto})
    image.checks = {k: (v[0], styles(v[0].shape[0])) for k, v in image.checks.items()}
    refs = _images([(2, 3, size, size), (3, 3, size, size)])
    # the parity reference is each network's own forward; the exported graph picks its head with gather
    networks = method.style_networks()
    encoder = _Graph("style_encoder", _PerDomainHeads(networks["style_encoder"], flatten=True),
                     (torch.rand(2, 3, size, size) * 2 - 1, domains(2)), ["reference", "domain"],
                     [{0: auto}, {0: auto}], {k: (v, domains(v.shape[0])) for k, v in refs.items()},
                     networks["style_encoder"])
    z = {f"random z {n}": torch.randn(n, method.latent_dim, generator=generator) for n in (2, 3)}
    mapping = _Graph("mapping", _PerDomainHeads(networks["mapping"], flatten=False),
                     (torch.randn(2, method.latent_dim), domains(2)), ["z", "domain"],
                     [{0: auto}, {0: auto}], {k: (v, domains(v.shape[0])) for k, v in z.items()}, networks["mapping"])
    return [image, encoder, mapping]


_OPERATOR = re.compile(r"(aten[.:]{1,2}[A-Za-z0-9_.]+|torchvision[.:]{1,2}[A-Za-z0-9_.]+)")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporter prints progress lines and warnings: the library never prints."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def _to_onnx(graph: _Graph, method_name: str, opset: int, fp16: bool, tracer: str = "dynamo") -> Any:
    """The graph as an onnx ModelProto (weights inline, one file), or a one-line error naming the operator.

    fp16: torch.export cannot trace some half-precision CPU kernels; then the TorchScript exporter (which
    traces with real tensors) writes the graph instead, and the metadata's `exporter` says so. A method whose
    `onnx_tracer` is "torchscript" is written by it first (the parity check that follows holds it to the same
    tolerance), and by torch.export if this torch has no TorchScript exporter left."""
    module = _Half(copy.deepcopy(graph.module)).eval() if fp16 else graph.module
    output = "style" if graph.name != "generator" else "output"
    if tracer == "torchscript":
        with contextlib.suppress(Exception):  # noqa: BLE001 - any failure: torch.export below says what it is
            return _to_onnx_torchscript(module, graph, output, opset, "torch.onnx (TorchScript)")
    try:
        with _quiet():
            program = torch.onnx.export(module, graph.example, None, dynamo=True, opset_version=opset,
                                        input_names=graph.input_names, output_names=[output],
                                        dynamic_shapes=tuple(graph.dynamic), external_data=False, verbose=False)
        return program.model_proto
    except Exception as exc:  # noqa: BLE001 - the exporter raises many types; name the operator when it does
        text = str(exc)
        operator = _OPERATOR.search(text)
        if fp16 and operator is None:
            return _to_onnx_torchscript(module, graph, output, opset)
        what = f"operator {operator.group(1)}" if operator else text.strip().splitlines()[0][:200] if text.strip() \
            else type(exc).__name__
        raise ExportError(f"ONNX cannot express {method_name}'s {graph.name} at opset {opset}: {what}") from exc


def _to_onnx_torchscript(module: torch.nn.Module, graph: _Graph, output: str, opset: int,
                         exporter: str = "torch.onnx (TorchScript, fp16 fallback)") -> Any:
    import tempfile

    import onnx

    axes = {2: "height", 3: "width"}
    dynamic = {name: {0: "batch", **{k: axes[k] for k in spec if k in axes}}
               for name, spec in zip(graph.input_names, graph.dynamic)}
    dynamic[output] = {0: "batch", **({2: "height", 3: "width"} if 2 in graph.dynamic[0] else {})}
    with tempfile.TemporaryDirectory() as folder, _quiet():
        path = Path(folder) / "graph.onnx"
        torch.onnx.export(module, graph.example, str(path), dynamo=False, opset_version=opset,
                          input_names=graph.input_names, output_names=[output], dynamic_axes=dynamic)
        model = onnx.load(str(path))
    entry = model.metadata_props.add()
    entry.key, entry.value = "exporter", exporter
    return model


def _parity(session: Any, graph: _Graph, reference: torch.nn.Module) -> dict[str, float]:
    names = [i.name for i in session.get_inputs()]
    diffs = {}
    for kind, inputs in graph.checks.items():
        with torch.no_grad():
            expected = reference(*inputs).float().numpy()
        got = session.run(None, dict(zip(names, (t.numpy() for t in inputs))))[0]
        diffs[f"{graph.name}: {kind}"] = float(np.abs(got - expected).max())
    return diffs


def supported_opsets() -> range:
    """The opsets an export can be written in: the dynamo exporter's lowest native one up to what the installed
    onnx package defines."""
    import onnx

    return range(DEFAULT_OPSET, onnx.defs.onnx_opset_version() + 1)


def check_opset(opset: int) -> None:
    allowed = supported_opsets()
    if opset not in allowed:
        raise ConfigError(f"--opset {opset}: this install writes opsets {allowed.start} to {allowed.stop - 1}; "
                          f"pass one of them (default {DEFAULT_OPSET})")


def refuse_other_opset(model: Any, opset: int) -> None:
    """The opset asked for is the opset written (and recorded), or the export stops: never a silent other one."""
    written = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), opset)
    if written != opset:
        raise ExportError(f"--opset {opset}: the exporter wrote opset {written} for this network; pass --opset "
                          f"{written} (nothing was written)")


def export_onnx(checkpoint: str | os.PathLike[str], out: str | os.PathLike[str], *, direction: str = "AtoB",
                opset: int = DEFAULT_OPSET, fp16: bool = False, static_size: tuple[int, int] | None = None,
                overwrite: bool = False, caption: str | None = None) -> ExportResult:
    """Export, check with onnx.checker, compare ONNX Runtime with PyTorch; raise ParityError past tolerance.

    Nothing is left behind on failure: every file goes through a temporary name and is renamed only after
    all graphs passed the parity check."""
    import onnx
    import onnxruntime as ort

    target = Path(out)
    if target.suffix != ".onnx":
        raise ConfigError(f"--out {target}: name the file *.onnx")
    check_opset(opset)
    if Path(checkpoint).suffix == ".onnx":
        raise ConfigError(f"--checkpoint {checkpoint}: already an ONNX file (export reads a run folder of `i2i train`); "
                          f"translate with it directly: i2i translate --checkpoint {checkpoint} IN/ OUT/")
    remove_stale_temporaries(target.parent, TEMP_MARKER + target.stem, recursive=False)
    loaded = load_for_inference(checkpoint, device="cpu")
    method = loaded.method
    styled = isinstance(method, StyleSource)
    targets = {"generator": target, **(companion_paths(target) if styled else {})}
    for path in targets.values():
        if path.exists() and not overwrite:
            raise ExportError(f"{path} already exists: pass --overwrite to replace it")
    if direction not in ("AtoB", "BtoA"):
        raise ConfigError(f"--direction {direction}: choose AtoB or BtoA")
    if direction == "BtoA" and not method.two_sided:
        raise ConfigError(f"--direction BtoA: {method.name} translates one way only")
    multiple = method.export_size_multiple
    size = max(multiple, 64 - 64 % multiple or multiple)
    h, w = static_size or (size, size)
    if h % multiple or w % multiple:
        raise ConfigError(f"--static-size {h} {w}: must be multiples of {multiple} for this network")
    graphs = _style_graphs(loaded, h, w, static_size is not None) if styled else \
        [_image_graph(loaded, direction, h, w, static_size is not None, caption)]
    extra = {}
    if isinstance(method, StyleSource):
        extra = {"companions": json.dumps({k: p.name for k, p in targets.items() if k != "generator"}),
                 "style_size": str(method.style_size), "latent_dim": str(method.latent_dim),
                 "style_dim": str(method.style_dim)}
    metadata = _metadata(loaded, "AtoB" if styled else direction, fp16, opset, extra)
    result = ExportResult(target, metadata, tolerance=TOLERANCE[fp16], files=list(targets.values()))
    with contextlib.ExitStack() as stack:
        for graph in graphs:
            tmp = stack.enter_context(atomic_path(targets[graph.name], overwrite=overwrite))
            model = _to_onnx(graph, method.name, opset, fp16, method.onnx_tracer)
            refuse_other_opset(model, opset)
            written = {p.key for p in model.metadata_props}
            for key, value in {**metadata, "graph": graph.name}.items():
                if key in written:
                    continue
                entry = model.metadata_props.add()
                entry.key, entry.value = key, value
            onnx.checker.check_model(model)
            onnx.save(model, str(tmp))
            session = ort.InferenceSession(str(tmp), providers=onnx_providers())
            result.provider = session.get_providers()[0]
            result.max_diff.update(_parity(session, graph, graph.reference or graph.module))
        worst = max(result.max_diff.values())
        if worst > result.tolerance:
            where = max(result.max_diff, key=lambda k: result.max_diff[k])
            raise ParityError(f"ONNX Runtime differs from PyTorch by {worst:.3g} on {where} (tolerance "
                              f"{result.tolerance:g}, {result.provider}); nothing was written")
    return result


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}
