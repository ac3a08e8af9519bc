"""Multi-domain translation (StarGAN v2): style codes from references or latents, and a folder translated once
per style."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from i2i_cli.data.images import (
    list_images,
    load_image,
    to_tensor,
)
from i2i_cli.engine.checkpoint import LoadedModel, load_for_inference
from i2i_cli.engine.device import resolve_device, resolve_precision
from i2i_cli.errors import ConfigError, I2IError
from i2i_cli.inference.folder import translate_folder
from i2i_cli.inference.naming import check_translation
from i2i_cli.inference.options import ProgressFn, TranslateOptions, TranslateResult
from i2i_cli.inference.translators import OnnxTranslator, onnx_precision, onnx_session
from i2i_cli.models.base import StyleSource


class StyledTranslator:
    """A multi-domain run's generator with one fixed style code: the TorchTranslator interface."""

    def __init__(self, loaded: LoadedModel, style: torch.Tensor, device: torch.device, precision: Any) -> None:
        self.loaded = loaded
        self.device = device
        self.precision = precision
        self.net = loaded.method.styled_generator()  # with the face masks inside where the model uses them
        self.style = style.to(device)
        self.size_multiple = loaded.method.size_multiple
        self.min_size = loaded.method.min_size

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with self.precision.autocast():
            return self.net(x.to(self.device), self.style.expand(x.shape[0], -1)).float()


class TorchStyles:
    """Style codes and styled translators from a multi-domain run (PyTorch)."""

    def __init__(self, loaded: LoadedModel, device: str = "auto", precision: str = "auto") -> None:
        if not isinstance(loaded.method, StyleSource):
            raise ConfigError(no_styles(loaded.method.name))
        self.loaded, self.method = loaded, loaded.method
        self.name, self.domains = self.method.name, list(self.method.domains)
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.method.to(self.device)
        self.latent_dim = self.method.latent_dim

    @torch.no_grad()
    def from_reference(self, ref: torch.Tensor, domain: int) -> torch.Tensor:
        # one domain index per reference: the style networks pick row i's output head by index i
        domains = torch.full((ref.shape[0],), domain, device=self.device)
        return self.method.style_from_reference(ref.to(self.device), domains).cpu()

    @torch.no_grad()
    def from_latent(self, z: torch.Tensor, domain: int) -> torch.Tensor:
        return self.method.style_from_latent(z.to(self.device), torch.full((z.shape[0],), domain, device=self.device)).cpu()

    def translator(self, style: torch.Tensor) -> StyledTranslator:
        return StyledTranslator(self.loaded, style, self.device, self.precision)


