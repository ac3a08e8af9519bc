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

from i2i_cli.data.images import (
    is_image_file,
    list_images,
    load_image,
    save_image,
    to_tensor,
    to_tensor_batch,
    to_uint8_batch,
)
from i2i_cli.engine.checkpoint import LoadedModel, is_finished, load_for_inference, newest_run, run_progress
from i2i_cli.engine.device import resolve_device, resolve_precision
from i2i_cli.errors import BadImageError, CheckpointError, ConfigError, I2IError
from i2i_cli.fsutil import check_output_folder, folds_case, remove_stale_temporaries
from i2i_cli.models.base import AttentionMasks, StyleSource

ProgressFn = Callable[[int, int], None]


@dataclass
class TranslateOptions:
    direction: str = "AtoB"
    device: str = "auto"
    precision: str = "fp32"
    batch_size: int = 1
    resize: int | None = None  # resize the shorter side to N before translating (output keeps that size)
    keep_size: bool = False  # with resize: scale the output back to the input's size
    overwrite: bool = False
    skip_existing: bool = True
    threads: int = 4  # decode / encode threads
    max_pixels: int | None = None
    save_masks: bool = False  # attention methods: also write NAME__mask.png
    tag: str = ""  # output names become NAME__tag.png (one output per style)
    tile: int = 0  # translate images larger than this in overlapping tiles of this size (0: whole images)
    overlap: int = 32
    blend: str = "linear"  # tile seam weights: linear or cosine ramps


@dataclass
class TranslateResult:
    written: list[Path] = field(default_factory=list)
    skipped: int = 0
    bad: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    device: str = ""  # torch device, or the ONNX Runtime provider that ran the network
    note: str = ""

    @property
    def counts(self) -> dict[str, int]:
        return {"written": len(self.written), "skipped": self.skipped, "bad": len(self.bad)}


def resolve_checkpoint(checkpoint: str | os.PathLike[str] | None, runs_root: Path = Path("runs")) -> tuple[Path, str]:
    """The run to use, and a note when it was chosen for the user (the newest under ./runs)."""
    if checkpoint is not None:
        return _local_checkpoint(checkpoint)
    newest = newest_run(runs_root)
    if newest is None:
        raise CheckpointError(f"no --checkpoint given and no trained run under {runs_root}/; pass --checkpoint RUN "
                              "(or train one: `i2i demo`)")
    finished = newest if is_finished(newest) else newest_run(runs_root, finished_only=True)
    if finished is None:
        step, planned = run_progress(newest)
        raise CheckpointError(f"no --checkpoint given, and the newest run under {runs_root}/, {newest}, is at step "
                              f"{step} of {planned} (still training, or stopped): pass --checkpoint {newest} to use "
                              "it as it is")
    if finished != newest:
        step, planned = run_progress(newest)
        return finished, (f"no --checkpoint given: using the newest finished run, {finished} ({newest} is at step "
                          f"{step} of {planned}; pass --checkpoint {newest} to use it)")
    return newest, f"no --checkpoint given: using the newest run, {newest}"


def _local_checkpoint(checkpoint: str | os.PathLike[str]) -> tuple[Path, str]:
    """A path as given; hf://owner/name[@rev] -> its snapshot folder in the Hugging Face cache, with a note."""
    from i2i_cli.engine.checkpoint import parse_hub_reference, resolve_hub_path

    reference = parse_hub_reference(checkpoint)
    if reference is None:
        return Path(checkpoint), ""
    folder = resolve_hub_path(checkpoint)
    repo, revision = reference
    return folder, f"hf://{repo}{'@' + revision if revision else ''}: {folder}"


class TorchTranslator:
    """A run's inference network on a device: float (N, 3, H, W) in [-1, 1] -> same shape."""

    def __init__(self, loaded: LoadedModel, direction: str = "AtoB", device: str = "auto", precision: str = "fp32") -> None:
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
        self.net = method.export_module(direction=direction).to(self.device).eval()
        self.mask_net = (method.mask_module(direction).to(self.device).eval() if isinstance(method, AttentionMasks)
                         else None)
        self.size_multiple = method.size_multiple
        self.min_size = method.min_size

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with self.precision.autocast():
            return self.net(x.to(self.device)).float()


