"""`i2i data align-faces` against StarGAN v2's own align mode (fixture: record_align_faces.py).

Bounds: the matrix 1e-5 (measured: 0, bit-identical); the padded image 1e-4 levels (the fixture keeps every
3rd pixel as float32; measured 7.6e-6, the float32 storage); the Lanczos warp 1e-4 levels (every 2nd pixel, float32;
measured 7.6e-6: OpenCV's float sum order differs from ours by round-off only); the saved uint8 image at most 1
level anywhere (a value within round-off of a .5 rounding boundary may land either side) and on average under
0.01 levels (measured: 0, identical).
"""

from __future__ import annotations

import numpy as np
import torch

from i2i_cli import face_align as fa
from i2i_cli.models.networks.fan import landmarks_from_heatmaps
from tests.golden.golden_fixtures import assert_close, load_fixture
from tests.golden.record_align_faces import heatmaps, mean_landmarks, photo, source_landmarks

FIXTURE = load_fixture("align_faces")
SIZE = FIXTURE["size"]


def test_the_inputs_are_the_recorded_ones() -> None:
    assert FIXTURE["official_repo"] == "clovaai/stargan-v2"
    assert np.array_equal(FIXTURE["landmarks"].numpy(), source_landmarks())
    assert np.array_equal(FIXTURE["reference"].numpy(), mean_landmarks() * np.float32(SIZE / 256))


def test_the_resize_and_uint8_round_trip_match_the_reference() -> None:
    x = fa._to_unit_tensor(fa.resize_like_reference(photo(), SIZE))[0]
    pixels = ((x.permute(1, 2, 0).numpy() * np.float32(0.5) + np.float32(0.5)) * np.float32(255)).astype(np.uint8)
    assert np.array_equal(pixels, FIXTURE["resized"].numpy())


def test_pad_mirror_and_the_matrix_match_the_reference() -> None:
    padded, moved = fa.pad_mirror(FIXTURE["resized"].numpy(), source_landmarks())
    assert np.array_equal(moved, FIXTURE["moved_landmarks"].numpy())
    assert_close(torch.from_numpy(padded[::3, ::3]), FIXTURE["padded_every_3rd"], atol=1e-4, what="padded")
    matrix = fa.landmarks_to_matrix(moved, FIXTURE["reference"].numpy())
    assert_close(torch.from_numpy(matrix), FIXTURE["matrix"], atol=1e-5, what="matrix")


def test_the_lanczos_warp_matches_opencv() -> None:
    padded, _ = fa.pad_mirror(FIXTURE["resized"].numpy(), source_landmarks())
    warped = fa.warp_lanczos4(padded, FIXTURE["matrix"].numpy(), SIZE)
    assert_close(torch.from_numpy(warped[::2, ::2]), FIXTURE["warped_every_2nd"], atol=1e-4, what="warped")


def test_the_saved_aligned_face_matches_within_one_level() -> None:
    padded, moved = fa.pad_mirror(FIXTURE["resized"].numpy(), source_landmarks())
    warped = fa.warp_lanczos4(padded, fa.landmarks_to_matrix(moved, FIXTURE["reference"].numpy()), SIZE)
    diff = np.abs(fa._saved_pixels(warped).astype(int) - FIXTURE["saved"].numpy().astype(int))
    assert diff.max() <= 1 and diff.mean() < 0.01, (diff.max(), diff.mean())


def test_heatmap_peaks_follow_get_preds_fromhm() -> None:
    assert torch.equal(landmarks_from_heatmaps(heatmaps()), FIXTURE["preds_fromhm"])
