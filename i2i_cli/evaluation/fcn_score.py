"""FCN-score: segmentation accuracy of generated photos, from one confusion matrix over the whole set.

Formulas of pix2pix's Cityscapes evaluation: rows are ground truth, columns predictions, labels >= n_classes
are ignored; per-pixel accuracy = trace / total; per-class accuracy = nanmean(diag / row sums); class IoU =
nanmean(diag / (row + column - diag)). A class absent from both ground truth and predictions is NaN and
skipped by the means (as the reference's nanmean does). Predictions outside [0, n_classes) (a segmenter
with other classes) count as wrong in their row and in no column: `confusion` keeps them in an extra last
column.

Segmenters: a run of `i2i train --model segmenter` (its classes, label format and palette become the
defaults), `drn-cityscapes` (fyu/drn's published DRN-D-22 Cityscapes model, from the weights registry),
`torchvision:fcn_resnet50` / `torchvision:deeplabv3_resnet50` (COCO weights with the 21 VOC
classes, from the weights registry) or a TorchScript file taking RGB in [0, 1] (N, 3, H, W) and returning
logits (N, C, h, w) (or a dict with "out"). A VOC segmenter on Cityscapes labels is scored only on the
Cityscapes classes VOC has (person, car, bus, train, motorcycle, bicycle); that number is not pix2pix's.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from i2i_cli.data.images import IMAGE_EXTENSIONS, list_images, load_image, load_label_image
from i2i_cli.errors import BadImageError, ConfigError, DataError, I2IError, WeightsError
from i2i_cli.evaluation.report import EvalResult, Protocol
from i2i_cli.weights import ResolvedWeights, load_state_dict, resolve

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

VOC_CLASSES = ["background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor"]
VOC_TO_CITYSCAPES = {15: 11, 7: 13, 6: 15, 19: 16, 14: 17, 2: 18}  # person, car, bus, train, motorcycle, bicycle

LABEL_FORMATS = ("auto", "trainid", "cityscapes-id", "color")
COLOR_TOLERANCE = 60.0  # Euclidean RGB distance: JPEG-compressed colour maps blur edges; farther -> ignored
LABEL_SUFFIXES = ("_gtFine_labelIds", "_gtFine_labelTrainIds", "_gtFine_trainIds", "_gtFine_color", "_real_A", "_real_B",
                  "_label", "_labels", "_mask", "_gt", "_L")  # _L: CamVid
FAKE_SUFFIXES = ("_fake_B", "_fake_A", "_fake", "_leftImg8bit", "_synthesized_image")


# --- formulas ------------------------------------------------------------------------------------------------
def confusion(labels: np.ndarray, predictions: np.ndarray, n_classes: int) -> np.ndarray:
    """(n_classes, n_classes + 1) counts; rows = ground truth, columns = prediction, the last column counts
    predictions outside [0, n_classes). Pixels whose label is outside [0, n_classes) are ignored."""
    labels = labels.astype(np.int64).ravel()
    predictions = predictions.astype(np.int64).ravel()
    keep = (labels >= 0) & (labels < n_classes)
    predicted = predictions[keep]
    predicted = np.where((predicted >= 0) & (predicted < n_classes), predicted, n_classes)
    index = (n_classes + 1) * labels[keep] + predicted
    return np.bincount(index, minlength=n_classes * (n_classes + 1)).reshape(n_classes, n_classes + 1)


def per_class(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(accuracy, IoU) per class; NaN for a class absent from both labels and predictions."""
    matrix = matrix.astype(np.float64)
    n = matrix.shape[0]
    diag = np.diag(matrix[:, :n])
    rows, cols = matrix.sum(axis=1), matrix[:, :n].sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return diag / rows, diag / (rows + cols - diag)


def scores(matrix: np.ndarray) -> dict[str, float]:
    """Pixel accuracy, class accuracy and mean IoU of a (n, n) or (n, n + 1) confusion matrix."""
    n = matrix.shape[0]
    class_acc, iou = per_class(matrix)
    total = float(matrix.sum())
    return {
        "pixel_accuracy": float(np.trace(matrix[:, :n]) / total) if total else float("nan"),
        "class_accuracy": float(np.nanmean(class_acc)) if np.isfinite(class_acc).any() else float("nan"),
        "mean_iou": float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan"),
    }


