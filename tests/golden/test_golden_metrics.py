"""Metric formulas equal the official code's numbers (tests/golden/metrics.pt, made by record_metrics.py).

- FCN-score: pix2pix's get_scores (pixel acc, class acc, mIoU; classes absent from the labels count 0) and
  fyu/drn's per-class IoU with nanmean (absent classes NaN, skipped), on one confusion matrix of 3 label maps
  with 7 classes of which 3 never occur in the labels (one of them predicted).
- StarGAN v2's LPIPS diversity: its LPIPS network (metrics/lpips.py, its linear heads, an AlexNet with seeded
  random weights rebuilt here from the seed: no ImageNet backbone is stored) on each input's output pairs, the
  value of each loader batch and the task's mean over batches (metrics/eval.py).
Tolerance 1e-6.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from i2i_cli.evaluation import fcn_score
from i2i_cli.evaluation.lpips_metric import average_diversity, build_lpips, diversity_lpips, pair_distances
from tests.golden.golden_fixtures import assert_close, load_fixture
from tests.golden.record_metrics import seeded_alexnet_features


@pytest.fixture(scope="module")
def fixture() -> dict:
    return load_fixture("metrics")


def _matrix(fixture: dict) -> np.ndarray:
    n = fixture["n_classes"]
    return sum(fcn_score.confusion(a.numpy(), b.numpy(), n) for a, b in zip(fixture["labels"], fixture["predictions"]))


def test_confusion_matrix_equals_pix2pix_and_drn_fast_hist(fixture):
    matrix = _matrix(fixture)
    n = fixture["n_classes"]
    assert np.array_equal(matrix[:, :n], fixture["pix2pix"]["hist"].numpy())
    assert np.array_equal(matrix[:, :n], fixture["drn"]["hist"].numpy()) and not matrix[:, n].any()


def test_pix2pix_convention_equals_get_scores(fixture):
    official, matrix = fixture["pix2pix"], _matrix(fixture)
    assert fcn_score.absent_classes(matrix) == [3, 5, 6]  # 3 is predicted, never a label; 5 and 6 never occur
    ours = fcn_score.scores(matrix, "pix2pix")
    for key in ("pixel_accuracy", "class_accuracy", "mean_iou"):
        assert_close(torch.tensor(ours[key]), torch.tensor(official[key]), what=key)
    accuracy, iou = fcn_score.per_class(matrix, "pix2pix")
    assert_close(torch.from_numpy(accuracy), official["per_class_accuracy"], what="per-class accuracy")
    assert_close(torch.from_numpy(iou), official["per_class_iou"], what="per-class IoU")


def test_drn_convention_equals_per_class_iu_and_nanmean(fixture):
    official, matrix = fixture["drn"], _matrix(fixture)
    _, iou = fcn_score.per_class(matrix, "drn")
    expected = official["per_class_iou"].numpy()
    assert np.array_equal(np.isnan(iou), np.isnan(expected))  # classes 5 and 6: NaN, skipped by the mean
    assert_close(torch.from_numpy(iou[~np.isnan(iou)]), torch.from_numpy(expected[~np.isnan(expected)]),
                 what="per-class IoU")
    assert_close(torch.tensor(fcn_score.scores(matrix, "drn")["mean_iou"]), torch.tensor(official["mean_iou"]),
                 what="mIoU")
    pix2pix = fcn_score.scores(matrix, "pix2pix")["mean_iou"]
    assert abs(pix2pix - official["mean_iou"]) > 0.1  # the two conventions are different numbers here


def test_stargan_v2_diversity_averages_per_loader_batch(fixture):
    """From the official per-pair distances: each batch's official value (batched LPIPS) is the mean of its
    inputs' pair means, and the task value is the mean over batches (not over inputs)."""
    official = fixture["stargan_v2"]
    rows = list(official["pair_distances"])
    batch = official["batch_size"]
    for b, expected in enumerate(official["batch_values"]):
        value = average_diversity(rows[b * batch : (b + 1) * batch], "per_input")
        assert_close(torch.tensor(value), expected, what=f"batch {b}")
    task = average_diversity(rows, "stargan_v2", batch_size=batch)
    assert_close(torch.tensor(task), torch.tensor(official["task_value"]), what="task value")
    assert abs(average_diversity(rows, "per_input") - official["task_value"]) > 1e-5  # a partial last batch


def test_lpips_network_and_diversity_equal_stargan_v2_on_the_same_alexnet(fixture, tmp_path, monkeypatch):
    """i2i's LPIPS (lpips package v0.1 alex heads, which equal StarGAN v2's lpips_weights.ckpt) with the
    recorded seeded AlexNet gives the official pair distances, and the whole --mode stargan_v2 diversity."""
    official = fixture["stargan_v2"]
    torch.save(seeded_alexnet_features(official["alexnet_seed"]), tmp_path / "alexnet-owt-7be5be79.pth")
    monkeypatch.setenv("I2I_WEIGHTS_DIR", str(tmp_path))
    model, _ = build_lpips("alex")
    outputs = official["outputs_uint8"].float() / 127.5 - 1
    per_input = [[outputs[n, k : k + 1] for k in range(outputs.shape[1])] for n in range(outputs.shape[0])]
    assert [tuple(p) for p in official["pairs"].tolist()] == [(0, 1), (0, 2), (1, 2)]  # pair_distances' order
    distances = torch.stack([pair_distances(group, model) for group in per_input])
    assert_close(distances, official["pair_distances"], what="pair distances")
    value = diversity_lpips(per_input, model, "stargan_v2", batch_size=official["batch_size"])
    assert_close(torch.tensor(value), torch.tensor(official["task_value"]), what="task value")
