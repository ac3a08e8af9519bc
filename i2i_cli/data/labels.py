"""Label maps: class tables (Cityscapes ids, train ids and colours), palettes, colours -> classes, decoding a
label file into class indices, and matching label files to images by name.

The data layer's knowledge of segmentation labels: the segmenter's training set, `i2i data check` and the
FCN-score all ask this module.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from i2i_cli.data.images import IMAGE_EXTENSIONS, list_images, load_label_image
from i2i_cli.errors import BadImageError, ConfigError, DataError
from i2i_cli.models.networks.drn import CITYSCAPES_TRAIN_COLORS

CITYSCAPES_CLASSES = ["road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
                      "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
                      "motorcycle", "bicycle"]

IGNORE = 255

# Cityscapes label id (0..33) -> train id (IGNORE: not one of the 19 classes), from the dataset's labels table;
# the ignored ids' own colours (the train ids' are CITYSCAPES_TRAIN_COLORS, models/networks/drn.py).
_TRAIN_IDS = (IGNORE,) * 7 + (0, 1, IGNORE, IGNORE, 2, 3, 4, IGNORE, IGNORE, IGNORE, 5, IGNORE, 6, 7, 8, 9, 10,
                               11, 12, 13, 14, 15, IGNORE, IGNORE, 16, 17, 18)
_IGNORED_COLORS = {0: (0, 0, 0), 1: (0, 0, 0), 2: (0, 0, 0), 3: (0, 0, 0), 4: (0, 0, 0), 5: (111, 74, 0),
                   6: (81, 0, 81), 9: (250, 170, 160), 10: (230, 150, 140), 14: (180, 165, 180), 15: (150, 100, 100),
                   16: (150, 120, 90), 18: (153, 153, 153), 29: (0, 0, 90), 30: (0, 0, 110)}
# label id -> (train id or IGNORE, colour)
CITYSCAPES_IDS: list[tuple[int, tuple[int, int, int]]] = [
    (train, _IGNORED_COLORS[i] if train == IGNORE else CITYSCAPES_TRAIN_COLORS[train]) for i, train in enumerate(_TRAIN_IDS)]
CITYSCAPES_ID_TO_TRAIN = np.array([train for train, _ in CITYSCAPES_IDS] + [IGNORE] * (256 - 34), dtype=np.int64)
CITYSCAPES_PALETTE = np.array(CITYSCAPES_TRAIN_COLORS, dtype=np.uint8)

VOC_TO_CITYSCAPES = {15: 11, 7: 13, 6: 15, 19: 16, 14: 17, 2: 18}  # person, car, bus, train, motorcycle, bicycle

LABEL_FORMATS = ("auto", "trainid", "cityscapes-id", "color")
COLOR_TOLERANCE = 60.0  # Euclidean RGB distance: JPEG-compressed colour maps blur edges; farther -> ignored
LABEL_SUFFIXES = ("_gtFine_labelIds", "_gtFine_labelTrainIds", "_gtFine_trainIds", "_gtFine_color", "_real_A", "_real_B",
                  "_label", "_labels", "_mask", "_gt", "_L")  # _L: CamVid
FAKE_SUFFIXES = ("_fake_B", "_fake_A", "_fake", "_leftImg8bit", "_synthesized_image")


def read_palette(path: str | os.PathLike[str]) -> np.ndarray:
    """A palette file: JSON [[r, g, b], ...] or one "r g b" (or "r,g,b") line per class, class i on line i."""
    file = Path(path)
    try:
        text = file.read_text()
    except OSError as exc:
        raise ConfigError(f"--palette {file}: cannot read ({exc.strerror or exc})") from exc
    try:
        rows = json.loads(text) if text.lstrip().startswith("[") else [
            [int(v) for v in line.replace(",", " ").split()] for line in text.splitlines() if line.strip()]
        palette = np.array(rows, dtype=np.int64)
    except (ValueError, json.JSONDecodeError) as exc:
        raise ConfigError(f"--palette {file}: expected one 'r g b' line per class or a JSON list ({exc})") from exc
    if palette.ndim != 2 or palette.shape[1] != 3 or palette.min() < 0 or palette.max() > 255:
        raise ConfigError(f"--palette {file}: expected rows of three values 0..255")
    return palette.astype(np.uint8)


def colors_to_classes(rgb: np.ndarray, colors: np.ndarray, classes: np.ndarray,
                      tolerance: float = COLOR_TOLERANCE) -> np.ndarray:
    """Nearest palette colour per pixel -> its class; farther than `tolerance` -> IGNORE."""
    flat = rgb.reshape(-1, 3).astype(np.int32)
    unique, inverse = np.unique(flat, axis=0, return_inverse=True)
    distance = ((unique[:, None, :] - colors[None].astype(np.int32)) ** 2).sum(-1)
    nearest = distance.argmin(axis=1)
    mapped = np.where(distance[np.arange(len(unique)), nearest] <= tolerance**2, classes[nearest], IGNORE)
    return mapped[inverse.ravel()].reshape(rgb.shape[:2])


@dataclass
class LabelDecoder:
    """Turns a label file into (H, W) class indices in [0, n_classes) or IGNORE."""

    label_format: str = "auto"
    palette: np.ndarray | None = None  # class i has colour palette[i]; None: Cityscapes colours

    def __post_init__(self) -> None:
        if self.label_format not in LABEL_FORMATS:
            raise ConfigError(f"--label-format {self.label_format}: choose {', '.join(LABEL_FORMATS)}")

    def describe(self) -> str:
        if self.palette is not None:
            return f"{self.label_format}; colour maps by a palette of {len(self.palette)} classes"
        return f"{self.label_format}; colour maps by the Cityscapes palette (34 ids -> 19 train ids)"

    def _colors(self, rgb: np.ndarray) -> np.ndarray:
        if self.palette is not None:
            return colors_to_classes(rgb, self.palette, np.arange(len(self.palette)))
        colors = np.array([c for _, c in CITYSCAPES_IDS], dtype=np.uint8)
        trains = np.array([t for t, _ in CITYSCAPES_IDS], dtype=np.int64)
        # Several ids share a colour (black voids; pole and polegroup): keep the train id where one exists.
        unique: dict[tuple[int, ...], int] = {}
        for color, train in zip(map(tuple, colors), trains, strict=True):
            unique[color] = min(unique.get(color, IGNORE), int(train))
        return colors_to_classes(rgb, np.array(list(unique), dtype=np.uint8), np.array(list(unique.values())))

    def colors(self) -> np.ndarray:
        """Every colour a colour map may hold: the palette's, or the 34 Cityscapes ids' (voids included)."""
        if self.palette is not None:
            return self.palette
        return np.unique(np.array([c for _, c in CITYSCAPES_IDS], dtype=np.uint8), axis=0)

    def decode(self, path: Path) -> np.ndarray:
        array, kind = load_label_image(path)
        return self.decode_array(array, kind, path)

    def decode_array(self, array: np.ndarray, kind: str, path: Path) -> np.ndarray:
        """(H, W) ids ("index") or (H, W, 3) colours ("color") of the file `path` -> class indices or IGNORE."""
        fmt = self.label_format
        if kind == "color":
            grey = bool((array[..., 0] == array[..., 1]).all() and (array[..., 1] == array[..., 2]).all())
            if fmt in ("trainid", "cityscapes-id") or (fmt == "auto" and grey):
                array, kind = array[..., 0].astype(np.int64), "index"
            else:
                return self._colors(array)
        if fmt == "color":
            raise BadImageError(path, "a single-channel label map, but --label-format color was given")
        if fmt == "cityscapes-id" or (fmt == "auto" and "labelIds" in path.name):
            return CITYSCAPES_ID_TO_TRAIN[np.clip(array, 0, 255)]
        return array


def strip_suffix(stem: str, suffixes: tuple[str, ...]) -> str:
    for suffix in suffixes:
        if stem.endswith(suffix):
            return stem[: -len(suffix)]
    return stem


# Cityscapes keeps several maps per photo (gtFine/*_color, *_labelIds, *_instanceIds): prefer train ids, then
# the 34 ids, then colours (the same classes, slower to decode).
LABEL_PREFERENCE = ("_gtFine_labelTrainIds", "_gtFine_trainIds", "_gtFine_labelIds", "_gtFine_color")


def _label_rank(stem: str) -> int:
    return next((i for i, suffix in enumerate(LABEL_PREFERENCE) if stem.endswith(suffix)), len(LABEL_PREFERENCE))


def match_labels(images: Path, labels: Path) -> tuple[list[tuple[Path, Path]], list[tuple[str, str]]]:
    """Pairs (image, label) by relative name without extension, known suffixes stripped (_fake_B,
    _leftImg8bit / _gtFine_labelIds, ...); images without a label are reported."""
    ranked: dict[str, tuple[int, Path]] = {}
    for file in list_images(labels):
        rel = file.relative_to(labels).with_suffix("")
        rank = _label_rank(rel.name)
        for key in (rel.with_name(strip_suffix(rel.name, LABEL_SUFFIXES)).as_posix(), rel.name):
            if key not in ranked or rank < ranked[key][0]:
                ranked[key] = (rank, file)
    if not ranked:
        others = sorted({f.suffix.lower() or f.name for f in labels.rglob("*") if f.is_file()})
        found = f"found only {', '.join(others[:5])} files, which are not read" if others else "it holds no files"
        raise DataError(f"--labels {labels}: no label images ({found}); label maps are read from image files "
                        f"({', '.join(e.lstrip('.') for e in IMAGE_EXTENSIONS)}): save them as PNG (one class "
                        "index per pixel, or colours)")
    keyed = {key: file for key, (_, file) in ranked.items()}
    pairs, missing = [], []
    for file in list_images(images):
        rel = file.relative_to(images).with_suffix("")
        key = rel.with_name(strip_suffix(rel.name, FAKE_SUFFIXES)).as_posix()
        label = keyed.get(key) or keyed.get(rel.as_posix()) or keyed.get(strip_suffix(rel.name, FAKE_SUFFIXES))
        if label is None:
            missing.append((str(file), f"no label map of the same name in {labels}"))
        else:
            pairs.append((file, label))
    return pairs, missing


def cityscapes_color_map(train_ids: np.ndarray) -> np.ndarray:
    """(H, W) train ids -> (H, W, 3) Cityscapes colours (ignored pixels black); for figures and tests."""
    table = np.zeros((256, 3), dtype=np.uint8)
    table[:19] = CITYSCAPES_PALETTE
    return table[np.clip(train_ids, 0, 255)]
