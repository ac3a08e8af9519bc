"""Scoring a segmenter run on its own held-out split: the FCN-score formulas applied to the segmenter itself,
the bound an FCN-score of translated photos can reach."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from i2i_cli.data.datasets import Augment
from i2i_cli.data.images import save_image, to_tensor, to_uint8
from i2i_cli.data.labels import CITYSCAPES_CLASSES
from i2i_cli.engine.device import resolve_device
from i2i_cli.errors import BadImageError, ConfigError, DataError
from i2i_cli.evaluation.fcn_score import absent_warning, check_convention, class_report, confusion, scores
from i2i_cli.evaluation.report import EvalResult, Protocol
from i2i_cli.models.base import SegmentationModel


def evaluate_segmenter_run(loaded: Any, layout: Any, work: Path, device: str = "cpu",
                           progress: Callable[[str, int, int], None] | None = None,
                           convention: str = "pix2pix") -> EvalResult:
    """Segment a segmenter run's held-out photos (val/, else test/) and score them against their label maps with
    the FCN-score formulas: the bound an FCN-score of translated photos can reach. Colourised predictions go to
    `work`/predictions/. `convention`: the class means' (CONVENTIONS)."""
    check_convention(convention)
    method = loaded.method
    if not isinstance(method, SegmentationModel):
        raise ConfigError(f"{loaded.run_dir}: a {method.name} run, not a segmenter (train one with "
                          "`i2i train --model segmenter`)")
    split = next((s for s in ("val", "test") if s in layout.splits), None)
    if split is None:
        raise DataError(f"{layout.root}: no val/ or test/ split to evaluate the segmenter on; add one "
                        "(DIR/val/images + DIR/val/labels, or val/ with photo | label images) or pass --data DIR")
    dataset = layout.training_dataset("segmentation", split, Augment(0, 0, False, False), cache=False,
                                      segmentation=method.config.data_spec().segmentation)
    n = method.n_classes
    matrix = np.zeros((n, n + 1), dtype=np.int64)
    bad: list[tuple[str, str]] = []
    model_device = resolve_device(device)
    method.to(model_device)
    for i in range(len(dataset)):
        photo_file = dataset.pairs[i][0]
        try:
            photo, label = dataset.decoded(i)
        except BadImageError as exc:
            bad.append((exc.path, exc.reason))
            continue
        x = to_tensor(np.array(photo))[None].to(model_device)
        with torch.no_grad():
            predicted = method.logits(x).argmax(1)
        matrix += confusion(label, predicted[0].cpu().numpy().astype(np.int64), n)
        save_image(to_uint8(method.colorize(predicted)[0]), work / "predictions" / f"{photo_file.stem}.png",
                   overwrite=True)
        if progress:
            progress("segment", i + 1, len(dataset))
    if not matrix.any():
        raise DataError(f"{layout.root}: no readable photo / label pair in the {split} split")
    names = CITYSCAPES_CLASSES if n == 19 and not method.config.palette_colors else [str(k) for k in range(n)]
    protocol = Protocol(real=str(layout.root / split))
    protocol.fcn = {
        "segmenter": f"run:{loaded.run_dir.name}@{loaded.step}", "classes": n, "split": split,
        "images": len(dataset) - len(bad), "label_format": dataset.decoder.describe(),
        "resolution": "the run's load size (load_size / load_height), else the files' own",
        **class_report(matrix, names, convention, "label 255 ignored"),
    }
    warning = absent_warning(matrix, names, convention, source=f"the run's n_classes, {split}/ labels")
    return EvalResult({**scores(matrix, convention)}, protocol, bad, [warning] if warning else [])