def run_masks(translator: Any, arrays: list[np.ndarray]) -> list[np.ndarray]:
    """Attention masks (grey uint8, the input's size) of same-size uint8 arrays."""
    x = to_tensor_batch(arrays)
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


def _check_size(array: np.ndarray, path: Path, translator: Any, tile: int = 0) -> None:
    h, w = array.shape[:2]
    if min(h, w) < translator.min_size:
        raise BadImageError(path, f"{w}x{h} is smaller than this network takes ({translator.min_size} px); "
                                  "upscale it or use --resize")
    static = getattr(translator, "static_size", None)  # an ONNX file exported with --static-size H W
    if static and (h, w) != static and not (tile and static == (tile, tile) and min(h, w) >= tile):
        hint = f"--tile {static[0]}, " if static[0] == static[1] else ""
        raise BadImageError(path, f"{w}x{h}, but this ONNX file takes {static[1]}x{static[0]} images only (exported "
                                  f"with --static-size); translate with {hint}resized images, or export without "
                                  "--static-size")


def _prepare(array: np.ndarray, resize: int | None) -> np.ndarray:
    if not resize:
        return array
    from PIL import Image

    h, w = array.shape[:2]
    scale = resize / min(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(array).resize(size, Image.BICUBIC))


def _ramp(length: int, overlap: int, first: bool, last: bool, blend: str = "linear") -> torch.Tensor:
    """Blending weights along one axis of a tile: linear (or cosine) ramps over the overlaps, 1 elsewhere."""
    weights = torch.ones(length)
    # the outer quarter of each overlap gets no weight: a tile's edge pixels lack context the network needs
    margin = overlap // 4
    ramp = ((torch.arange(overlap) - margin + 1) / (overlap - 2 * margin + 1)).clamp(0, 1)
    if blend == "cosine":  # same support, smooth at both ends; the two tiles' weights still sum to one
        ramp = 0.5 - 0.5 * torch.cos(torch.pi * ramp)
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


TILES_PER_FORWARD = 8  # tiles exist for images past memory: a bounded number per forward pass


def run_tiled(translator: Any, x: torch.Tensor, tile: int, overlap: int, blend: str = "linear") -> torch.Tensor:
    """Translate (N, 3, H, W) in overlapping tiles blended with linear ramps (for images past memory).

    Exact away from the seams for fully convolutional networks; networks that normalise over the whole
    image (instance norm, pix2pix's per-image batch norm) see each tile's own statistics instead."""
    n, _, h, w = x.shape
    out = torch.zeros(n, 3, h, w)
    total = torch.zeros(1, 1, h, w)
    ys, xs = _starts(h, tile, overlap), _starts(w, tile, overlap)
    places = [(iy, top, ix, left) for iy, top in enumerate(ys) for ix, left in enumerate(xs)]
    patches = [x[..., top : top + tile, left : left + tile] for _, top, _, left in places]
    for (iy, top, ix, left), y in zip(places, translate_tiles(translator, patches)):
        ph, pw = y.shape[-2:]
        weight = (_ramp(ph, overlap, iy == 0, iy == len(ys) - 1, blend)[:, None]
                  * _ramp(pw, overlap, ix == 0, ix == len(xs) - 1, blend)[None, :])[None, None]
        out[..., top : top + ph, left : left + pw] += y * weight
        total[..., top : top + ph, left : left + pw] += weight
    return out / total.clamp_min(1e-8)


