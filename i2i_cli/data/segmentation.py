"""Segmentation training data: real photos and their label maps, augmented together.

Two layouts: an aligned dataset whose files hold photo | label side by side (pix2pix's cityscapes; which half
is the label map is `label_side`, or found by looking at the colours), and images/ + labels/ folders
(optionally under train/ val/), matched by file name with the usual suffixes stripped (_leftImg8bit,
_gtFine_labelIds, ...). Label maps are decoded by the FCN-score's LabelDecoder: Cityscapes colour maps and
labelIds out of the box, class-id PNGs, or colour maps of a palette file.

Augmentation follows fyu/drn segment.py: optional random scale (photo bicubic, label nearest), a random crop
(centred padding where the image is smaller: the photo reflected, labels ignored), a random horizontal flip; the photo and its
label map always get the same geometry. Every random choice comes from the item's seed (exact resume).
Items: {"A": uint8 (3, h, w), "label": int64 (h, w) with IGNORE = 255}; decoded pairs are cached (labels
as uint8) up to a memory budget.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from i2i_cli.data.datasets import Augment, first_readable_item
from i2i_cli.data.decoded_cache import cache_budget_bytes
from i2i_cli.data.images import load_image, load_label_image, split_halves
from i2i_cli.data.labels import IGNORE, LabelDecoder, colors_to_classes, match_labels, read_palette
from i2i_cli.errors import BadImageError, ConfigError, DataError
from i2i_cli.models.base import SegmentationData

if TYPE_CHECKING:  # the layouts build these datasets: a run-time import would be circular
    from i2i_cli.data.layouts.base import Layout

EXACT_COLOUR = 12.0  # RGB distance under which a pixel "is" a palette colour (JPEG noise inside regions)
MAX_UNKNOWN_COLOURS = 0.2  # more pixels than this far from every palette colour: the palette is wrong


def resolve_palette(config: Any) -> Any:
    """A segmenter config with its `palette` file read into `palette_colors` (flat r, g, b per class)."""
    if not config.palette or config.palette_colors:
        return config
    palette = read_palette(config.palette)
    if len(palette) != config.n_classes:
        raise ConfigError(f"--set palette={config.palette}: {len(palette)} colours, but n_classes={config.n_classes}; "
                          f"pass --set n_classes={len(palette)}")
    return dataclasses.replace(config, palette_colors=tuple(int(v) for v in palette.ravel()))


STATISTICS_IMAGES = 500  # fyu/drn compute_mean_std.py: 500 shuffled training photos


def resolve_normalization(config: Any, layout: Layout) -> Any:
    """A segmenter config with `mean` / `std` filled in as fyu/drn does: DIR/info.json when the dataset has one,
    else measured on (up to 500 of) its training photos. Values already set are kept."""
    if config.mean and config.std:
        return config
    info = layout.root / "info.json"
    if info.is_file():
        try:
            values = json.loads(info.read_text())
            mean, std = tuple(float(v) for v in values["mean"]), tuple(float(v) for v in values["std"])
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{info}: not a fyu/drn info.json ({{\"mean\": [r, g, b], \"std\": [r, g, b]}}: {exc}); "
                            "fix or remove it") from None
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise DataError(f"{info}: mean and std need 3 values each, std > 0; fix or remove it")
    else:
        spec = Augment(config.size, 0, False, False)
        wanted = config.data_spec().segmentation
        labels = SegmentationData(label_side=wanted.label_side, label_format=wanted.label_format,
                                  palette_colors=wanted.palette_colors, n_classes=wanted.n_classes)
        mean, std = photo_statistics(SegmentationDataset(layout, "train", spec, labels, cache=False))
    return dataclasses.replace(config, mean=config.mean or mean, std=config.std or std)


def prepare_segmenter_config(config: Any, layout: Layout) -> Any:
    """A config whose data spec asks for photos + label maps with its palette colours and input mean / std
    filled in (resolve_palette, resolve_normalization); any other config as it is."""
    if config.data_spec().segmentation is None:
        return config
    return resolve_normalization(resolve_palette(config), layout)


def photo_statistics(dataset: SegmentationDataset, limit: int = STATISTICS_IMAGES) -> tuple[tuple[float, ...], ...]:
    """Per-channel mean and standard deviation of the photos' pixels in [0, 1] (population std, as np.std),
    over `limit` photos drawn with a fixed seed."""
    order = np.random.default_rng(0).permutation(len(dataset))[:limit]
    total, squares, count = np.zeros(3), np.zeros(3), 0
    for index in order:
        try:
            photo = dataset.read_photo(int(index))
        except BadImageError:
            continue
        pixels = photo.reshape(-1, 3).astype(np.float64) / 255
        total += pixels.sum(0)
        squares += (pixels ** 2).sum(0)
        count += len(pixels)
    if count == 0:
        raise DataError(f"{dataset.layout.root}: no readable training photo to measure the mean and std on")
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean ** 2, 0))
    return tuple(round(float(v), 6) for v in mean), tuple(round(float(v), 6) for v in std)


def decoder_for(label_format: str, palette_colors: tuple[int, ...] | list[int]) -> LabelDecoder:
    palette = np.array(palette_colors, dtype=np.uint8).reshape(-1, 3) if palette_colors else None
    return LabelDecoder(label_format, palette)


def known_colour_fraction(rgb: np.ndarray, colours: np.ndarray, tolerance: float) -> float:
    """Fraction of pixels within `tolerance` of one of `colours`."""
    hits = colors_to_classes(rgb, colours, np.zeros(len(colours), dtype=np.int64), tolerance)
    return float((hits != IGNORE).mean())


def _grey(array: np.ndarray) -> bool:
    return bool((array[..., 0] == array[..., 1]).all() and (array[..., 1] == array[..., 2]).all())


def choose_label_side(files: list[Path], decoder: LabelDecoder) -> str:
    """Which half of photo | label files is the label map: the one whose pixels are palette colours."""
    colours = decoder.colors()
    score = {"left": 0.0, "right": 0.0}
    for file in files[:4]:
        try:
            array = load_image(file)
        except BadImageError:
            continue
        for side, part in zip(("left", "right"), split_halves(array)):
            score[side] += 1.0 if _grey(part) else known_colour_fraction(part, colours, EXACT_COLOUR)
    side = max(score, key=lambda k: score[k])
    if score[side] <= 2 * score["right" if side == "left" else "left"] or score[side] < 0.3:
        raise DataError(f"{files[0].parent}: cannot tell which half of the photo | label images is the label map "
                        "(neither is mostly palette colours); pass --set label_side=left or right "
                        "(and --set palette=FILE for a non-Cityscapes palette)")
    return side


class SegmentationDataset(torch.utils.data.Dataset):
    """Photos and label maps of one split; items fetched with (index, seed) like the other training sets."""

    device_cacheable = False  # labels are not images: the trainer's GPU image cache does not apply

    def __init__(self, layout: Layout, split: str, spec: Augment, data: SegmentationData,
                 cache: bool = True) -> None:
        self.layout = layout
        self.crop = (int(data.crop_height or spec.size), spec.size)  # (h, w)
        self.load = (int(data.load_height), int(data.load_width))
        self.flip = spec.flip
        self.random_scale = float(data.random_scale)
        self.n_classes = int(data.n_classes)
        self.decoder = decoder_for(data.label_format, data.palette_colors)
        self.cache: dict[int, tuple[np.ndarray, np.ndarray]] | None = {} if cache else None
        self.cache_budget = cache_budget_bytes()
        self.cached_bytes = 0
        groups = layout.groups(split)
        if not layout.side_by_side:  # photos and label maps in their own folders
            self.pairs = self._matched(layout.root / split if (layout.root / split).is_dir() else layout.root)
            self.side = ""
        else:
            files = groups["AB"]
            self.pairs = [(f, f) for f in files]
            side = data.label_side
            if side not in ("auto", "left", "right"):
                raise ConfigError(f"--set label_side={side}: choose auto, left or right")
            self.side = choose_label_side(files, self.decoder) if side == "auto" else side
        if not self.pairs:
            raise DataError(f"{layout.root}: no photo / label map pairs in the {split} split")

    @staticmethod
    def _matched(base: Path) -> list[tuple[Path, Path]]:
        pairs, missing = match_labels(base / "images", base / "labels")
        if missing:
            more = f" ({len(missing)} photos lack one)" if len(missing) > 1 else ""
            raise DataError(f"{missing[0][0]}: no label map of the same name in {base / 'labels'}{more}; "
                            "add it or remove the photo")
        return pairs

    def __len__(self) -> int:
        return len(self.pairs)

    # --- decoding ---------------------------------------------------------------------------------------
    def _label(self, array: np.ndarray, kind: str, path: Path) -> np.ndarray:
        if kind == "color" and not (_grey(array) and self.decoder.label_format != "color"):
            known = known_colour_fraction(array, self.decoder.colors(), self.decoder_tolerance)
            if known < 1 - MAX_UNKNOWN_COLOURS:
                raise DataError(f"{path}: {100 * (1 - known):.0f}% of the label map's pixels have colours not in the "
                                f"{'palette' if self.decoder.palette is not None else 'Cityscapes palette'}; pass "
                                "--set palette=FILE (one 'r g b' line per class) or class-id label maps")
        label = self.decoder.decode_array(array, kind, path)
        bad = (label != IGNORE) & ((label < 0) | (label >= self.n_classes))
        if bad.any():
            raise DataError(f"{path}: label value {int(label[bad].max())} is not a class of n_classes="
                            f"{self.n_classes} (nor 255, ignored); pass --set n_classes=N or fix the map")
        return label

    decoder_tolerance = 60.0  # as the FCN-score's colour decoding

    def read_photo(self, index: int) -> np.ndarray:
        """The photo of pair `index` as stored (no label decoding, no resize)."""
        photo_file = self.pairs[index][0]
        if not self.side:
            return load_image(photo_file)
        left, right = split_halves(load_image(photo_file))
        return right if self.side == "left" else left

    def _decode(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        photo_file, label_file = self.pairs[index]
        if self.side:
            left, right = split_halves(load_image(photo_file))
            if left.shape[1] == 0:
                raise BadImageError(photo_file, "too narrow to hold photo | label side by side")
            photo, label_rgb = (right, left) if self.side == "left" else (left, right)
            label = self._label(np.ascontiguousarray(label_rgb), "color", photo_file)
        else:
            photo = load_image(photo_file)
            array, kind = load_label_image(label_file)
            label = self._label(array, kind, label_file)
            if label.shape != photo.shape[:2]:
                raise DataError(f"{label_file}: label map is {label.shape[1]}x{label.shape[0]} but its photo "
                                f"{photo_file.name} is {photo.shape[1]}x{photo.shape[0]}")
        return self._resize(photo, label, *self._load_size(photo.shape[:2]))

    def _load_size(self, shape: tuple[int, ...]) -> tuple[int, int]:
        """(height, width) to load at: load_height x load_width; one of them 0 keeps the aspect ratio."""
        h, w = shape[0], shape[1]
        lh, lw = self.load
        if lh and lw:
            return lh, lw
        if lw:
            return max(1, round(h * lw / w)), lw
        if lh:
            return lh, max(1, round(w * lh / h))
        return h, w

    @staticmethod
    def _resize(photo: np.ndarray, label: np.ndarray, h: int, w: int,
                resample: int = Image.BICUBIC) -> tuple[np.ndarray, np.ndarray]:
        if photo.shape[:2] == (h, w):
            return photo, label
        photo = np.asarray(Image.fromarray(photo).resize((w, h), resample))
        label = np.asarray(Image.fromarray(label.astype(np.uint8)).resize((w, h), Image.NEAREST))
        return photo, label

    def decoded(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(photo uint8 (h, w, 3), label uint8 (h, w)) at the load size; cached while the budget allows
        (full-size Cityscapes is ~8 MB a pair: not every dataset fits in memory)."""
        if self.cache is not None and index in self.cache:
            return self.cache[index]
        photo, label = self._decode(index)
        pair = (photo, label.astype(np.uint8))  # classes < 255, 255 = ignored
        size = pair[0].nbytes + pair[1].nbytes
        if self.cache is not None and self.cached_bytes + size <= self.cache_budget:
            self.cache[index] = pair
            self.cached_bytes += size
        return pair

    # --- augmentation -----------------------------------------------------------------------------------
    def augment(self, photo: np.ndarray, label: np.ndarray, rng: torch.Generator) -> tuple[np.ndarray, np.ndarray]:
        if self.random_scale > 0:
            low, high = 1 / self.random_scale, self.random_scale
            ratio = low + (high - low) * torch.rand((), generator=rng).item()
            h, w = photo.shape[:2]
            resample = Image.LANCZOS if ratio < 1 else Image.BICUBIC  # RandomScale: ANTIALIAS down, CUBIC up
            photo, label = self._resize(photo, label, max(1, int(ratio * h)), max(1, int(ratio * w)), resample)
        ch, cw = self.crop
        h, w = photo.shape[:2]
        if h < ch or w < cw:  # pad as the official RandomCrop: centred, photo reflected, labels ignored
            top, left = max(0, ch - h) // 2, max(0, cw - w) // 2
            pads = ((top, max(0, ch - h) - top), (left, max(0, cw - w) - left))
            photo = np.pad(photo, (*pads, (0, 0)), mode="reflect" if min(h, w) > 1 else "edge")
            label = np.pad(label, pads, mode="constant", constant_values=IGNORE)
            h, w = photo.shape[:2]
        top = int(torch.randint(0, h - ch + 1, (), generator=rng))
        left = int(torch.randint(0, w - cw + 1, (), generator=rng))
        photo, label = photo[top: top + ch, left: left + cw], label[top: top + ch, left: left + cw]
        if self.flip and torch.rand((), generator=rng).item() < 0.5:
            photo, label = photo[:, ::-1], label[:, ::-1]
        return photo, label

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        index, seed = key
        return first_readable_item(len(self), index, seed, self._item, self.layout.root)

    def _item(self, index: int, rng: torch.Generator) -> dict[str, Any]:
        photo, label = self.augment(*self.decoded(index), rng)
        return {"A": torch.from_numpy(np.array(photo)).permute(2, 0, 1).contiguous(),  # np.array: a writable copy
                "label": torch.from_numpy(np.array(label)).long()}
