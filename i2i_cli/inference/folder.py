"""The local engine: translate a folder on this machine, decoding, running and encoding overlapped in threads,
nothing half-written (torchrun processes each take every WORLD_SIZE-th file)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from i2i_cli.data.images import (
    load_image,
    save_image,
    skipped_links,
)
from i2i_cli.errors import BadImageError
from i2i_cli.fsutil import OutputExistsError, remove_stale_temporaries
from i2i_cli.inference.naming import (
    check_translation,
    input_files,
    mask_path,
    output_names,
    skip_existing_output,
)
from i2i_cli.inference.options import ProgressFn, TranslateOptions, TranslateResult
from i2i_cli.inference.tiling import check_input_size, resize_shorter_side, restore_size, run_array, run_masks


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
    check_translation(src, dst, opts, translator, (opts.tag,))
    files = input_files(src)
    names = output_names(src, files, dst, opts.tag)
    start = time.time()
    result = TranslateResult(device=str(getattr(translator, "device", "")))
    result.bad += skipped_links(src)  # listed, not silently passed over
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
        array = resize_shorter_side(decoded, opts.resize)
        check_input_size(array, path, translator, opts.tile)
        return array

    def write(array: np.ndarray, target: Path, size: tuple[int, int] | None) -> Path | None:
        """Encode `array` to `target`; the target when another process wrote it first (skipped, its work shared)."""
        try:
            save_image(restore_size(array, size), target, overwrite=opts.overwrite)
        except OutputExistsError:
            if not opts.skip_existing:
                raise
            return target
        return None

    def settle(future: Future[Path | None]) -> None:
        shared = future.result()
        if shared is not None and shared in result.written:
            result.written.remove(shared)
            result.skipped += 1

    done = 0
    # encoding overlaps the network; a bounded queue keeps a slow disk from piling up decoded outputs in memory
    queue_limit = 2 * max(1, opts.threads) + opts.batch_size
    with ThreadPoolExecutor(max_workers=max(1, opts.threads)) as writers:
        pending: list[Future[Path | None]] = []
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
                    settle(pending.pop(0))
            done += len(group)
            if progress:
                progress(done, len(todo))
        for future in pending:
            settle(future)
