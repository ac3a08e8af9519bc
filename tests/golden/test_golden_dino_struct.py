"""The DINO-Struct distance equals img2img-turbo's dino_struct.py (tests/golden/dino_struct.pt, made by
record_dino_struct.py) with a tiny random ViT in DINO's layout, rebuilt here from the recorder's seed.

Float64 as recorded (tolerance 1e-10): the network, block-11 keys, self-similarity and MSE on small normalised
tensors (4x6 and 6x4 patch grids: DINO's position interpolation), and the preprocessing (PIL Resize(224),
ImageNet normalisation) of each image; one image pair end to end in float32, what `i2i eval` runs (slow).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from i2i_cli.evaluation.dino_struct import LAYER, pair_distance, preprocess
from i2i_cli.models.networks.dino_vit import DinoViT, key_self_similarity
from tests.golden.golden_fixtures import assert_close, load_fixture
from tests.golden.record_dino_struct import DEPTH, HEADS, MLP_RATIO, PATCH, WIDTH, seeded_tiny_vit


@pytest.fixture(scope="module")
def fixture() -> dict:
    return load_fixture("dino_struct")


@pytest.fixture(scope="module")
def tiny_vit() -> DinoViT:
    model = DinoViT(patch_size=PATCH, embed_dim=WIDTH, depth=DEPTH, num_heads=HEADS, mlp_ratio=MLP_RATIO)
    model.load_state_dict(seeded_tiny_vit())  # rounded to float32, then cast, as the recorder built the official one
    return model.double().eval()


def _structure(model: DinoViT, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return key_self_similarity(model.keys(x, LAYER))


def test_keys_self_similarity_and_distance_equal_the_official_in_float64(fixture, tiny_vit):
    for a, b, sim, distance in zip(fixture["small_inputs"], fixture["small_outputs"],
                                   fixture["small_input_self_similarity"], fixture["small_distances"]):
        mine = _structure(tiny_vit, a)
        assert_close(mine[0], sim, atol=1e-10, what="self-similarity")
        assert float(F.mse_loss(_structure(tiny_vit, b), mine)) == pytest.approx(distance, abs=1e-10)


def test_preprocessing_equals_the_official_transform(fixture):
    for image, shape, sums, corner in zip(fixture["inputs"], fixture["preprocessed_shape"],
                                          fixture["preprocessed_sum"], fixture["preprocessed_corner"]):
        mine = preprocess(image.numpy(), torch.float64)[0]
        assert list(mine.shape) == shape.tolist()
        assert_close(mine[:, :8, :8], corner, atol=1e-12, what="preprocessed corner")
        assert_close(mine.sum(dim=(1, 2)), sums, atol=1e-9, what="preprocessed sums")


@pytest.mark.slow  # two 224 px images through 12 blocks: ~45 s on a busy 2-core CPU
def test_one_pair_end_to_end_in_float32(fixture):
    single = DinoViT(patch_size=PATCH, embed_dim=WIDTH, depth=DEPTH, num_heads=HEADS, mlp_ratio=MLP_RATIO).eval()
    single.load_state_dict(seeded_tiny_vit())
    source, output = fixture["inputs"][0].numpy(), fixture["outputs"][0].numpy()
    assert pair_distance(single, source, output) == pytest.approx(fixture["distances"][0], rel=1e-5)
    assert pair_distance(single, source, source) == 0.0
    with pytest.raises(ValueError, match="tokens"):  # 40x56 -> 28x39 patches; 40x80 -> 28x56
        pair_distance(single, source, np.zeros((40, 80, 3), np.uint8))