# --- label maps ----------------------------------------------------------------------------------------------
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


# --- segmenters ----------------------------------------------------------------------------------------------
@dataclass
class Segmenter:
    """Labels one RGB uint8 image; `class_map` maps its classes to the label classes (IGNORE: none)."""

    name: str
    n_outputs: int
    run: Callable[[torch.Tensor], torch.Tensor]  # (1, 3, H, W) in [0, 1] -> (1, C, h, w) logits
    class_map: np.ndarray | None = None
    evaluated_classes: list[int] | None = None  # label classes scored; others ignored (None: all)
    weights: ResolvedWeights | None = None
    input_note: str = ""
    record: dict[str, Any] = field(default_factory=dict)  # more for the protocol (a run's checkpoint and hash)

    def predict(self, image: np.ndarray, device: torch.device | str = "cpu") -> np.ndarray:
        x = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float().div(255).to(device)
        with torch.no_grad():
            logits = self.run(x)
            if logits.shape[-2:] != x.shape[-2:]:
                logits = torch.nn.functional.interpolate(logits, size=x.shape[-2:], mode="bilinear",
                                                         align_corners=False)
        predicted = logits.argmax(1)[0].cpu().numpy().astype(np.int64)
        return self.class_map[predicted] if self.class_map is not None else predicted


TORCHVISION_SEGMENTERS = {"fcn_resnet50": "fcn_resnet50", "deeplabv3_resnet50": "deeplabv3_resnet50"}


def _torchvision_segmenter(name: str, n_classes: int, device: torch.device | str,
                           weights_dir: str | os.PathLike[str] | None) -> Segmenter:
    import torchvision

    weights = resolve(TORCHVISION_SEGMENTERS[name], weights_dir=weights_dir)
    builder = getattr(torchvision.models.segmentation, name)
    model = builder(weights=None, weights_backbone=None, num_classes=21, aux_loss=True)
    try:
        model.load_state_dict(load_state_dict(weights.path))
    except RuntimeError as exc:
        raise WeightsError(f"{weights.path}: not torchvision's {name} COCO/VOC file ({str(exc)[:160]})") from exc
    model = model.to(device).eval()
    mean = torch.tensor([0.485, 0.456, 0.406], device=device).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225], device=device).view(1, 3, 1, 1)

    def run(x: torch.Tensor) -> torch.Tensor:
        return model((x - mean) / std)["out"]

    if n_classes == 21:
        class_map, evaluated = None, None
    elif n_classes == 19:
        class_map = np.full(21, IGNORE, dtype=np.int64)
        for voc, city in VOC_TO_CITYSCAPES.items():
            class_map[voc] = city
        evaluated = sorted(VOC_TO_CITYSCAPES.values())
    else:
        raise ConfigError(f"--segmenter torchvision:{name} predicts the 21 VOC classes; use --classes 21 (VOC labels) "
                          "or 19 (Cityscapes: scored on person, car, bus, train, motorcycle, bicycle)")
    return Segmenter(f"torchvision:{name}", 21, run, class_map, evaluated, weights,
                     "RGB in [0, 1], ImageNet mean/std; COCO weights with the 21 VOC classes")


def _torchscript_segmenter(path: Path, device: torch.device | str) -> Segmenter:
    try:
        module = torch.jit.load(str(path), map_location=device).eval()
    except Exception as exc:  # noqa: BLE001 - any failure to parse is the file's fault
        raise WeightsError(f"--segmenter {path}: not a TorchScript module ({str(exc).splitlines()[0][:160]})") from exc

    def run(x: torch.Tensor) -> torch.Tensor:
        out = module(x)
        return out["out"] if isinstance(out, dict) else out

    probe = run(torch.zeros(1, 3, 32, 32, device=device))
    if probe.dim() != 4:
        raise WeightsError(f"--segmenter {path}: must return (N, C, H, W) logits, returned {tuple(probe.shape)}")
    return Segmenter(f"torchscript:{path.name}", int(probe.shape[1]), run, input_note="RGB in [0, 1]")


