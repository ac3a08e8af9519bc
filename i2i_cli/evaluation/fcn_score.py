"""FCN-score: segmentation accuracy of generated photos, from one confusion matrix over the whole set.

Formulas of pix2pix's Cityscapes evaluation: rows are ground truth, columns predictions, labels >= n_classes
are ignored; per-pixel accuracy = trace / total; per-class accuracy = nanmean(diag / row sums); class IoU =
nanmean(diag / (row + column - diag)). A class absent from both ground truth and predictions is NaN and
skipped by the means (as the reference's nanmean does).
"""

from __future__ import annotations

import numpy as np

CITYSCAPES_CLASSES = ["road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
                      "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
                      "motorcycle", "bicycle"]


def confusion(labels: np.ndarray, predictions: np.ndarray, n_classes: int) -> np.ndarray:
    """(n_classes, n_classes) counts; pixels whose label is outside [0, n_classes) are ignored."""
    labels = labels.astype(np.int64).ravel()
    predictions = predictions.astype(np.int64).ravel()
    keep = (labels >= 0) & (labels < n_classes)
    index = n_classes * labels[keep] + np.clip(predictions[keep], 0, n_classes - 1)
    return np.bincount(index, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def scores(matrix: np.ndarray) -> dict[str, float]:
    matrix = matrix.astype(np.float64)
    diag = np.diag(matrix)
    rows, cols = matrix.sum(axis=1), matrix.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        class_acc = diag / rows
        iou = diag / (rows + cols - diag)
    total = matrix.sum()
    return {
        "pixel_accuracy": float(diag.sum() / total) if total else float("nan"),
        "class_accuracy": float(np.nanmean(class_acc)) if np.isfinite(class_acc).any() else float("nan"),
        "mean_iou": float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan"),
    }
