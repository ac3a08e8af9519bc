"""Translate images with a trained run: any size, batched, decode/model/encode overlapped, nothing half-written.

The translator is the method's pure inference network (`export_module`), so what `i2i translate` runs is
exactly what `i2i export` writes to ONNX. Inputs of any size are reflect-padded to the network's size
multiple and cropped back, so the output has the input's size.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from i2i_cli.data.images import is_image_file, list_images, load_image, save_image
from i2i_cli.engine.checkpoint import LoadedModel, load_for_inference, newest_run
from i2i_cli.engine.device import resolve_device, resolve_precision
from i2i_cli.errors import BadImageError, CheckpointError, ConfigError, I2IError
from i2i_cli.fsutil import remove_stale_temporaries

ProgressFn = Callable[[int, int], None]


@dataclass
class TranslateOptions:
    direction: str = "AtoB"
    device: str = "auto"
    precision: str = "fp32"
    batch_size: int = 1
    resize: int | None = None  # resize the shorter side to N before translating (output keeps that size)
    overwrite: bool = False
    skip_existing: bool = True
    threads: int = 4  # decode / encode threads
    max_pixels: int | None = None
    save_masks: bool = False  # attention methods: also write NAME__mask.png
    tag: str = ""  # output names become NAME__tag.png (one output per style)
    tile: int = 0  # translate images larger than this in overlapping tiles of this size (0: whole images)
    overlap: int = 32


@dataclass
class TranslateResult:
    written: list[Path] = field(default_factory=list)
    skipped: int = 0
    bad: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    device: str = ""
    note: str = ""


def resolve_checkpoint(checkpoint: str | os.PathLike[str] | None, runs_root: Path = Path("runs")) -> tuple[Path, str]:
    """The run to use, and a note when it was chosen for the user (the newest under ./runs)."""
    if checkpoint is not None:
        return Path(checkpoint), ""
    newest = newest_run(runs_root)
    if newest is None:
        raise CheckpointError(f"no --checkpoint given and no trained run under {runs_root}/; pass --checkpoint RUN "
                              "(or train one: `i2i demo`)")
    return newest, f"no --checkpoint given: using the newest run, {newest}"


class TorchTranslator:
    """A run's inference network on a device: float (N, 3, H, W) in [-1, 1] -> same shape."""

    def __init__(self, loaded: LoadedModel, direction: str = "AtoB", device: str = "auto", precision: str = "fp32") -> None:
        method = loaded.method
        if method.takes_style_reference:
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
        self.net = method.export_module(direction=direction).to(self.device).eval()
        self.mask_net = getattr(self.net, "attention", None)  # attention-guided methods expose their mask
        self.size_multiple = method.size_multiple
        self.min_size = method.min_size

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with self.precision.autocast():
            return self.net(x.to(self.device)).float()


def run_masks(translator: Any, arrays: list[np.ndarray]) -> list[np.ndarray]:
    """Attention masks (grey uint8, the input's size) of same-size uint8 arrays."""
    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
    padded, (h, w) = pad_to_multiple(x, translator.size_multiple)
    with torch.no_grad():
        m = translator.mask_net(padded.to(translator.device))[..., :h, :w]
    return [np.ascontiguousarray(o) for o in m[:, 0].clamp(0, 1).mul(255).round().byte().cpu().numpy()]


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad (N, C, H, W) on the bottom/right to multiples of `multiple`; return the original (H, W)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (h, w)


def _check_size(array: np.ndarray, path: Path, translator: Any) -> None:
    h, w = array.shape[:2]
    if min(h, w) < translator.min_size:
        raise BadImageError(path, f"{w}x{h} is smaller than this network takes ({translator.min_size} px); "
                                  "upscale it or use --resize")


def _prepare(array: np.ndarray, resize: int | None) -> np.ndarray:
    if not resize:
        return array
    from PIL import Image

    h, w = array.shape[:2]
    scale = resize / min(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(array).resize(size, Image.BICUBIC))


