"""`i2i translate --engine ray`: a Ray Data actor pool runs the same translator, tiling and naming code as the
local engine, on local folders or object-store prefixes. Outputs are planned (names, collisions, what exists)
on the driver before any work; each actor reads, translates and writes its rows itself, whole or not at all,
so a task that Ray retries after its actor died rewrites the same files and leaves nothing half-written."""

from __future__ import annotations

import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from i2i_cli.data.images import decode_image, encode_image
from i2i_cli.errors import BadImageError, ConfigError, I2IError
from i2i_cli.fsutil import check_output_folder, folds_case, remove_stale_temporaries
from i2i_cli.inference import (
    ProgressFn,
    TranslateOptions,
    TranslateResult,
    check_input_size,
    check_tile_options,
    load_translator,
    mask_path,
    refuse_collisions,
    relative_output_names,
    resize_shorter_side,
    resolve_checkpoint,
    restore_size,
    run_array,
    run_masks,
)
from i2i_cli.ray_engine import storage
from i2i_cli.ray_engine.cluster import (
    RayOptions,
    actor_count,
    connect,
    disconnect,
    pool_arguments,
    require_ray,
)
from i2i_cli.ray_engine.storage import Location

Todo = list[tuple[PurePosixPath, PurePosixPath]]


def translate_on_ray(source: str | os.PathLike[str], out: str | os.PathLike[str],
                     checkpoint: str | os.PathLike[str] | None, options: TranslateOptions | None = None,
                     ray_options: RayOptions | None = None, progress: ProgressFn | None = None) -> TranslateResult:
    """Translate every image under `source` (a folder, an image, or a URL prefix) into `out` on a Ray cluster,
    named exactly as the local engine names them; bad files are listed in the result."""
    require_ray()
    opts, ray_opts = options or TranslateOptions(), ray_options or RayOptions()
    start = time.time()
    path, note = resolve_checkpoint(checkpoint)
    translator = _checked_translator(path, opts)
    src, files = storage.as_folder(storage.location(source))
    if not files:
        raise I2IError(f"{source}: no images found (looked recursively for png, jpg, bmp, tif, webp...)")
    dst = storage.location(out)
    todo, skipped = plan_outputs(src, files, dst, opts, translator)
    info = connect(ray_opts)
    try:
        actors = actor_count(ray_opts, info)
        result = TranslateResult(skipped=skipped, engine="ray", workers=actors)
        result.device = f"Ray ({info.address}): {actors} actor(s), {'GPU' if info.gpus >= 1 else 'CPU'}"
        result.note = "; ".join(n for n in (note, _videos_left(src)) if n)
        if todo:
            _run(todo, src, dst, str(path), opts, ray_opts, actors, info, result, progress)
    finally:
        disconnect(info)
    result.seconds = time.time() - start
    return result


def _videos_left(src: Location) -> str:
    """Video files in a local IN are the local engine's (frames in order, audio copied): said, not translated."""
    if not src.local or not Path(src.root).is_dir():
        return ""
    from i2i_cli.video import list_videos

    videos = list_videos(Path(src.root))
    return f"{len(videos)} video file(s) left alone: translate them with --engine local" if videos else ""


def _checked_translator(path: Path, opts: TranslateOptions) -> Any:
    """The translator on the driver's CPU, for the checks made before the work (tiles, masks); multi-domain
    models are refused (their styles run on the local engine only)."""
    from i2i_cli.engine.checkpoint import load_for_inference
    from i2i_cli.inference import OnnxTranslator, TorchTranslator, onnx_session
    from i2i_cli.models.base import StyleSource

    refusal = ConfigError(f"{path}: a multi-domain model (styles) translates with --engine local only for now")
    if path.suffix == ".onnx":
        session, metadata = onnx_session(path, "cpu", precision=opts.precision)  # its refusals, before the work
        if "companions" in metadata:
            raise refusal
        translator: Any = OnnxTranslator(path, opts.direction, "cpu", session=session, metadata=metadata)
    else:
        loaded = load_for_inference(path, device="cpu")
        if isinstance(loaded.method, StyleSource):
            raise refusal
        translator = TorchTranslator(loaded, opts.direction, "cpu", "fp32")
    if opts.save_masks and getattr(translator, "mask_net", None) is None:
        raise ConfigError("--save-masks: this model has no attention masks (agcyclegan has them)")
    check_tile_options(translator, opts.tile, opts.overlap, opts.blend)
    return translator


def plan_outputs(src: Location, files: list[PurePosixPath], dst: Location, opts: TranslateOptions,
                 translator: Any = None) -> tuple[Todo, int]:
    """(input, output) pairs to translate and the number skipped, by the local engine's rules, before any work:
    OUT not inside IN, a writable local OUT, no two inputs (or masks) on one output, existing outputs skipped
    (--skip-existing), replaced (--overwrite) or refused."""
    if storage.is_inside(dst, src):
        raise ConfigError(f"{dst.url}: is {'the input folder' if dst.root == src.root else 'inside the input folder'}"
                          f" {src.url}; choose an OUT outside it")
    if dst.local:
        check_output_folder(Path(dst.root), "OUT")
        remove_stale_temporaries(Path(dst.root))
    names = relative_output_names(list(files), opts.tag)
    claims = [(src.show(file), Path(dst.show(target))) for file, target in names.items()]
    if opts.save_masks:
        claims += [(f"{src.show(file)} (mask)", Path(dst.show(mask_path(target)))) for file, target in names.items()]
    refuse_collisions(claims, fold_case=dst.local and folds_case(dst.root))
    existing = {str(p) for p in storage.list_files(dst, images_only=False)}
    todo: Todo = []
    skipped = 0
    for file in files:
        target = names[file]
        if str(target) in existing and not opts.overwrite:
            if not opts.skip_existing:
                raise I2IError(f"{dst.show(target)} already exists: pass --overwrite to replace it (or keep "
                               "--skip-existing)")
            skipped += 1
            continue
        todo.append((file, target))
    return todo, skipped


