"""Training datasets: decode (once, cached), resize to the load size, random crop / resized crop / flip.

Every random choice of an item comes from a seed the sampler hands in with its index, derived from
(run seed, epoch, position). Data order and augmentation are therefore a pure function of the step: a resumed
run sees exactly the batches an uninterrupted one would, whatever the number of loader workers.
Items are uint8 tensors (3, H, W); the trainer moves them to the device and scales them to [-1, 1].
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset, Sampler

from i2i_cli.data.decoded_cache import DiskStore, MemoryStore
from i2i_cli.data.images import load_image, split_halves
from i2i_cli.errors import BadImageError, DataError

if TYPE_CHECKING:  # the layouts build these datasets: a run-time import would be circular
    from i2i_cli.data.layouts.base import Layout

MAX_BAD_FRACTION = 0.01


@dataclass
class Augment:
    size: int  # output crop size
    load_size: int = 0  # resize to this before cropping (0: resize straight to `size`)
    flip: bool = True
    random_resized_crop: float = 0.0  # probability of a RandomResizedCrop(scale 0.8-1, ratio 0.9-1.1) first
    random_zoom: float = 0.0  # single-image zoom-and-patch: each side zoomed by a factor in [1 / this, 1]

    @property
    def cache_size(self) -> int:
        return max(self.load_size, self.size)


def _resize(array: np.ndarray, size: int) -> np.ndarray:
    if array.shape[0] == size and array.shape[1] == size:
        return np.ascontiguousarray(array)
    return np.array(Image.fromarray(array).resize((size, size), Image.BICUBIC))


def _as_tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1).contiguous()


@dataclass
class Crop:
    """The random augmentation of one image (or of images that share it, like an A | B pair)."""

    rrc: tuple[int, int, int, int] | None  # (top, left, h, w) of a RandomResizedCrop on the cached image
    top: int
    left: int
    flip: bool


def plan_crop(spec: Augment, side: int, rng: torch.Generator) -> Crop:
    """Draw the augmentation parameters for a cached image of `side` pixels (the draw order is fixed)."""
    rrc = None
    if spec.random_resized_crop and torch.rand((), generator=rng).item() < spec.random_resized_crop:
        area = side * side * (0.8 + 0.2 * torch.rand((), generator=rng).item())
        ratio = math.exp(math.log(0.9) + (math.log(1.1) - math.log(0.9)) * torch.rand((), generator=rng).item())
        w = min(side, round(math.sqrt(area * ratio)))
        h = min(side, round(math.sqrt(area / ratio)))
        top = int(torch.randint(0, side - h + 1, (), generator=rng))
        left = int(torch.randint(0, side - w + 1, (), generator=rng))
        rrc = (top, left, h, w)
    top = left = 0
    if side > spec.size:
        top = int(torch.randint(0, side - spec.size + 1, (), generator=rng))
        left = int(torch.randint(0, side - spec.size + 1, (), generator=rng))
    flip = bool(spec.flip and torch.rand((), generator=rng).item() < 0.5)
    return Crop(rrc, top, left, flip)


def apply_crop(img: torch.Tensor, crop: Crop, size: int) -> torch.Tensor:
    """uint8 (3, S, S) on any device -> uint8 (3, size, size) with the planned crop and flip."""
    side = img.shape[-1]
    if crop.rrc is not None:
        top, left, h, w = crop.rrc
        img = F.interpolate(img[None, :, top : top + h, left : left + w].float(), size=(side, side), mode="bilinear",
                            align_corners=False, antialias=True)[0].round().clamp(0, 255).byte()
    img = img[:, crop.top : crop.top + size, crop.left : crop.left + size]
    if crop.flip:
        img = img.flip(-1)
    return img.contiguous()


def augment(images: list[torch.Tensor], spec: Augment, rng: torch.Generator) -> list[torch.Tensor]:
    """Apply the same random crop/flip to every image of `images` (uint8 (3, S, S) at cache size)."""
    crop = plan_crop(spec, images[0].shape[-1], rng)
    return [apply_crop(img, crop, spec.size) for img in images]


ImageKey = tuple[Path, str]  # (file, "whole" | "left" | "right")


@dataclass
class ItemPlan:
    """Which images an item uses and how each is augmented; executed on the CPU or on the GPU."""

    images: dict[str, tuple[ImageKey, int]]  # field -> (image, index into crops)
    crops: list[Crop]
    labels: dict[str, int]


class _Decoder:
    """Decodes and resizes files; keeps the uint8 result in a store (memory or disk, see decoded_cache) when
    there is one, so each file is decoded once."""

    def __init__(self, cache: bool) -> None:
        self.store: MemoryStore | DiskStore | None = MemoryStore() if cache else None

    def load(self, key: ImageKey, size: int) -> np.ndarray:
        if self.store is None:
            return decode_part(key, size)
        array = self.store.get(key)
        if array is None or array.shape[0] != size:
            array = decode_part(key, size)
            self.store.put(key, array)
        return array


def decode_part(key: ImageKey, size: int) -> np.ndarray:
    path, part = key
    array = load_image(path)
    if part != "whole":
        left, right = split_halves(array)
        if left.shape[1] == 0:
            raise BadImageError(path, "too narrow to hold A | B side by side")
        array = np.ascontiguousarray(left if part == "left" else right)
    return _resize(array, size)


class TrainDataset(Dataset):
    """Base: items are fetched with (index, seed); unreadable files are skipped and reported in the item.

    Subclasses only say how an item is planned (`plan`): which images, which augmentation. Executing a plan
    (decoding, cropping) is shared, so the GPU data path (DeviceBatches) produces the very same batches.
    """

    def __init__(self, layout: Layout, split: str, spec: Augment, cache: bool = True) -> None:
        self.layout = layout
        self.split = split
        self.spec = spec
        self.decoder = _Decoder(cache)

    def __len__(self) -> int:  # pragma: no cover - subclasses define it
        raise TypeError("abstract")

    def plan(self, index: int, rng: torch.Generator) -> ItemPlan:  # pragma: no cover
        raise TypeError("abstract")

    def all_keys(self) -> list[ImageKey]:  # pragma: no cover
        raise TypeError("abstract")

    def execute(self, plan: ItemPlan) -> dict[str, Any]:
        item: dict[str, Any] = {}
        for field_name, (key, crop_index) in plan.images.items():
            image = _as_tensor(self.decoder.load(key, self.spec.cache_size))
            item[field_name] = apply_crop(image, plan.crops[crop_index], self.spec.size)
        for field_name, label in plan.labels.items():
            item[field_name] = torch.tensor(label)
        return item

    def resolve_plan(self, index: int, seed: int, known_bad: set[ImageKey] | None = None) -> tuple[ItemPlan, list[ImageKey]]:
        """The plan for (index, seed), moving past items whose images are known to be unreadable."""
        bad: list[ImageKey] = []
        for attempt in range(min(len(self), 16)):
            rng = torch.Generator().manual_seed(seed + attempt)
            plan = self.plan((index + attempt) % len(self), rng)
            broken = [key for key, _ in plan.images.values() if known_bad and key in known_bad]
            if not broken:
                return plan, bad
            bad.extend(broken)
        raise DataError(f"{self.layout.root}: too many unreadable images in a row ({'; '.join(str(k[0]) for k in bad[:3])})")

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        index, seed = key
        return first_readable_item(len(self), index, seed, lambda i, rng: self.execute(self.plan(i, rng)),
                                   self.layout.root)


class AlignedDataset(TrainDataset):
    """pix2pix data: each file holds A | B side by side; both halves get the same crop and flip."""

    def __init__(self, layout: Layout, split: str, spec: Augment, direction: str = "AtoB", cache: bool = True):
        super().__init__(layout, split, spec, cache)
        self.files = layout.groups(split)["AB"]
        self.swap = direction == "BtoA"

    def __len__(self) -> int:
        return len(self.files)

    def all_keys(self) -> list[ImageKey]:
        return [(p, part) for p in self.files for part in ("left", "right")]

    def plan(self, index: int, rng: torch.Generator) -> ItemPlan:
        path = self.files[index]
        crop = plan_crop(self.spec, self.spec.cache_size, rng)
        a, b = (path, "left"), (path, "right")
        if self.swap:
            a, b = b, a
        return ItemPlan({"A": (a, 0), "B": (b, 0)}, [crop], {})


class UnalignedDataset(TrainDataset):
    """CycleGAN data: A[i] with a random B; each side cropped and flipped independently.

    An aligned dataset can be used too: its left halves are A and right halves B, paired at random.
    """

    def __init__(self, layout: Layout, split: str, spec: Augment, direction: str = "AtoB", cache: bool = True):
        super().__init__(layout, split, spec, cache)
        self.a: list[ImageKey]
        self.b: list[ImageKey]
        self.a, self.b = layout.sides(split)
        if direction == "BtoA":
            self.a, self.b = self.b, self.a

    def __len__(self) -> int:
        return max(len(self.a), len(self.b))

    def all_keys(self) -> list[ImageKey]:
        return self.a + self.b

    def plan(self, index: int, rng: torch.Generator) -> ItemPlan:
        key_a = self.a[index % len(self.a)]
        key_b = self.b[int(torch.randint(0, len(self.b), (), generator=rng))]
        crop_a = plan_crop(self.spec, self.spec.cache_size, rng)
        crop_b = plan_crop(self.spec, self.spec.cache_size, rng)
        return ItemPlan({"A": (key_a, 0), "B": (key_b, 1)}, [crop_a, crop_b], {})


class DomainDataset(TrainDataset):
    """StarGAN v2 data: a source image and its domain, plus two references of a random target domain."""

    def __init__(self, layout: Layout, split: str, spec: Augment, domains: list[str], cache: bool = True):
        super().__init__(layout, split, spec, cache)
        groups = layout.groups(split)
        self.domains = domains
        self.files = [(p, domains.index(d)) for d in domains for p in groups.get(d, [])]
        self.by_domain = {domains.index(d): groups.get(d, []) for d in domains}
        if not self.files:
            raise DataError(f"{layout.root}: no images in the {split} split")

    def __len__(self) -> int:
        return len(self.files)

    def all_keys(self) -> list[ImageKey]:
        return [(p, "whole") for p, _ in self.files]

    def plan(self, index: int, rng: torch.Generator) -> ItemPlan:
        path, label = self.files[index]
        ref_path, ref_label = self.files[int(torch.randint(0, len(self.files), (), generator=rng))]
        same = self.by_domain[ref_label]
        ref2_path = same[int(torch.randint(0, len(same), (), generator=rng))]
        crops = [plan_crop(self.spec, self.spec.cache_size, rng) for _ in range(3)]
        images = {"x": ((path, "whole"), 0), "ref": ((ref_path, "whole"), 1), "ref2": ((ref2_path, "whole"), 2)}
        return ItemPlan(images, crops, {"y": label, "y_ref": ref_label})


def first_readable_item(length: int, index: int, seed: int, make: Callable[[int, torch.Generator], dict[str, Any]],
                        root: Path) -> dict[str, Any]:
    """`make(index, rng)`, moving on to the next items (with the next seeds) past unreadable images; the item's
    "bad" lists what was skipped on the way, so the trainer can report and count it."""
    bad: list[str] = []
    for attempt in range(min(length, 16)):
        rng = torch.Generator().manual_seed(seed + attempt)
        try:
            item = make((index + attempt) % length, rng)
        except BadImageError as exc:
            bad.append(f"{exc.path}: {exc.reason}")
            continue
        item["bad"] = bad
        return item
    raise DataError(f"{root}: too many unreadable images in a row ({'; '.join(bad[:3])})")


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    batch: dict[str, Any] = {"bad": [b for item in items for b in item["bad"]]}
    for key in items[0]:
        if key != "bad":
            batch[key] = torch.stack([item[key] for item in items])
    return batch


def item_seed(seed: int, epoch: int, position: int) -> int:
    return (seed * 1_000_003 + epoch * 9_176_467 + position * 7919) % (2**62)


class StepSampler(Sampler[list[tuple[int, int]]]):
    """Yields the batches of steps start_step, start_step+1, ...: a reshuffle per epoch, seeded.

    With a world of several processes, each rank takes its share of every global batch.
    """

    def __init__(self, n_items: int, batch_size: int, seed: int, start_step: int, total_steps: int,
                 rank: int = 0, world_size: int = 1) -> None:
        self.n = n_items
        self.batch = batch_size
        self.seed = seed
        self.start = start_step
        self.total = total_steps
        self.rank = rank
        self.world = world_size
        self.steps_per_epoch = max(1, n_items // batch_size)

    def __len__(self) -> int:
        return max(0, self.total - self.start)

    def batch_for_step(self, step: int) -> list[tuple[int, int]]:
        epoch, within = divmod(step, self.steps_per_epoch)
        perm = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 7 + epoch))
        positions = [(within * self.batch + i) % self.n for i in range(self.batch)]
        chosen = [(int(perm[p]), item_seed(self.seed, epoch, p)) for p in positions]
        return chosen[self.rank :: self.world]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for step in range(self.start, self.total):
            yield self.batch_for_step(step)