def _ramp(length: int, overlap: int, first: bool, last: bool) -> torch.Tensor:
    """Blending weights along one axis of a tile: linear ramps over the overlaps, 1 elsewhere."""
    weights = torch.ones(length)
    # the outer quarter of each overlap gets no weight: a tile's edge pixels lack context the network needs
    margin = overlap // 4
    ramp = ((torch.arange(overlap) - margin + 1) / (overlap - 2 * margin + 1)).clamp(0, 1)
    if not first and overlap:
        weights[:overlap] = ramp
    if not last and overlap:
        weights[-overlap:] = torch.minimum(weights[-overlap:], ramp.flip(0))
    return weights


def _starts(size: int, tile: int, overlap: int) -> list[int]:
    if size <= tile:
        return [0]
    step = max(1, tile - overlap)
    starts = list(range(0, size - tile, step)) + [size - tile]
    return sorted(set(starts))


def run_tiled(translator: Any, x: torch.Tensor, tile: int, overlap: int) -> torch.Tensor:
    """Translate (N, 3, H, W) in overlapping tiles blended with linear ramps (for images past memory).

    Exact away from the seams for fully convolutional networks; networks that normalise over the whole
    image (instance norm, pix2pix's per-image batch norm) see each tile's own statistics instead."""
    n, _, h, w = x.shape
    out = torch.zeros(n, 3, h, w)
    total = torch.zeros(1, 1, h, w)
    ys, xs = _starts(h, tile, overlap), _starts(w, tile, overlap)
    for iy, top in enumerate(ys):
        for ix, left in enumerate(xs):
            patch = x[..., top : top + tile, left : left + tile]
            padded, (ph, pw) = pad_to_multiple(patch, translator.size_multiple)
            y = translator(padded)[..., :ph, :pw].float().cpu()
            weight = (_ramp(ph, overlap, iy == 0, iy == len(ys) - 1)[:, None]
                      * _ramp(pw, overlap, ix == 0, ix == len(xs) - 1)[None, :])[None, None]
            out[..., top : top + ph, left : left + pw] += y * weight
            total[..., top : top + ph, left : left + pw] += weight
    return out / total.clamp_min(1e-8)


