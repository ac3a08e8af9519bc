"""Where decoded training images are kept so that each file is decoded once: in memory, or on disk.

A training set is decoded into uint8 squares of the cache size (e.g. 286 x 286 x 3). When they fit in a
quarter of the RAM (shared by the data loader's processes) they stay in memory; otherwise they go into one
memory-mapped file under $I2I_HOME/cache/decoded/, one fixed-size slot per image and a flag per slot, which
every data-loader process fills and reads. The file's name is a hash of the image files (path, size, mtime)
and the slot size, so a later run (or a resume) on the same data finds it already filled; an edited dataset
gets a new file. Delete the folder to reclaim the space.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

CACHE_MODES = ("auto", "memory", "disk", "off")
MEMORY_FRACTION = 0.25  # of the machine's RAM, for all data-loader processes together
DISK_MARGIN = 2 * 2**30  # free space left on the cache's disk after the file


def memory_bytes() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 16 * 2**30


def cache_budget_bytes(processes: int = 1, fraction: float = MEMORY_FRACTION) -> int:
    """How much decoded data one process may keep in memory."""
    return int(memory_bytes() * fraction / max(1, processes))


class MemoryStore:
    """Decoded images in a dict of this process (each data-loader worker holds its own)."""

    kind = "memory"

    def __init__(self) -> None:
        self.arrays: dict[Any, np.ndarray] = {}

    def get(self, key: Any) -> np.ndarray | None:
        return self.arrays.get(key)

    def put(self, key: Any, array: np.ndarray) -> None:
        self.arrays[key] = array


class DiskStore:
    """Decoded (side, side, 3) uint8 images in slots of one memory-mapped file shared by all processes."""

    kind = "disk"

    def __init__(self, keys: Sequence[Any], side: int, folder: Path, signature: str) -> None:
        self.slot = {key: i for i, key in enumerate(keys)}
        self.side = side
        self.data_path = folder / f"{signature}.u8"
        self.flags_path = folder / f"{signature}.flags"
        self._data: np.memmap | None = None
        self._flags: np.memmap | None = None
        if not (self.data_path.is_file() and self.flags_path.is_file()):
            self._create(folder, len(keys))

    def _create(self, folder: Path, count: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for path, size in ((self.data_path, count * self.side * self.side * 3), (self.flags_path, count)):
            temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            with open(temporary, "wb") as handle:
                handle.truncate(max(1, size))  # sparse: disk blocks are used as slots are filled
            os.replace(temporary, path)

    def _open(self) -> tuple[np.memmap, np.memmap]:
        if self._data is None or self._flags is None:  # opened per process (a memmap does not survive pickling)
            count = len(self.slot)
            self._data = np.memmap(self.data_path, np.uint8, "r+", shape=(count, self.side, self.side, 3))
            self._flags = np.memmap(self.flags_path, np.uint8, "r+", shape=(count,))
        return self._data, self._flags

    def get(self, key: Any) -> np.ndarray | None:
        data, flags = self._open()
        slot = self.slot.get(key)
        if slot is None or not flags[slot]:
            return None
        return np.array(data[slot])

    def put(self, key: Any, array: np.ndarray) -> None:
        slot = self.slot.get(key)
        if slot is None or array.shape != (self.side, self.side, 3):
            return
        data, flags = self._open()
        data[slot] = array
        flags[slot] = 1  # after the pixels: a reader never sees a flagged slot half-written

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_data": None, "_flags": None}


def signature(keys: Sequence[tuple[Path, str]], side: int) -> str:
    """A name for the decoded form of these files at this size: changes when any file does."""
    entries: list[Any] = [side]
    for path, part in keys:
        stat = Path(path).stat() if Path(path).exists() else None
        entries.append([str(Path(path).resolve()), part, stat.st_size if stat else -1, stat.st_mtime_ns if stat else -1])
    return hashlib.sha1(json.dumps(entries).encode()).hexdigest()[:20]


def choose_store(mode: str, keys: Sequence[tuple[Path, str]], side: int, folder: Path,
                 processes: int = 1) -> tuple[MemoryStore | DiskStore | None, str]:
    """The store for `mode` (auto: memory when the set fits the RAM budget, else disk when the disk has room,
    else none), and a line saying what was chosen and why."""
    if mode not in CACHE_MODES:
        from i2i_cli.errors import ConfigError

        raise ConfigError(f"--data-cache {mode}: choose {', '.join(CACHE_MODES)}")
    needed = len(keys) * side * side * 3
    size = f"{needed / 2**30:.1f} GiB"
    if mode == "off":
        return None, "decoded images are not kept (--data-cache off): every step decodes its files"
    if mode == "memory" or (mode == "auto" and needed <= cache_budget_bytes(processes)):
        return MemoryStore(), f"decoded images kept in memory ({size})"
    free = shutil.disk_usage(folder if folder.exists() else _existing_parent(folder)).free
    if mode == "disk" or free > needed + DISK_MARGIN:
        store = DiskStore(keys, side, folder, signature(keys, side))
        return store, f"decoded images ({size}, more than the memory budget) kept on disk in {store.data_path}"
    return None, (f"decoded images ({size}) fit neither a quarter of the RAM nor the free space of {folder}: every "
                  "step decodes its files (raise --workers to keep up, or free space there)")


def _existing_parent(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path
