"""Attention-guided CycleGAN's strided layers against TensorFlow (fixture agcyclegan_same.pt, made by
record_agcyclegan_same.py with tf.nn.conv2d / tf.nn.conv2d_transpose, padding "SAME", stride 2, 3x3).

The official code (TensorFlow 1, tf.contrib) cannot run on TensorFlow 2, so its networks are not recorded; this
pins the padding its stride-2 convolutions and transposed convolutions use, with TensorFlow's own kernels, at
8 and 32 px (1e-5: sums of 27-36 products of unit-variance numbers, float32).
"""

from __future__ import annotations

import pytest
import torch

from models.networks.attention import Conv2dSame, ConvTranspose2dSame
from tests.golden.golden_fixtures import assert_close, load_fixture


@pytest.fixture(scope="module")
def fixture():
    return load_fixture("agcyclegan_same")


def test_stride2_same_convolution_equals_tensorflows(fixture):
    for case in fixture["cases"]:
        conv = Conv2dSame(3, 4, 3, stride=2)
        conv.load_state_dict({"weight": case["weight"], "bias": torch.zeros(4)})
        with torch.no_grad():
            assert_close(conv(case["x"]), case["down"], atol=1e-5, what=f"conv {tuple(case['x'].shape)}")


def test_stride2_same_transposed_convolution_equals_tensorflows(fixture):
    for case in fixture["cases"]:
        up = ConvTranspose2dSame(4, 3, 3, stride=2)
        up.load_state_dict({"weight": case["t_weight"], "bias": torch.zeros(3)})
        with torch.no_grad():
            assert_close(up(case["z"]), case["up"], atol=1e-5, what=f"transposed {tuple(case['z'].shape)}")