def run_array(translator: Any, arrays: list[np.ndarray], tile: int = 0, overlap: int = 32) -> list[np.ndarray]:
    """Translate same-size uint8 (H, W, 3) arrays; outputs have the inputs' size."""
    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
    if tile and max(x.shape[-2:]) > tile:
        if tile % translator.size_multiple or overlap >= tile:
            raise ConfigError(f"--tile {tile} must be a multiple of {translator.size_multiple} and larger than "
                              f"--overlap {overlap}")
        y = run_tiled(translator, x, tile, overlap)
        out = y.clamp(-1, 1).add(1).mul(127.5).round().byte().permute(0, 2, 3, 1).numpy()
        return [np.ascontiguousarray(o) for o in out]
    padded, (h, w) = pad_to_multiple(x, translator.size_multiple)
    y = translator(padded)[..., :h, :w]
    out = y.clamp(-1, 1).add(1).mul(127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    return [np.ascontiguousarray(o) for o in out]


def output_path(source: Path, file: Path, out: Path, suffix: str = ".png", tag: str = "") -> Path:
    relative = file.relative_to(source) if source.is_dir() else Path(file.name)
    name = relative.stem + (f"__{tag}" if tag else "") + suffix
    return out / relative.parent / name


def input_files(source: Path) -> list[Path]:
    if not source.exists():
        raise I2IError(f"{source}: no such file or folder")
    if source.is_file():
        if not is_image_file(source):
            raise I2IError(f"{source}: not an image file (by its extension)")
        return [source]
    files = list_images(source)
    if not files:
        raise I2IError(f"{source}: no images found (looked recursively for png, jpg, bmp, tif, webp...)")
    return files


def shard(files: list[Path]) -> list[Path]:
    """Under torchrun, each process takes every WORLD_SIZE-th file: each file is written once."""
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    return files[rank::world] if world > 1 else files


def _batches(files: list[Path], loader: Callable[[Path], np.ndarray], batch_size: int, threads: int
             ) -> Iterator[list[tuple[Path, np.ndarray | BadImageError]]]:
    """Decoded files in order, decoding ahead in a thread pool; same-size neighbours are batched."""
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        ahead = max(2 * batch_size, 2 * threads)
        futures: list[tuple[Path, Future[np.ndarray]]] = []
        index = 0
        group: list[tuple[Path, np.ndarray | BadImageError]] = []
        while index < len(files) or futures:
            while index < len(files) and len(futures) < ahead:
                futures.append((files[index], pool.submit(loader, files[index])))
                index += 1
            path, future = futures.pop(0)
            try:
                item: np.ndarray | BadImageError = future.result()
            except BadImageError as exc:
                item = exc
            if isinstance(item, BadImageError):
                yield [(path, item)]
                continue
            if group and (len(group) >= batch_size or group[0][1].shape != item.shape):  # type: ignore[union-attr]
                yield group
                group = []
            group.append((path, item))
        if group:
            yield group


def translate_folder(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    translator: Any,
    options: TranslateOptions | None = None,
    progress: ProgressFn | None = None,
) -> TranslateResult:
    """Translate every image under `source` into `out` (names and sub-folders kept, PNG)."""
    opts = options or TranslateOptions()
    src, dst = Path(source), Path(out)
    start = time.time()
    result = TranslateResult(device=str(getattr(translator, "device", "")))
    remove_stale_temporaries(dst)
    todo = []
    for file in shard(input_files(src)):
        target = output_path(src, file, dst, tag=opts.tag)
        if target.exists() and not opts.overwrite:
            if not opts.skip_existing:
                raise I2IError(f"{target} already exists: pass --overwrite to replace it (or keep --skip-existing)")
            result.skipped += 1
            continue
        todo.append((file, target))
    targets = dict(todo)

    def load(path: Path) -> np.ndarray:
        array = _prepare(load_image(path, max_pixels=opts.max_pixels), opts.resize)
        _check_size(array, path, translator)
        return array

    done = 0
    with ThreadPoolExecutor(max_workers=max(1, opts.threads)) as writers:
        pending: list[Future[None]] = []
        for group in _batches([f for f, _ in todo], load, opts.batch_size, opts.threads):
            if isinstance(group[0][1], BadImageError):
                result.bad.append((str(group[0][0]), group[0][1].reason))
            else:
                outputs = run_array(translator, [a for _, a in group], opts.tile, opts.overlap)  # type: ignore[misc]
                masks = run_masks(translator, [a for _, a in group]) if opts.save_masks else []  # type: ignore[misc]
                for i, ((path, _), output) in enumerate(zip(group, outputs)):
                    target = targets[path]
                    pending.append(writers.submit(save_image, output, target, overwrite=opts.overwrite))
                    if masks:
                        mask_path = target.with_name(target.stem + "__mask.png")
                        pending.append(writers.submit(save_image, masks[i], mask_path, overwrite=opts.overwrite))
                    result.written.append(target)
            done += len(group)
            if progress:
                progress(done, len(todo))
        for future in pending:
            future.result()
    result.seconds = time.time() - start
    return result


class OnnxTranslator:
    """An exported .onnx file in ONNX Runtime (CUDA provider when a GPU is present, else CPU)."""

    def __init__(self, path: Path, direction: str = "AtoB") -> None:
        import onnxruntime as ort

        from i2i_cli.export import onnx_providers, read_metadata

        try:
            self.metadata = read_metadata(path)
            self.session = ort.InferenceSession(str(path), providers=onnx_providers())
        except Exception as exc:  # noqa: BLE001 - a broken file can fail in many ways
            raise CheckpointError(f"{path}: not a readable ONNX model ({str(exc).splitlines()[0][:200]})") from exc
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or (isinstance(inputs[0].shape[1], int) and inputs[0].shape[1] != 3):
            raise CheckpointError(f"{path}: expected one input of 3-channel images, found "
                                  f"{[(i.name, i.shape) for i in inputs]}")
        self.input_name = inputs[0].name
        if self.metadata.get("direction", direction) != direction:
            raise ConfigError(f"{path} was exported for {self.metadata['direction']}; export again with "
                              f"--direction {direction}")
        self.size_multiple = int(self.metadata.get("size_multiple", 1))
        self.min_size = int(self.metadata.get("min_size", 1))
        self.device = self.session.get_providers()[0]
        self.note = "" if "i2i_version" in self.metadata else (
            f"{path} has no i2i metadata: assuming inputs in [-1, 1] and any size (multiple 1)")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.session.run(None, {self.input_name: x.numpy().astype(np.float32)})[0])


