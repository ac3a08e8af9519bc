"""FCN-score: segmentation accuracy of generated photos, from one confusion matrix over the whole set.

Rows are ground truth, columns predictions, labels >= n_classes are ignored; per-pixel accuracy = trace / total.
Two conventions for the class means, named with every number (`CONVENTIONS`):

- `pix2pix` (default; scripts/eval_cityscapes/util.py `get_scores`): class acc = nanmean(diag / (rows + 1e-12)),
  IoU = nanmean(diag / (rows + cols - diag + 1e-12)): the 1e-12 turns a class absent from the labels into a 0
  that counts in both means (nothing is NaN).
- `drn` (fyu/drn segment.py `per_class_iu` + np.nanmean, what CUT / F-LSeSim report as "mAP"): no eps, so a class
  absent from both labels and predictions is NaN and skipped by the IoU mean; class accuracy (drn has none)
  skips every class absent from the labels the same way.

Predictions outside [0, n_classes) (a segmenter with other classes) count as wrong in their row and in no
column: `confusion` keeps them in an extra last column.

Segmenters: a run of `i2i train --model segmenter` (its classes, label format and palette become the
defaults), `drn-cityscapes` (fyu/drn's published DRN-D-22 Cityscapes model, from the weights registry),
`torchvision:fcn_resnet50` / `torchvision:deeplabv3_resnet50` (COCO weights with the 21 VOC
classes, from the weights registry) or a TorchScript file taking RGB in [0, 1] (N, 3, H, W) and returning
logits (N, C, h, w) (or a dict with "out"). A VOC segmenter on Cityscapes labels is scored only on the
Cityscapes classes VOC has (person, car, bus, train, motorcycle, bicycle); that number is not pix2pix's.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from i2i_cli.data.images import load_image
from i2i_cli.data.labels import (
    CITYSCAPES_CLASSES,
    FAKE_SUFFIXES,
    IGNORE,
    VOC_TO_CITYSCAPES,
    LabelDecoder,
    match_labels,
    read_palette,
    strip_suffix,
)
from i2i_cli.errors import BadImageError, ConfigError, DataError, I2IError, WeightsError
from i2i_cli.evaluation.report import EvalResult, Protocol
from i2i_cli.models.base import SegmentationModel
from i2i_cli.weights import ResolvedWeights, load_state_dict, resolve


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


CONVENTIONS = {
    "pix2pix": "pix2pix get_scores: pixel acc = trace/(total+1e-12), class acc = nanmean(diag/(rows+1e-12)), "
               "mIoU = nanmean(diag/(rows+cols-diag+1e-12)); a class absent from the labels counts 0",
    "drn": "fyu/drn segment.py (CUT / F-LSeSim): mIoU = nanmean(diag/(rows+cols-diag)) without eps, class acc = "
           "nanmean(diag/rows); a class absent from the labels is NaN and skipped (IoU: unless it is predicted)",
}
PIX2PIX_EPS = 1e-12


def check_convention(convention: str) -> None:
    if convention not in CONVENTIONS:
        raise ConfigError(f"--convention {convention}: choose {', '.join(CONVENTIONS)} (pix2pix counts classes "
                          "absent from the labels as 0; drn skips them)")


def per_class(matrix: np.ndarray, convention: str = "pix2pix") -> tuple[np.ndarray, np.ndarray]:
    """(accuracy, IoU) per class under `convention`; NaN only under `drn` (see CONVENTIONS)."""
    check_convention(convention)
    matrix = matrix.astype(np.float64)
    n = matrix.shape[0]
    diag = np.diag(matrix[:, :n])
    rows, cols = matrix.sum(axis=1), matrix[:, :n].sum(axis=0)
    eps = PIX2PIX_EPS if convention == "pix2pix" else 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        return diag / (rows + eps), diag / (rows + cols - diag + eps)


def absent_classes(matrix: np.ndarray) -> list[int]:
    """Classes without a single ground-truth pixel (rows of zeros)."""
    return [int(k) for k in np.flatnonzero(matrix.sum(axis=1) == 0)]


def scores(matrix: np.ndarray, convention: str = "pix2pix") -> dict[str, float]:
    """Pixel accuracy, class accuracy and mean IoU of a (n, n) or (n, n + 1) confusion matrix."""
    n = matrix.shape[0]
    class_acc, iou = per_class(matrix, convention)
    total = float(matrix.sum())
    eps = PIX2PIX_EPS if convention == "pix2pix" else 0.0
    return {
        "pixel_accuracy": float(np.trace(matrix[:, :n]) / (total + eps)) if total else float("nan"),
        "class_accuracy": float(np.nanmean(class_acc)) if np.isfinite(class_acc).any() else float("nan"),
        "mean_iou": float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan"),
    }


def absent_warning(matrix: np.ndarray, names: list[str], convention: str, source: str = "--classes") -> str | None:
    """The warning for classes (of --classes, or a run's `source`) that never occur in the labels; None when
    every class occurs."""
    absent = absent_classes(matrix)
    if not absent:
        return None
    n = matrix.shape[0]
    listed = ", ".join(names[k] for k in absent[:8]) + (", ..." if len(absent) > 8 else "")
    effect = ("count 0 in class accuracy and mIoU (pix2pix's convention; --convention drn skips them)"
              if convention == "pix2pix" else "are skipped by the class means (drn's convention)")
    present = [k for k in range(n) if k not in absent]
    fix = f"; the labels use classes up to {present[-1]}: pass --classes {present[-1] + 1} if that is all of them" \
        if source == "--classes" and present and present[-1] + 1 < n else ""
    where = f"--classes {n}" if source == "--classes" else source
    return f"{len(absent)} of the {n} classes ({where}) never occur in the labels ({listed}): they {effect}{fix}"


# --- segmenters ----------------------------------------------------------------------------------------------
@dataclass
class FcnSegmenter:
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
                           weights_dir: str | os.PathLike[str] | None) -> FcnSegmenter:
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
    return FcnSegmenter(f"torchvision:{name}", 21, run, class_map, evaluated, weights,
                     "RGB in [0, 1], ImageNet mean/std; COCO weights with the 21 VOC classes")


def _torchscript_segmenter(path: Path, device: torch.device | str) -> FcnSegmenter:
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
    return FcnSegmenter(f"torchscript:{path.name}", int(probe.shape[1]), run, input_note="RGB in [0, 1]")


DRN_CITYSCAPES = ("drn-cityscapes", "drn_d_22_cityscapes")


def _drn_cityscapes_segmenter(n_classes: int, device: torch.device | str,
                              weights_dir: str | os.PathLike[str] | None) -> FcnSegmenter:
    """fyu/drn's published DRN-D-22 Cityscapes segmenter (19 train ids), input normalised as it was trained."""
    from i2i_cli.models.networks.drn import CITYSCAPES_MEAN, CITYSCAPES_STD, DRNSeg

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

    return FcnSegmenter("drn-cityscapes", 19, run, weights=weights,
                     input_note="RGB in [0, 1], Cityscapes mean/std (fyu/drn info.json); DRN-D-22, output stride 8")


def _run_segmenter(path: Path, n_classes: int, device: torch.device | str) -> FcnSegmenter:
    """A run of `i2i train --model segmenter`: its network on photos in [0, 1], its classes as the labels'."""
    from i2i_cli.engine.checkpoint import load_for_inference

    loaded = load_for_inference(path, device=device)
    method = loaded.method
    if not isinstance(method, SegmentationModel):
        raise ConfigError(f"--segmenter {path}: a {method.name} run, not a segmenter; train one with "
                          "`i2i train --model segmenter --data DIR` (real photos + label maps)")
    if method.n_classes != n_classes:
        raise ConfigError(f"--segmenter {path} predicts {method.n_classes} classes but --classes is "
                          f"{n_classes}; pass --classes {method.n_classes}")

    def run(x: torch.Tensor) -> torch.Tensor:
        return method.logits(x * 2 - 1)

    from i2i_cli.download import sha256_file
    from i2i_cli.engine.checkpoint import WEIGHTS_FILE

    weights_file = loaded.checkpoint / WEIGHTS_FILE
    return FcnSegmenter(f"run:{loaded.run_dir.name}@{loaded.step}", n_classes, run,
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
    from i2i_cli.models import registry

    if run_config.method not in registry.list_methods() or \
            not issubclass(registry.method_class(run_config.method), SegmentationModel):
        return {}
    config = run_config.config
    colors = config.get("palette_colors") or ()
    return {"n_classes": int(config.get("n_classes", 19)), "label_format": str(config.get("label_format", "auto")),
            "palette": np.array(colors, dtype=np.uint8).reshape(-1, 3) if colors else None}


def load_segmenter(spec: str, n_classes: int, device: torch.device | str = "cpu",
                   weights_dir: str | os.PathLike[str] | None = None) -> FcnSegmenter:
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
    convention: str = "pix2pix"  # class acc / mIoU: pix2pix's get_scores or fyu/drn's nanmean (CONVENTIONS)

    def __post_init__(self) -> None:
        from i2i_cli.engine.device import resolve_device

        check_convention(self.convention)
        self.device = str(resolve_device(self.device))


@dataclass
class FcnSet:
    matrix: np.ndarray
    count: int
    bad: list[tuple[str, str]] = field(default_factory=list)


def _score_set(pairs: list[tuple[Path, Path]], segmenter: FcnSegmenter, decoder: LabelDecoder, options: FcnOptions,
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
    values: dict[str, float | None] = {**scores(fake_set.matrix, options.convention)}
    names = CITYSCAPES_CLASSES if options.n_classes == 19 else [str(k) for k in range(options.n_classes)]
    protocol = Protocol(real=str(Path(real).resolve()) if real else None, fake=str(fake_dir.resolve()))
    protocol.fcn = {
        "segmenter": segmenter.name, "segmenter_input": segmenter.input_note, "classes": options.n_classes,
        "evaluated_classes": [names[k] for k in segmenter.evaluated_classes] if segmenter.evaluated_classes
        else "all", "resolution": {"label": "images resized bilinearly to the label size (pix2pix)",
                                   "image": "labels resized (nearest) to the image size"}[options.resolution],
        "labels": str(label_dir.resolve()), "label_format": decoder.describe(), "images": fake_set.count,
        **class_report(fake_set.matrix, names, options.convention, "labels >= classes ignored"),
    }
    warning = absent_warning(fake_set.matrix, names, options.convention)
    protocol.fcn.update(segmenter.record)
    if segmenter.weights is not None:
        protocol.add_weights("segmenter", segmenter.weights)
    bad = missing + fake_set.bad
    if real:
        fake_sizes = {}
        real_pairs, real_missing = match_labels(Path(real), label_dir)
        fake_by_key = {strip_suffix(f.stem, FAKE_SUFFIXES): f for f, _ in pairs}
        for real_file, _ in real_pairs:
            twin = fake_by_key.get(strip_suffix(real_file.stem, FAKE_SUFFIXES))
            size = _size(twin) if twin is not None else None
            if size:
                fake_sizes[real_file] = size
        real_set = _score_set(real_pairs, segmenter, decoder, options, resize_to=fake_sizes,
                              progress=(lambda d, t: progress("segment real", d, t)) if progress else None)
        values.update({f"real_{k}": v for k, v in scores(real_set.matrix, options.convention).items()})
        protocol.fcn["real_images"] = real_set.count
        protocol.fcn["real_preprocessing"] = "resized to the generated image's size first (pix2pix's ground truth)"
        bad += real_missing + real_set.bad
    return EvalResult(values, protocol, bad, [warning] if warning else [])


def class_report(matrix: np.ndarray, names: list[str], convention: str, ignored: str) -> dict[str, Any]:
    """The protocol's convention, formulas, absent classes and per-class values of one confusion matrix."""
    class_acc, iou = per_class(matrix, convention)
    return {
        "convention": convention,
        "formulas": f"one confusion matrix over the set; {CONVENTIONS[convention]}; {ignored}",
        "absent_classes": [names[k] for k in absent_classes(matrix)],
        "per_class": {names[k]: {"accuracy": _finite(class_acc[k]), "iou": _finite(iou[k])}
                      for k in range(matrix.shape[0])},
    }


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _size(path: Path) -> tuple[int, int] | None:
    """(width, height) of an image file, None if unreadable (it is reported by the fake set)."""
    from i2i_cli.data.images import image_size

    try:
        return image_size(path)
    except I2IError:
        return None