DRN_CITYSCAPES = ("drn-cityscapes", "drn_d_22_cityscapes")


def _drn_cityscapes_segmenter(n_classes: int, device: torch.device | str,
                              weights_dir: str | os.PathLike[str] | None) -> Segmenter:
    """fyu/drn's published DRN-D-22 Cityscapes segmenter (19 train ids), input normalised as it was trained."""
    from models.networks.drn import CITYSCAPES_MEAN, CITYSCAPES_STD, DRNSeg

    if n_classes != 19:
        raise ConfigError(f"--segmenter drn-cityscapes predicts the 19 Cityscapes train ids; pass --classes 19, "
                          f"not {n_classes}")
    weights = resolve("drn_d_22_cityscapes", weights_dir=weights_dir)
    model = DRNSeg(19)
    try:
        model.load_official_state_dict(load_state_dict(weights.path))
    except (KeyError, RuntimeError) as exc:
        raise WeightsError(f"{weights.path}: not fyu/drn's DRN-D-22 Cityscapes file ({str(exc)[:160]})") from exc
    model = model.to(device).eval()
    mean = torch.tensor(CITYSCAPES_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(CITYSCAPES_STD, device=device).view(1, 3, 1, 1)

    def run(x: torch.Tensor) -> torch.Tensor:
        return model((x - mean) / std)

    return Segmenter("drn-cityscapes", 19, run, weights=weights,
                     input_note="RGB in [0, 1], Cityscapes mean/std (fyu/drn info.json); DRN-D-22, output stride 8")


def _run_segmenter(path: Path, n_classes: int, device: torch.device | str) -> Segmenter:
    """A run of `i2i train --model segmenter`: its network on photos in [0, 1], its classes as the labels'."""
    from i2i_cli.engine.checkpoint import load_for_inference

    loaded = load_for_inference(path, device=device)
    method = loaded.method
    if method.name != "segmenter":
        raise ConfigError(f"--segmenter {path}: a {method.name} run, not a segmenter; train one with "
                          "`i2i train --model segmenter --data DIR` (real photos + label maps)")
    if method.config.n_classes != n_classes:
        raise ConfigError(f"--segmenter {path} predicts {method.config.n_classes} classes but --classes is "
                          f"{n_classes}; pass --classes {method.config.n_classes}")

    def run(x: torch.Tensor) -> torch.Tensor:
        return method.logits(x * 2 - 1)

    from i2i_cli.download import sha256_file
    from i2i_cli.engine.checkpoint import WEIGHTS_FILE

    weights_file = loaded.checkpoint / WEIGHTS_FILE
    return Segmenter(f"run:{loaded.run_dir.name}@{loaded.step}", n_classes, run,
                     input_note="RGB normalised with the run's mean/std",
                     record={"segmenter_checkpoint": str(weights_file.resolve()),
                             "segmenter_sha256": sha256_file(weights_file)})


def run_segmenter_defaults(spec: str) -> dict[str, Any]:
    """For `--segmenter RUN`: the run's n_classes, label format and palette (what `i2i eval fcn` defaults to)."""
    from i2i_cli.engine.checkpoint import find_run, read_run_config

    path = Path(spec)
    if not path.is_dir() and not (path.is_file() and path.suffix == ".safetensors"):
        return {}
    try:
        run_dir, _ = find_run(path)
        run_config = read_run_config(run_dir)
    except I2IError:
        return {}
    if run_config.method != "segmenter":
        return {}
    config = run_config.config
    colors = config.get("palette_colors") or ()
    return {"n_classes": int(config.get("n_classes", 19)), "label_format": str(config.get("label_format", "auto")),
            "palette": np.array(colors, dtype=np.uint8).reshape(-1, 3) if colors else None}


def load_segmenter(spec: str, n_classes: int, device: torch.device | str = "cpu",
                   weights_dir: str | os.PathLike[str] | None = None) -> Segmenter:
    """`drn-cityscapes`, `torchvision:fcn_resnet50`, `torchvision:deeplabv3_resnet50` (or the bare names), a run
    of `i2i train --model segmenter`, or a TorchScript file."""
    name = spec.split(":", 1)[1] if spec.startswith("torchvision:") else spec
    if name in TORCHVISION_SEGMENTERS:
        return _torchvision_segmenter(name, n_classes, device, weights_dir)
    if spec in DRN_CITYSCAPES:
        return _drn_cityscapes_segmenter(n_classes, device, weights_dir)
    path = Path(spec)
    if path.is_dir() or (path.is_file() and path.suffix == ".safetensors"):
        return _run_segmenter(path, n_classes, device)
    if path.is_file():
        return _torchscript_segmenter(path, device)
    raise ConfigError(f"--segmenter {spec}: no such file or run; use a run of `i2i train --model segmenter`, "
                      "drn-cityscapes, torchvision:fcn_resnet50, torchvision:deeplabv3_resnet50 or a TorchScript segmenter (.pt) "
                      "taking RGB in [0, 1]")


# --- the score over a set ------------------------------------------------------------------------------------
def _strip(stem: str, suffixes: tuple[str, ...]) -> str:
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
        for key in (rel.with_name(_strip(rel.name, LABEL_SUFFIXES)).as_posix(), rel.name):
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
        key = rel.with_name(_strip(rel.name, FAKE_SUFFIXES)).as_posix()
        label = keyed.get(key) or keyed.get(rel.as_posix()) or keyed.get(_strip(rel.name, FAKE_SUFFIXES))
        if label is None:
            missing.append((str(file), f"no label map of the same name in {labels}"))
        else:
            pairs.append((file, label))
    return pairs, missing


RESOLUTIONS = ("label", "image")


@dataclass
class FcnOptions:
    n_classes: int | None = None  # None: the --segmenter run's classes, else 19 (Cityscapes train ids)
    segmenter: str = "torchvision:fcn_resnet50"
    resolution: str = "label"  # label: image resized bilinearly to the label size (pix2pix); image: labels nearest
    label_format: str = "auto"
    palette: str | os.PathLike[str] | None = None
    device: str = "auto"  # auto: CUDA when present (resolved to a concrete device here)
    weights_dir: str | os.PathLike[str] | None = None

    def __post_init__(self) -> None:
        from i2i_cli.engine.device import resolve_device

        self.device = str(resolve_device(self.device))


@dataclass
class FcnSet:
    matrix: np.ndarray
    count: int
    bad: list[tuple[str, str]] = field(default_factory=list)


def _score_set(pairs: list[tuple[Path, Path]], segmenter: Segmenter, decoder: LabelDecoder, options: FcnOptions,
               resize_to: dict[Path, tuple[int, int]] | None = None,
               progress: Callable[[int, int], None] | None = None) -> FcnSet:
    n = options.n_classes
    matrix = np.zeros((n, n + 1), dtype=np.int64)
    keep = None
    if segmenter.evaluated_classes is not None:
        keep = np.full(256, IGNORE, dtype=np.int64)
        keep[segmenter.evaluated_classes] = segmenter.evaluated_classes
    bad: list[tuple[str, str]] = []
    count = 0
    for i, (image_file, label_file) in enumerate(pairs, start=1):
        try:
            image, label = load_image(image_file), decoder.decode(label_file)
        except BadImageError as exc:
            bad.append((exc.path, exc.reason))
            continue
        if resize_to is not None and image_file in resize_to:  # real photos at the generated size first (pix2pix)
            image = np.asarray(Image.fromarray(image).resize(resize_to[image_file], Image.BILINEAR))
        h, w = label.shape
        if options.resolution == "label" and image.shape[:2] != (h, w):
            image = np.asarray(Image.fromarray(image).resize((w, h), Image.BILINEAR))
        elif options.resolution == "image" and image.shape[:2] != (h, w):
            resized = Image.fromarray(np.clip(label, 0, 255).astype(np.uint8)).resize(
                (image.shape[1], image.shape[0]), Image.NEAREST)
            label = np.asarray(resized, dtype=np.int64)
        if keep is not None:
            label = keep[np.clip(label, 0, 255)]
        matrix += confusion(label, segmenter.predict(image, options.device), n)
        count += 1
        if progress:
            progress(i, len(pairs))
    return FcnSet(matrix, count, bad)


def evaluate_fcn(fake: str | os.PathLike[str], labels: str | os.PathLike[str], options: FcnOptions,
                 real: str | os.PathLike[str] | None = None,
                 progress: Callable[[str, int, int], None] | None = None) -> EvalResult:
    """FCN-score of generated photos against label maps (and of the real photos, when given, as the bound)."""
    if options.resolution not in RESOLUTIONS:
        raise ConfigError(f"--resolution {options.resolution}: choose {', '.join(RESOLUTIONS)}")
    run_defaults = run_segmenter_defaults(options.segmenter)
    options = dataclasses.replace(
        options, n_classes=options.n_classes if options.n_classes is not None else run_defaults.get("n_classes", 19),
        label_format=run_defaults.get("label_format", "auto") if options.label_format == "auto" else options.label_format)
    assert options.n_classes is not None
    if options.n_classes < 1 or options.n_classes > 255:
        raise ConfigError(f"--classes {options.n_classes}: must be in 1..255")
    fake_dir, label_dir = Path(fake), Path(labels)
    for flag, folder in (("--fake", fake_dir), ("--labels", label_dir)) + ((("--real", Path(real)),) if real else ()):
        if not folder.is_dir():
            raise DataError(f"{flag} {folder}: not a folder")
    palette = read_palette(options.palette) if options.palette else run_defaults.get("palette")
    decoder = LabelDecoder(options.label_format, palette)
    segmenter = load_segmenter(options.segmenter, options.n_classes, options.device, options.weights_dir)
    pairs, missing = match_labels(fake_dir, label_dir)
    if not pairs:
        raise DataError(f"{fake_dir}: no image has a label map of the same name in {label_dir}")
    fake_set = _score_set(pairs, segmenter, decoder, options,
                          progress=(lambda d, t: progress("segment fake", d, t)) if progress else None)
    if fake_set.count == 0:
        raise DataError(f"{fake_dir}: no readable image / label pair")
    values: dict[str, float | None] = {**scores(fake_set.matrix)}
    class_acc, iou = per_class(fake_set.matrix)
    names = CITYSCAPES_CLASSES if options.n_classes == 19 else [str(k) for k in range(options.n_classes)]
    protocol = Protocol(real=str(Path(real).resolve()) if real else None, fake=str(fake_dir.resolve()))
    protocol.fcn = {
        "segmenter": segmenter.name, "segmenter_input": segmenter.input_note, "classes": options.n_classes,
        "evaluated_classes": [names[k] for k in segmenter.evaluated_classes] if segmenter.evaluated_classes
        else "all", "resolution": {"label": "images resized bilinearly to the label size (pix2pix)",
                                   "image": "labels resized (nearest) to the image size"}[options.resolution],
        "labels": str(label_dir.resolve()), "label_format": decoder.describe(), "images": fake_set.count,
        "formulas": "one confusion matrix over the set; pixel acc = trace/total, class acc = nanmean(diag/rows), "
                    "mIoU = nanmean(diag/(rows+cols-diag)); labels >= classes ignored",
        "per_class": {names[k]: {"accuracy": _finite(class_acc[k]), "iou": _finite(iou[k])}
                      for k in range(options.n_classes)},
    }
    protocol.fcn.update(segmenter.record)
    if segmenter.weights is not None:
        protocol.add_weights("segmenter", segmenter.weights)
    bad = missing + fake_set.bad
    if real:
        fake_sizes = {}
        real_pairs, real_missing = match_labels(Path(real), label_dir)
        fake_by_key = {_strip(f.stem, FAKE_SUFFIXES): f for f, _ in pairs}
        for real_file, _ in real_pairs:
            twin = fake_by_key.get(_strip(real_file.stem, FAKE_SUFFIXES))
            size = _size(twin) if twin is not None else None
            if size:
                fake_sizes[real_file] = size
        real_set = _score_set(real_pairs, segmenter, decoder, options, resize_to=fake_sizes,
                              progress=(lambda d, t: progress("segment real", d, t)) if progress else None)
        values.update({f"real_{k}": v for k, v in scores(real_set.matrix).items()})
        protocol.fcn["real_images"] = real_set.count
        protocol.fcn["real_preprocessing"] = "resized to the generated image's size first (pix2pix's ground truth)"
        bad += real_missing + real_set.bad
    return EvalResult(values, protocol, bad)


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _size(path: Path) -> tuple[int, int] | None:
    """(width, height) of an image file, None if unreadable (it is reported by the fake set)."""
    from i2i_cli.data.images import image_size

    try:
        return image_size(path)
    except I2IError:
        return None


def cityscapes_color_map(train_ids: np.ndarray) -> np.ndarray:
    """(H, W) train ids -> (H, W, 3) Cityscapes colours (ignored pixels black); for figures and tests."""
    table = np.zeros((256, 3), dtype=np.uint8)
    table[:19] = CITYSCAPES_PALETTE
    return table[np.clip(train_ids, 0, 255)]



# --- a segmenter run on its own held-out split --------------------------------------------------------------------
def evaluate_segmenter_run(loaded: Any, layout: Any, work: Path, device: str = "cpu",
                           progress: Callable[[str, int, int], None] | None = None) -> EvalResult:
    """Segment a segmenter run's held-out photos (val/, else test/) and score them against their label maps with
    the FCN-score formulas: the bound an FCN-score of translated photos can reach. Colourised predictions go to
    `work`/predictions/."""
    from i2i_cli.data.datasets import Augment, build_dataset
    from i2i_cli.data.images import save_image

    method = loaded.method
    split = next((s for s in ("val", "test") if s in layout.splits), None)
    if split is None:
        raise DataError(f"{layout.root}: no val/ or test/ split to evaluate the segmenter on; add one "
                        "(DIR/val/images + DIR/val/labels, or val/ with photo | label images) or pass --data DIR")
    extra = method.data_spec().extra
    dataset = build_dataset(layout, "segmentation", split, Augment(0, 0, False, False), extra=extra, cache=False)
    n = method.config.n_classes
    matrix = np.zeros((n, n + 1), dtype=np.int64)
    bad: list[tuple[str, str]] = []
    from i2i_cli.engine.device import resolve_device

    model_device = resolve_device(device)
    method.to(model_device)
    for i in range(len(dataset)):
        photo_file = dataset.pairs[i][0]
        try:
            photo, label = dataset.decoded(i)
        except BadImageError as exc:
            bad.append((exc.path, exc.reason))
            continue
        x = torch.from_numpy(np.array(photo)).permute(2, 0, 1)[None].float().div(127.5).sub(1).to(model_device)
        with torch.no_grad():
            predicted = method.logits(x).argmax(1)
        matrix += confusion(label, predicted[0].cpu().numpy().astype(np.int64), n)
        drawn = method.colorize(predicted)[0].add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8)
        save_image(drawn.permute(1, 2, 0).cpu().numpy(), work / "predictions" / f"{photo_file.stem}.png",
                   overwrite=True)
        if progress:
            progress("segment", i + 1, len(dataset))
    if not matrix.any():
        raise DataError(f"{layout.root}: no readable photo / label pair in the {split} split")
    class_acc, iou = per_class(matrix)
    names = CITYSCAPES_CLASSES if n == 19 and not method.config.palette_colors else [str(k) for k in range(n)]
    protocol = Protocol(real=str(layout.root / split))
    protocol.fcn = {
        "segmenter": f"run:{loaded.run_dir.name}@{loaded.step}", "classes": n, "split": split,
        "images": len(dataset) - len(bad), "label_format": dataset.decoder.describe(),
        "resolution": "the run's load size (load_size / load_height), else the files' own",
        "formulas": "one confusion matrix over the set; pixel acc = trace/total, class acc = nanmean(diag/rows), "
                    "mIoU = nanmean(diag/(rows+cols-diag)); label 255 ignored",
        "per_class": {names[k]: {"accuracy": _finite(class_acc[k]), "iou": _finite(iou[k])} for k in range(n)},
    }
    return EvalResult({**scores(matrix)}, protocol, bad)
