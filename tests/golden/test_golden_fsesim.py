"""FSeSim against the official F-LSeSim code (fixture fsesim.pt, made by record_fsesim.py).

One official `optimize_parameters` at 32 px (ngf 2, ndf 4, tiny seeded VGG16, the official defaults otherwise:
cos mode, use_norm off, 256 queries, patch_size 64, so every map is global), replayed with the official
query locations. Compared: the translation, every loss term (1e-6), G's gradients (1e-6 of
the largest) and its weights after one Adam step (1e-5, elements whose gradient is
under 1e-5 of the largest excluded: there Adam's first step takes the sign of round-off).
"""

from __future__ import annotations

import pytest
import torch
from i2i_cli.models.losses.spatial_correlative import from_8bit
from i2i_cli.models.methods.sesim import FSeSim

from tests.golden.golden_fixtures import assert_adam_step_close, assert_close, load_fixture
from tests.golden.sesim_replay import build, iteration, replay_draws


@pytest.fixture(scope="module")
def fixture():
    return load_fixture("fsesim")


def test_fixture_names_the_official_code(fixture):
    assert fixture["official_repo"] == "lyndonzheng/F-LSeSim" and len(fixture["official_commit"]) == 40
    assert fixture["options"]["loss_mode"] == "cos" and not fixture["options"]["use_norm"]


def test_one_training_step_equals_the_official_one(fixture, monkeypatch):
    method = build(fixture, FSeSim)
    unused = replay_draws(monkeypatch, fixture)
    batch = {k: from_8bit(fixture["images"][k]) for k in ("A", "B")}
    logged, cache, grads = iteration(method, batch)
    official = fixture["losses"]
    assert_close(cache["fake_B"].detach(), fixture["fake_B"], what="G(A)")
    # the official D terms are before the 0.5 of loss_D; i2i logs each half
    for ours, theirs, scale in (("G_GAN", "G_GAN", 1), ("G_spatial", "G_s", 1), ("D_real", "D_real", 0.5),
                                ("D_fake", "D_fake", 0.5)):
        assert_close(torch.tensor(logged[ours]), torch.tensor(official[theirs] * scale), what=ours)
    assert unused == ([], []), "i2i drew fewer query locations than the official step"
    theirs = fixture["grads"]["G"]
    # compared to 1e-6 of the largest gradient; a tensor whose gradient is under 1e-5 of it is zero in exact
    # arithmetic (a bias before an instance norm) and only round-off, so it is not compared
    scale = max(float(g.abs().max()) for g in theirs.values())
    ours = method.G.state_dict()
    for key, grad in grads["G"].items():
        if float(theirs[key].abs().max()) > 1e-5 * scale:
            assert_close(grad, theirs[key], atol=1e-6 * scale, what=f"grad {key}")
        # the step check leaves out elements whose gradient is within 10x its round-off of 0
        assert_adam_step_close(ours[key], fixture["after"]["G"][key], theirs[key], grad_floor=1e-5 * scale)