def _run(todo: Todo, src: Location, dst: Location, checkpoint: str, opts: TranslateOptions, ray_opts: RayOptions,
         actors: int, info: Any, result: TranslateResult, progress: ProgressFn | None) -> None:
    """The rows through the actor pool; what comes back (written or bad) into `result` as it streams."""
    import ray

    rows = [{"source": str(file), "target": str(target)} for file, target in todo]
    blocks = min(len(rows), max(4 * actors, len(rows) // max(1, 8 * opts.batch_size)))
    dataset = ray.data.from_items(rows, override_num_blocks=blocks).map_batches(
        TranslateActor, batch_size=opts.batch_size, batch_format="numpy",
        fn_constructor_kwargs={"checkpoint": checkpoint, "source": src, "out": dst, "options": opts,
                               "threads": max(1, int(ray_opts.cpus_per_actor)), "fail_once": ray_opts.fail_once},
        **pool_arguments(actors, ray_opts, info))
    done = 0
    try:
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            for file, target, problem in zip(batch["source"], batch["target"], batch["problem"]):
                if problem:
                    result.bad.append((src.show(str(file)), str(problem)))
                else:
                    shown = dst.show(str(target))
                    result.written.append(Path(shown) if dst.local else shown)
            done += len(batch["source"])
            if progress:
                progress(done, len(rows))
    except ray.exceptions.RayError as exc:
        cause = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise I2IError(f"the Ray job stopped: {cause}; outputs written so far are complete (run again to "
                       "finish: existing outputs are skipped)") from exc


class TranslateActor:
    """One Ray actor: the model loaded once; each batch of rows read, translated and written (threads overlap
    reading, decoding and encoding with the network, as the local engine's threads do)."""

    def __init__(self, checkpoint: str, source: Location, out: Location, options: TranslateOptions, threads: int,
                 fail_once: str | None = None) -> None:
        import torch

        torch.set_num_threads(threads)
        self.translator, _ = load_translator(checkpoint, options.direction, options.device, options.precision)
        self.source, self.out, self.opts, self.fail_once = source, out, options, fail_once
        self.pool = ThreadPoolExecutor(max_workers=max(2, options.threads))
        self.batches = 0

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[str]]:
        sources, targets = [str(s) for s in batch["source"]], [str(t) for t in batch["target"]]
        loaded = list(self.pool.map(self._load, sources))
        problems = ["" if isinstance(item, tuple) else item for item in loaded]
        good = [(i, item) for i, item in enumerate(loaded) if isinstance(item, tuple)]
        writes = []
        for group in _same_size_groups(good):
            arrays = [array for _, (array, _) in group]
            outputs = run_array(self.translator, arrays, self.opts.tile, self.opts.overlap, self.opts.blend)
            masks = run_masks(self.translator, arrays) if self.opts.save_masks else []
            for k, ((i, (_, size)), output) in enumerate(zip(group, outputs)):
                target = PurePosixPath(targets[i])
                writes.append(self.pool.submit(self._write, output, target, size))
                if masks:
                    writes.append(self.pool.submit(self._write, masks[k], mask_path(target), size))
                self._maybe_die(writes)
        for write in writes:
            write.result()
        self.batches += 1
        return {"source": sources, "target": targets, "problem": problems}

    def _load(self, relative: str) -> tuple[np.ndarray, tuple[int, int] | None] | str:
        """(the array to translate, the size to restore or None), or the reason the file is bad."""
        name = self.source.show(relative)
        try:
            try:
                data = storage.read_bytes(self.source, relative)
            except OSError as exc:
                raise BadImageError(name, f"cannot read ({exc.strerror or exc})") from exc
            decoded = decode_image(data, name, max_pixels=self.opts.max_pixels)
            array = resize_shorter_side(decoded, self.opts.resize)
            check_input_size(array, Path(relative), self.translator, self.opts.tile)
        except BadImageError as exc:
            return exc.reason
        keep = (decoded.shape[1], decoded.shape[0]) if self.opts.keep_size and self.opts.resize else None
        return array, keep

    def _write(self, array: np.ndarray, target: PurePosixPath, size: tuple[int, int] | None) -> None:
        storage.write_bytes(self.out, target, encode_image(restore_size(array, size), target.suffix))

    def _maybe_die(self, writes: list[Future[None]]) -> None:
        """The test hook: the first actor past its first batch to find the marker absent creates it and exits
        at once after its first output of the batch has landed, in the middle of a task, as a lost machine."""
        if self.fail_once is None or self.batches < 1:
            return
        try:
            with open(self.fail_once, "x"):
                pass
        except FileExistsError:
            return
        writes[0].result()
        os._exit(1)


def _same_size_groups(items: list[tuple[int, tuple[np.ndarray, Any]]]) -> list[list[tuple[int, Any]]]:
    """Consecutive items of one array shape: the batches the network takes in one pass (as the local engine)."""
    groups: list[list[tuple[int, Any]]] = []
    for item in items:
        if groups and groups[-1][0][1][0].shape == item[1][0].shape:
            groups[-1].append(item)
        else:
            groups.append([item])
    return groups
