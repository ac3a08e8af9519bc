"""FSeSim against the official F-LSeSim code (fixture fsesim.pt, made by record_fsesim.py).

One official `optimize_parameters` at 32 px (ngf 2, ndf 4, tiny seeded VGG16, the official defaults otherwise:
cos mode, use_norm off, 256 queries, patch_size 64, so every map is global), replayed with the official
query locations, recorded and replayed in float64. Compared: the translation, every loss term (1e-9 of their
largest), G's gradients (1e-9 of the largest) and its weights after one Adam step (1e-9 plus the float32 storage
of the step, elements whose gradient is within 1e-9 of the largest of zero excluded: there Adam's first step
takes the sign of round-off).
"""

from __future__ import annotations

import pytest
import torch

from i2i_cli.models.losses.spatial_correlative import from_8bit
from i2i_cli.models.methods.sesim import FSeSim
from tests.golden.golden_fixtures import assert_float64_close, float64, load_fixture
from tests.golden.sesim_replay import assert_step_equals_the_official_one, build, iteration, replay_draws


@pytest.fixture(scope="module")
def fixture():
    return load_fixture("fsesim")


def test_fixture_names_the_official_code(fixture):
    assert fixture["official_repo"] == "lyndonzheng/F-LSeSim" and len(fixture["official_commit"]) == 40
    assert fixture["options"]["loss_mode"] == "cos" and not fixture["options"]["use_norm"]
    assert fixture["dtype"] == "float64"


@float64()
def test_one_training_step_equals_the_official_one(fixture, monkeypatch):
    method = build(fixture, FSeSim)
    unused = replay_draws(monkeypatch, fixture)
    batch = {k: from_8bit(fixture["images"][k], torch.float64) for k in ("A", "B")}
    logged, cache, grads = iteration(method, batch)
    official = fixture["losses"]
    assert_float64_close(cache["fake_B"].detach(), fixture["fake_B"], what="G(A)")
    # the official D terms are before the 0.5 of loss_D; i2i logs each half
    for ours, theirs, scale in (("G_GAN", "G_GAN", 1), ("G_spatial", "G_s", 1), ("D_real", "D_real", 0.5),
                                ("D_fake", "D_fake", 0.5)):
        assert_float64_close(torch.tensor(logged[ours]), torch.tensor(official[theirs] * scale), what=ours)
    assert unused == ([], []), "i2i drew fewer query locations than the official step"
    assert_step_equals_the_official_one(method.G.state_dict(), fixture["before"]["G"], fixture["step"]["G"],
                                        grads["G"], fixture["grads"]["G"], "G")
