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

CITYSCAPES_CLASSES = ["road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
                      "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
                      "motorcycle", "bicycle"]

IGNORE = 255

# Cityscapes label id (0..33) -> (train id or IGNORE, colour), from the dataset's labels table.
CITYSCAPES_IDS: list[tuple[int, tuple[int, int, int]]] = [
    (IGNORE, (0, 0, 0)), (IGNORE, (0, 0, 0)), (IGNORE, (0, 0, 0)), (IGNORE, (0, 0, 0)), (IGNORE, (0, 0, 0)),
    (IGNORE, (111, 74, 0)), (IGNORE, (81, 0, 81)), (0, (128, 64, 128)), (1, (244, 35, 232)),
    (IGNORE, (250, 170, 160)), (IGNORE, (230, 150, 140)), (2, (70, 70, 70)), (3, (102, 102, 156)),
    (4, (190, 153, 153)), (IGNORE, (180, 165, 180)), (IGNORE, (150, 100, 100)), (IGNORE, (150, 120, 90)),
    (5, (153, 153, 153)), (IGNORE, (153, 153, 153)), (6, (250, 170, 30)), (7, (220, 220, 0)),
    (8, (107, 142, 35)), (9, (152, 251, 152)), (10, (70, 130, 180)), (11, (220, 20, 60)), (12, (255, 0, 0)),
    (13, (0, 0, 142)), (14, (0, 0, 70)), (15, (0, 60, 100)), (IGNORE, (0, 0, 90)), (IGNORE, (0, 0, 110)),
    (16, (0, 80, 100)), (17, (0, 0, 230)), (18, (119, 11, 32)),
]
CITYSCAPES_ID_TO_TRAIN = np.array([train for train, _ in CITYSCAPES_IDS] + [IGNORE] * (256 - 34), dtype=np.int64)
CITYSCAPES_PALETTE = np.array([next(c for t, c in CITYSCAPES_IDS if t == k) for k in range(19)], dtype=np.uint8)

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