def translate_tiles(translator: Any, patches: list[torch.Tensor], per_forward: int = TILES_PER_FORWARD
                    ) -> list[torch.Tensor]:
    """Each (N, 3, h, w) patch translated, on the CPU as float: up to `per_forward` patches of one shape go
    through the network in one batch (one forward per group instead of one per tile; a network that treats
    batch elements independently gives the same numbers)."""
    out: list[torch.Tensor | None] = [None] * len(patches)
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, patch in enumerate(patches):
        by_shape.setdefault(tuple(patch.shape), []).append(i)
    for indices in by_shape.values():
        n = patches[indices[0]].shape[0]
        step = max(1, per_forward // max(1, n))
        for start in range(0, len(indices), step):
            group = indices[start : start + step]
            padded, (ph, pw) = pad_to_multiple(torch.cat([patches[i] for i in group]), translator.size_multiple)
            y = translator(padded)[..., :ph, :pw].float().cpu()
            for i, chunk in zip(group, y.split(n)):
                out[i] = chunk
    return out  # type: ignore[return-value]


def run_array(translator: Any, arrays: list[np.ndarray], tile: int = 0, overlap: int = 32,
              blend: str = "linear") -> list[np.ndarray]:
    """Translate same-size uint8 (H, W, 3) arrays; outputs have the inputs' size."""
    x = to_tensor_batch(arrays)
    if tile and max(x.shape[-2:]) > tile:
        if tile % translator.size_multiple or overlap >= tile:
            raise ConfigError(f"--tile {tile} must be a multiple of {translator.size_multiple} and larger than "
                              f"--overlap {overlap}")
        if blend not in ("linear", "cosine"):
            raise ConfigError(f"--blend {blend}: choose linear or cosine")
        y = run_tiled(translator, x, tile, overlap, blend)
        return to_uint8_batch(y)
    padded, (h, w) = pad_to_multiple(x, translator.size_multiple)
    y = translator(padded)[..., :h, :w]
    return to_uint8_batch(y)


def output_path(source: Path, file: Path, out: Path, suffix: str = ".png", tag: str = "", keep_extension: bool = False
                ) -> Path:
    """OUT/<relative folder>/NAME[__tag].png; with keep_extension NAME keeps the input's extension (a.webp.png)."""
    relative = file.relative_to(source) if source.is_dir() else Path(file.name)
    stem = relative.name if keep_extension else relative.stem
    return out / relative.parent / (stem + (f"__{tag}" if tag else "") + suffix)


# --- output names: every output has its own file, checked before any work ----------------------------------


def mask_path(target: Path) -> Path:
    return target.with_name(target.stem + "__mask.png")


def output_names(source: Path, files: list[Path], out: Path, tag: str = "") -> dict[Path, Path]:
    """Each input's output path. Inputs that would share one (a.png and a.webp -> a.png) keep their extension
    in the name: a.png stays a.png, a.webp becomes a.webp.png; any other input's keeps its plain name."""
    plain = {file: output_path(source, file, out, tag=tag) for file in files}
    claims: dict[Path, list[Path]] = {}
    for file, target in plain.items():
        claims.setdefault(target, []).append(file)
    names = dict(plain)
    for owners in claims.values():
        if len(owners) > 1:
            for file in owners:
                if file.suffix != ".png":
                    names[file] = output_path(source, file, out, tag=tag, keep_extension=True)
    return names


def find_collisions(claims: list[tuple[str, Path]], fold_case: bool = False) -> dict[Path, list[str]]:
    """Output paths claimed by more than one (owner, path) pair: {path: owners}. Owners are what writes the file
    (an input, an input with a style, a video frame); any writer of several outputs checks them all here.
    `fold_case`: the output file system ignores case, so paths that differ only in case are one file."""
    owners: dict[str, list[str]] = {}
    first: dict[str, Path] = {}
    for owner, path in claims:
        key = str(path).casefold() if fold_case else str(path)
        first.setdefault(key, path)
        owners.setdefault(key, []).append(owner)
    return {first[key]: who for key, who in owners.items() if len(who) > 1}


def refuse_collisions(claims: list[tuple[str, Path]], fold_case: bool = False) -> None:
    """A one-line error listing the outputs that two inputs would write (nothing is written)."""
    clashes = find_collisions(claims, fold_case)
    if clashes:
        listed = "; ".join(f"{path} from {' and '.join(who)}" for path, who in list(clashes.items())[:5])
        more = f" (and {len(clashes) - 5} more)" if len(clashes) > 5 else ""
        raise ConfigError(f"{len(clashes)} output file(s) would each be written twice: {listed}{more}; rename the "
                          "inputs (or references) involved; nothing was written")


def output_claims(names: dict[Path, Path], save_masks: bool = False, label: str = "") -> list[tuple[str, Path]]:
    """(owner, output) for every file a translation of `names` writes, masks included."""
    claims = []
    for file, target in names.items():
        owner = f"{file}{label}"
        claims.append((owner, target))
        if save_masks:
            claims.append((f"{owner} (mask)", mask_path(target)))
    return claims


def skip_existing_output(source: Path, target: Path, opts: TranslateOptions) -> bool:
    """Whether an output that is already there is skipped (--skip-existing); refused when it is the input itself,
    or when it exists and neither --overwrite nor --skip-existing allows going on. Images and videos alike."""
    if not target.exists():
        return False
    if target.resolve() == source.resolve():
        raise ConfigError(f"{target}: the output would replace its own input; choose another OUT")
    if opts.overwrite:
        return False
    if not opts.skip_existing:
        raise I2IError(f"{target} already exists: pass --overwrite to replace it (or keep --skip-existing)")
    return True


def check_translation(source: str | os.PathLike[str], out: str | os.PathLike[str], opts: TranslateOptions,
                      translator: Any = None, tags: tuple[str, ...] | list[str] = ("",)) -> None:
    """Everything that would fail later, refused before any image is read: OUT (not the input folder, a
    writable folder), the tile options for `translator`, and the output names of every input under every tag
    (style), masks included."""
    src, dst = Path(source), Path(out)
    _refuse_output_in_input(src, dst)
    check_output_folder(dst, "OUT")
    if translator is not None:
        check_tile_options(translator, opts.tile, opts.overlap, opts.blend)
    files = input_files(src)
    claims: list[tuple[str, Path]] = []
    for tag in tags:
        claims += output_claims(output_names(src, files, dst, tag), opts.save_masks,
                                f" with style {tag}" if tag else "")
    refuse_collisions(claims, fold_case=folds_case(dst))


def check_tile_options(translator: Any, tile: int, overlap: int, blend: str) -> None:
    if not tile:
        return
    multiple = getattr(translator, "size_multiple", 1)
    if tile < 0 or tile % multiple or overlap >= tile or overlap < 0:
        fit = -(-max(tile, overlap + 1) // multiple) * multiple  # the next multiple that also exceeds the overlap
        raise ConfigError(f"--tile {tile}: must be a multiple of {multiple} for this network (e.g. --tile {fit}) "
                          f"and larger than --overlap {overlap}")
    if blend not in ("linear", "cosine"):
        raise ConfigError(f"--blend {blend}: choose linear or cosine")


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


def _refuse_output_in_input(src: Path, dst: Path) -> None:
    """Outputs written into the input folder would replace the inputs (same names) or be read as inputs later."""
    if not src.is_dir():
        return
    source, target = src.resolve(), dst.resolve()
    if target == source or source in target.parents:
        raise ConfigError(f"{dst}: is {'the input folder' if target == source else 'inside the input folder'} "
                          f"{src}; choose an OUT outside it")


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
    check_translation(src, dst, opts, translator, (opts.tag,))
    files = input_files(src)
    names = output_names(src, files, dst, opts.tag)
    start = time.time()
    result = TranslateResult(device=str(getattr(translator, "device", "")))
    remove_stale_temporaries(dst)
    todo = []
    for file in shard(files):
        target = names[file]
        if skip_existing_output(file, target, opts):
            result.skipped += 1
            continue
        todo.append((file, target))
    _translate_files(todo, translator, opts, result, progress)
    result.seconds = time.time() - start
    return result


def _translate_files(todo: list[tuple[Path, Path]], translator: Any, opts: TranslateOptions, result: TranslateResult,
                     progress: ProgressFn | None) -> None:
    """Each (input, output) of `todo` translated and written, decoding and encoding in threads; into `result`."""
    targets = dict(todo)
    original_sizes: dict[Path, tuple[int, int]] = {}  # (width, height) before --resize, for --keep-size

    def load(path: Path) -> np.ndarray:
        decoded = load_image(path, max_pixels=opts.max_pixels)
        original_sizes[path] = (decoded.shape[1], decoded.shape[0])
        array = _prepare(decoded, opts.resize)
        _check_size(array, path, translator, opts.tile)
        return array

    def write(array: np.ndarray, target: Path, size: tuple[int, int] | None) -> None:
        if size is not None and size != (array.shape[1], array.shape[0]):
            from PIL import Image

            resample = Image.BICUBIC if array.ndim == 3 else Image.BILINEAR
            array = np.asarray(Image.fromarray(array).resize(size, resample))
        save_image(array, target, overwrite=opts.overwrite)

    done = 0
    # encoding overlaps the network; a bounded queue keeps a slow disk from piling up decoded outputs in memory
    queue_limit = 2 * max(1, opts.threads) + opts.batch_size
    with ThreadPoolExecutor(max_workers=max(1, opts.threads)) as writers:
        pending: list[Future[None]] = []
        for group in _batches([f for f, _ in todo], load, opts.batch_size, opts.threads):
            if isinstance(group[0][1], BadImageError):
                result.bad.append((str(group[0][0]), group[0][1].reason))
            else:
                arrays: list[np.ndarray] = [a for _, a in group]  # type: ignore[misc]
                outputs = run_array(translator, arrays, opts.tile, opts.overlap, opts.blend)
                masks = run_masks(translator, arrays) if opts.save_masks else []
                for i, ((path, _), output) in enumerate(zip(group, outputs)):
                    target = targets[path]
                    size = original_sizes.pop(path) if opts.keep_size and opts.resize else None
                    pending.append(writers.submit(write, output, target, size))
                    if masks:
                        pending.append(writers.submit(write, masks[i], mask_path(target), size))
                    result.written.append(target)
                while len(pending) > queue_limit:
                    pending.pop(0).result()
            done += len(group)
            if progress:
                progress(done, len(todo))
        for future in pending:
            future.result()


def _onnx_session(path: Path, device: str) -> tuple[Any, dict[str, str]]:
    import onnxruntime as ort

    from i2i_cli.export import onnx_providers, read_metadata

    providers = onnx_providers(device)  # raises a one-line error for --device cuda without a GPU
    if not path.is_file():
        raise CheckpointError(f"{path}: no such ONNX file (write one with `i2i export`)")
    try:
        metadata = read_metadata(path)
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
            session, metadata = _onnx_session(Path(path), device)
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
                    precision: str = "fp32") -> tuple[Any, str]:
    """A translator for a run folder (PyTorch) or an .onnx file (ONNX Runtime), and a note to show."""
    path, note = resolve_checkpoint(checkpoint)
    if path.suffix == ".onnx":
        if precision != "fp32":
            raise ConfigError(f"--precision {precision}: an ONNX file runs in the precision it was exported in "
                              "(`i2i export --fp16` for half precision)")
        translator = OnnxTranslator(path, direction, device)
        return translator, "; ".join(n for n in (note, translator.note, f"ONNX Runtime on {translator.device}") if n)
    loaded = load_for_inference(path, device="cpu")
    return TorchTranslator(loaded, direction, device, precision), note


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

    def __init__(self, loaded: LoadedModel, device: str = "auto", precision: str = "fp32") -> None:
        if not isinstance(loaded.method, StyleSource):
            raise ConfigError(_no_styles(loaded.method.name))
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

    def __init__(self, path: Path, device: str = "auto") -> None:
        import json

        self.path = Path(path)
        self.session, self.metadata = _onnx_session(self.path, device)
        companions = json.loads(self.metadata.get("companions", "{}"))
        if not companions:
            raise ConfigError(f"{path} has no style networks; {self._takers()}")
        self.encoder, _ = _onnx_session(self.path.with_name(companions["style_encoder"]), device)
        self.mapping, _ = _onnx_session(self.path.with_name(companions["mapping"]), device)
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


def _no_styles(name: str) -> str:
    return f"{name} takes no style reference or domain; models that do: {', '.join(_style_methods())}"


def load_styles(checkpoint: str | os.PathLike[str] | Path, device: str = "auto", precision: str = "fp32"
                ) -> TorchStyles | OnnxStyles:
    """The style source of a multi-domain run folder or .onnx export; a one-line error for other models."""
    path = Path(checkpoint)
    if path.suffix == ".onnx":
        return OnnxStyles(path, device)
    return TorchStyles(load_for_inference(path, device="cpu"), device, precision)


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
        index = _domain_index(model, target)
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
    index = _domain_index(model, domain)
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