class OnnxStyles:
    """Style codes and styled translators from a multi-domain ONNX export (generator + its two companions)."""

    def __init__(self, path: Path, device: str = "auto", runtime: str = "auto", precision: str = "auto",
                 session: Any = None, metadata: dict[str, str] | None = None) -> None:
        import json

        self.path = Path(path)
        if session is None:
            session, metadata = onnx_session(self.path, device, runtime, precision)
        self.session, self.metadata = session, metadata or {}
        companions = json.loads(self.metadata.get("companions", "{}"))
        if not companions:
            raise ConfigError(f"{path} has no style networks; {self._takers()}")
        self.encoder, _ = onnx_session(self.path.with_name(companions["style_encoder"]), device, runtime, precision)
        self.mapping, _ = onnx_session(self.path.with_name(companions["mapping"]), device, runtime, precision)
        self.precision_ran, self.precision_note = onnx_precision(self.metadata, self.session)
        self.name = self.metadata.get("method", "")
        self.domains = json.loads(self.metadata["domains"])
        self.latent_dim = int(self.metadata["latent_dim"])
        self.style_size = int(self.metadata["style_size"])
        self.device = self.session.get_providers()[0]

    @staticmethod
    def _takers() -> str:
        return f"models that take a style reference or domain: {', '.join(_style_methods())}"

    def from_reference(self, ref: torch.Tensor, domain: int) -> torch.Tensor:
        size = self.style_size
        if ref.shape[-2:] != (size, size):  # as the method does: the encoder needs the training size
            ref = F.interpolate(ref, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        feed = dict(zip([i.name for i in self.encoder.get_inputs()], (ref.numpy(), np.array([domain]))))
        return torch.from_numpy(self.encoder.run(None, feed)[0])

    def from_latent(self, z: torch.Tensor, domain: int) -> torch.Tensor:
        feed = dict(zip([i.name for i in self.mapping.get_inputs()], (z.numpy(), np.array([domain]))))
        return torch.from_numpy(self.mapping.run(None, feed)[0])

    def translator(self, style: torch.Tensor) -> OnnxTranslator:
        return OnnxTranslator(self.path, style=style.numpy(), session=self.session, metadata=self.metadata)


def _style_methods() -> list[str]:
    from i2i_cli.models import registry

    return [n for n in registry.list_methods() if issubclass(registry.method_class(n), StyleSource)]


def no_styles(name: str) -> str:
    return f"{name} takes no style reference or domain; models that do: {', '.join(_style_methods())}"


def load_styles(checkpoint: str | os.PathLike[str] | Path, device: str = "auto", precision: str = "auto"
                ) -> TorchStyles | OnnxStyles:
    """The style source of a multi-domain run folder or .onnx export; a one-line error for other models."""
    path = Path(checkpoint)
    if path.suffix == ".onnx":
        return OnnxStyles(path, device, precision=precision)
    return TorchStyles(load_for_inference(path, device="cpu"), device, precision)


def domain_index(method: Any, name: str) -> int:
    if name not in method.domains:
        raise ConfigError(f"--domain {name}: not a domain of this run; its domains are {', '.join(method.domains)}")
    return method.domains.index(name)


def _reference_files(style_ref: Path) -> list[Path]:
    if style_ref.is_dir():
        files = list_images(style_ref)
        if not files:
            raise I2IError(f"--style-ref {style_ref}: no images in this folder")
        return files
    if not style_ref.exists():
        raise I2IError(f"--style-ref {style_ref}: no such file")
    return [style_ref]


def reference_tags(style_ref: Path, refs: list[Path]) -> list[str]:
    """The name part of each reference in NAME__TAG.png: its path inside --style-ref DIR, folders joined by "-"
    (val/cat/0000.png -> cat-0000), so references that share a file name in different domain folders give
    different outputs; references sharing a stem in one folder keep their extension (0000.jpg). A single
    reference file: no tag."""
    if not style_ref.is_dir():
        return [""]
    relative = [ref.relative_to(style_ref) for ref in refs]
    stems = ["-".join(rel.with_suffix("").parts) for rel in relative]
    return ["-".join(rel.parts) if stems.count(stem) > 1 else stem for rel, stem in zip(relative, stems)]


def style_tags(style_ref: Path | None, domain: str | None, num_styles: int = 1) -> list[str]:
    """The TAG of NAME__TAG.png for each style translate_with_styles renders, in order."""
    if style_ref is not None:
        return reference_tags(Path(style_ref), _reference_files(Path(style_ref)))
    return [f"{domain}{k}" if num_styles > 1 else "" for k in range(num_styles)]


def _reference_styles(model: TorchStyles | OnnxStyles, style_ref: Path, domain: str | None,
                      source: str | os.PathLike[str], out: str | os.PathLike[str], opts: TranslateOptions
                      ) -> list[tuple[str, torch.Tensor]]:
    """(tag, style code) of each reference; every output of every style checked before any style runs."""
    refs = _reference_files(style_ref)
    tags = style_tags(style_ref, domain)
    check_translation(source, out, opts, tags=tags)
    styles = []
    for ref, tag in zip(refs, tags):
        target = domain or (ref.parent.name if ref.parent.name in model.domains else None)
        if target is None:
            raise ConfigError(f"--style-ref {ref}: cannot tell its domain from its folder; pass --domain "
                              f"({', '.join(model.domains)})")
        index = domain_index(model, target)
        array = load_image(ref, max_pixels=opts.max_pixels)
        x = to_tensor(array)[None]
        styles.append((tag, model.from_reference(x, index)))
    return styles


def _latent_styles(model: TorchStyles | OnnxStyles, domain: str | None, num_styles: int, seed: int,
                   source: str | os.PathLike[str], out: str | os.PathLike[str], opts: TranslateOptions
                   ) -> list[tuple[str, torch.Tensor]]:
    """(tag, style code) of num_styles latent codes drawn from a CPU generator seeded with `seed`."""
    if domain is None:
        raise ConfigError(f"{model.name} needs a target: --style-ref IMAGE|DIR, or --domain D "
                          f"({', '.join(model.domains)}) for latent-guided outputs")
    index = domain_index(model, domain)
    tags = style_tags(None, domain, num_styles)
    check_translation(source, out, opts, tags=tags)
    generator = torch.Generator().manual_seed(seed)
    return [(tag, model.from_latent(torch.randn(1, model.latent_dim, generator=generator), index)) for tag in tags]


def translate_with_styles(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    model: LoadedModel | TorchStyles | OnnxStyles,
    *,
    style_ref: Path | None = None,
    domain: str | None = None,
    num_styles: int = 1,
    seed: int = 0,
    options: TranslateOptions | None = None,
    progress: ProgressFn | None = None,
) -> TranslateResult:
    """Reference-guided (one output per input and reference) or latent-guided (num_styles per input).

    `model` is a multi-domain run (LoadedModel / TorchStyles) or an ONNX export (OnnxStyles); the latent codes
    come from a CPU generator seeded with `seed`, so both give the same outputs for the same seed."""
    opts = options or TranslateOptions()
    if isinstance(model, LoadedModel):
        model = TorchStyles(model, opts.device, opts.precision)
    if style_ref is not None:
        styles = _reference_styles(model, Path(style_ref), domain, source, out, opts)
    else:
        styles = _latent_styles(model, domain, num_styles, seed, source, out, opts)
    total = TranslateResult(device=str(model.device))
    for k, (tag, style) in enumerate(styles):
        def report(done: int, count: int, offset: int = k) -> None:
            if progress:
                progress(offset * count + done, len(styles) * count)

        result = translate_folder(source, out, model.translator(style), TranslateOptions(**{**opts.__dict__, "tag": tag}),
                                  report)
        total.written += result.written
        total.skipped += result.skipped
        total.bad += [b for b in result.bad if b not in total.bad]
        total.seconds += result.seconds
    return total
