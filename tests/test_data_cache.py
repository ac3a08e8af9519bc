"""Decoded images kept in memory or on disk: chosen by size, shared by processes, reused, never wrong."""

from __future__ import annotations

import os
import pickle
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from i2i_cli.data import decoded_cache
from i2i_cli.data.decoded_cache import DiskStore, MemoryStore, choose_store, signature
from i2i_cli.engine.trainer import TrainOptions, train
from i2i_cli.errors import ConfigError
from tests.conftest import tiny_config


def _keys(tmp_path: Path, n: int = 3) -> list[tuple[Path, str]]:
    keys = []
    for i in range(n):
        Image.fromarray(np.full((8, 8, 3), i, dtype=np.uint8)).save(tmp_path / f"{i}.png")
        keys.append((tmp_path / f"{i}.png", "whole"))
    return keys


def test_auto_chooses_memory_then_disk_then_nothing_by_size(tmp_path, monkeypatch):
    keys = _keys(tmp_path)
    store, _ = choose_store("auto", keys, 16, tmp_path / "cache")
    assert isinstance(store, MemoryStore)
    monkeypatch.setattr(decoded_cache, "memory_bytes", lambda: 1000)  # 3 x 16x16x3 no longer fits a quarter
    store, message = choose_store("auto", keys, 16, tmp_path / "cache")
    assert isinstance(store, DiskStore) and "on disk" in message and store.data_path.parent == tmp_path / "cache"
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(decoded_cache.shutil, "disk_usage", lambda _: usage(10, 10, 0))
    store, message = choose_store("auto", keys, 16, tmp_path / "cache")
    assert store is None and "every step decodes" in message
    assert choose_store("off", keys, 16, tmp_path / "cache")[0] is None
    assert isinstance(choose_store("disk", keys, 16, tmp_path / "cache")[0], DiskStore)  # asked for: no size check
    with pytest.raises(ConfigError, match="--data-cache sometimes"):
        choose_store("sometimes", keys, 16, tmp_path / "cache")


def test_disk_store_slots_persist_across_processes_and_runs(tmp_path):
    keys = _keys(tmp_path)
    name = signature(keys, 8)
    store = DiskStore(keys, 8, tmp_path / "cache", name)
    assert store.get(keys[1]) is None
    image = np.random.default_rng(0).integers(0, 255, (8, 8, 3), dtype=np.uint8)
    store.put(keys[1], image)
    worker = pickle.loads(pickle.dumps(store))  # what a data-loader worker receives: no mapping, reopened lazily
    assert worker._data is None and np.array_equal(worker.get(keys[1]), image)
    later = DiskStore(keys, 8, tmp_path / "cache", name)  # a later run on the same files
    assert np.array_equal(later.get(keys[1]), image) and later.get(keys[0]) is None
    os.utime(keys[1][0], ns=(1, 1))  # a file changed: its set gets another cache file
    assert signature(keys, 8) != name and signature(keys, 16) != name


def test_training_from_the_disk_cache_equals_training_from_memory(datasets, tmp_path, monkeypatch):
    monkeypatch.setenv("I2I_HOME", str(tmp_path / "home"))
    config = tiny_config("pix2pix")
    losses = {}
    for mode in ("memory", "disk", "disk", "off"):  # the second disk run reads what the first one wrote
        result = train("pix2pix", config, TrainOptions(data=datasets["aligned"], out=tmp_path / f"{mode}{len(losses)}",
                                                       steps=3, device="cpu", data_cache=mode, log_every=1))
        losses[f"{mode}{len(losses)}"] = result.final_losses
    assert losses["memory0"] == losses["disk1"] == losses["disk2"] == losses["off3"]
    files = list((tmp_path / "home" / "cache" / "decoded").glob("*.u8"))
    flags = list((tmp_path / "home" / "cache" / "decoded").glob("*.flags"))
    assert len(files) == 1 and len(flags) == 1 and np.fromfile(flags[0], dtype=np.uint8).sum() > 0