def load_translator(checkpoint: str | os.PathLike[str] | None, direction: str = "AtoB", device: str = "auto",
                    precision: str = "fp32") -> tuple[Any, str]:
    """A translator for a run folder (PyTorch) or an .onnx file (ONNX Runtime), and a note to show."""
    path, note = resolve_checkpoint(checkpoint)
    if path.suffix == ".onnx":
        translator = OnnxTranslator(path, direction)
        return translator, "; ".join(n for n in (note, translator.note, f"ONNX Runtime on {translator.device}") if n)
    loaded = load_for_inference(path, device="cpu")
    return TorchTranslator(loaded, direction, device, precision), note


class StyledTranslator:
    """A multi-domain run's generator with one fixed style code: the TorchTranslator interface."""

    def __init__(self, loaded: LoadedModel, style: torch.Tensor, device: torch.device, precision: Any) -> None:
        self.loaded = loaded
        self.device = device
        self.precision = precision
        self.net = loaded.method.G
        self.style = style.to(device)
        self.size_multiple = loaded.method.size_multiple
        self.min_size = loaded.method.min_size

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with self.precision.autocast():
            return self.net(x.to(self.device), self.style.expand(x.shape[0], -1)).float()


def _domain_index(method: Any, name: str) -> int:
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


def translate_with_styles(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    loaded: LoadedModel,
    *,
    style_ref: Path | None = None,
    domain: str | None = None,
    num_styles: int = 1,
    seed: int = 0,
    options: TranslateOptions | None = None,
    progress: ProgressFn | None = None,
) -> TranslateResult:
    """Reference-guided (one output per input and reference) or latent-guided (num_styles per input)."""
    opts = options or TranslateOptions()
    method = loaded.method
    if not method.takes_style_reference:
        from models import registry

        takers = [n for n in registry.list_methods() if registry.method_class(n).takes_style_reference]
        raise ConfigError(f"{method.name} takes no style reference or domain; models that do: {', '.join(takers)}")
    device = resolve_device(opts.device)
    precision = resolve_precision(opts.precision, device)
    method.to(device)
    styles: list[tuple[str, torch.Tensor]] = []
    if style_ref is not None:
        refs = _reference_files(Path(style_ref))
        for ref in refs:
            target = domain or (ref.parent.name if ref.parent.name in method.domains else None)
            if target is None:
                raise ConfigError(f"--style-ref {ref}: cannot tell its domain from its folder; pass --domain "
                                  f"({', '.join(method.domains)})")
            array = load_image(ref, max_pixels=opts.max_pixels)
            x = torch.from_numpy(array).permute(2, 0, 1)[None].float().div(127.5).sub(1).to(device)
            index = torch.tensor([_domain_index(method, target)], device=device)
            with torch.no_grad():
                style = method.style_from_reference(x, index)
            styles.append((ref.stem if len(refs) > 1 or Path(style_ref).is_dir() else "", style))
    else:
        if domain is None:
            raise ConfigError(f"{method.name} needs a target: --style-ref IMAGE|DIR, or --domain D "
                              f"({', '.join(method.domains)}) for latent-guided outputs")
        index = torch.tensor([_domain_index(method, domain)], device=device)
        generator = torch.Generator().manual_seed(seed)
        for k in range(num_styles):
            z = torch.randn(1, method.latent_dim, generator=generator).to(device)
            with torch.no_grad():
                styles.append((f"{domain}{k}" if num_styles > 1 else "", method.style_from_latent(z, index)))
    total = TranslateResult(device=str(device))
    for tag, style in styles:
        translator = StyledTranslator(loaded, style, device, precision)
        result = translate_folder(source, out, translator, TranslateOptions(**{**opts.__dict__, "tag": tag}), progress)
        total.written += result.written
        total.skipped += result.skipped
        total.bad += [b for b in result.bad if b not in total.bad]
        total.seconds += result.seconds
    return total
