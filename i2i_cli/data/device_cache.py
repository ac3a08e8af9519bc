"""The GPU data path: every training image decoded once, kept as uint8 on the GPU, cropped and flipped there.

Batches are exactly those of the CPU path (the same ItemPlans, see datasets.py), so switching paths or
resuming on another machine changes nothing but speed. Decoding runs once, in a thread pool, at start-up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from i2i_cli.data.datasets import ImageKey, StepSampler, TrainDataset, apply_crop, decode_part
from i2i_cli.errors import BadImageError


def cache_bytes(dataset: TrainDataset) -> int:
    side = dataset.spec.cache_size
    return len(dataset.all_keys()) * 3 * side * side


def fits_on_device(dataset: TrainDataset, device: torch.device, fraction: float = 0.25) -> bool:
    """Whether the decoded dataset takes less than `fraction` of the GPU's free memory."""
    free, _ = torch.cuda.mem_get_info(device)
    return cache_bytes(dataset) < fraction * free


class DeviceBatches:
    def __init__(self, dataset: TrainDataset, sampler: StepSampler, device: torch.device, threads: int = 8,
                 progress: Callable[[int, int], None] | None = None) -> None:
        self.dataset = dataset
        self.sampler = sampler
        self.device = device
        self.bad: set[ImageKey] = set()
        self.bad_reasons: dict[ImageKey, str] = {}
        keys = sorted(set(dataset.all_keys()))
        side = dataset.spec.cache_size
        self.slot = {key: i for i, key in enumerate(keys)}
        self.images = torch.empty((len(keys), 3, side, side), dtype=torch.uint8, device=device)

        def decode(key: ImageKey) -> tuple[ImageKey, np.ndarray | None]:
            try:
                return key, decode_part(key, side)
            except BadImageError as exc:
                self.bad_reasons[key] = exc.reason
                return key, None

        with ThreadPoolExecutor(max_workers=threads) as pool:
            for done, (key, array) in enumerate(pool.map(decode, keys), start=1):
                if array is None:
                    self.bad.add(key)
                else:
                    self.images[self.slot[key]] = torch.from_numpy(array).permute(2, 0, 1).to(device)
                if progress:
                    progress(done, len(keys))

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        size = self.dataset.spec.size
        for chosen in self.sampler:
            plans, bad = [], []
            for index, seed in chosen:
                plan, skipped = self.dataset.resolve_plan(index, seed, self.bad)
                plans.append(plan)
                bad.extend(f"{key[0]}: {self.bad_reasons.get(key, 'unreadable')}" for key in skipped)
            batch: dict[str, Any] = {"bad": bad}
            for field_name in plans[0].images:
                batch[field_name] = torch.stack([
                    apply_crop(self.images[self.slot[plan.images[field_name][0]]],
                               plan.crops[plan.images[field_name][1]], size)
                    for plan in plans
                ])
            for field_name in plans[0].labels:
                batch[field_name] = torch.tensor([plan.labels[field_name] for plan in plans], device=self.device)
            yield batch
