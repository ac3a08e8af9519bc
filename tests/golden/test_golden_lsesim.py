"""LSeSim against the official F-LSeSim code (fixture lsesim.pt, made by record_lsesim.py).

One official `optimize_parameters` with `--learned_attn --augment` at 32 px (ngf 2, ndf 4, tiny seeded VGG16,
patch_size 4 so relu3_1's map is windowed and relu4's are global, 32 queries per layer), replayed with the
official query locations and colour-jitter draws. Recorded and replayed in
float64. Compared: the loader's jitter (exact, on 8-bit pixels), the translation and every loss term, the head's
InfoNCE included (1e-9 of their largest), the gradients (1e-9 of the network's largest) and the head's and G's
weights after one Adam step each (1e-9 plus the float32 storage of the step, elements whose gradient is within
1e-9 of the network's largest of zero excluded: there Adam's first step takes the sign of round-off).
"""

from __future__ import annotations

import pytest
import torch

from i2i_cli.models.losses.spatial_correlative import colour_jitter, from_8bit, jitter_8bit
from i2i_cli.models.methods.sesim import LSeSim
from tests.golden.golden_fixtures import assert_close, assert_float64_close, float64, load_fixture
from tests.golden.sesim_replay import (
    assert_step_equals_the_official_one,
    build,
    head_state,
    iteration,
    jitter_draw,
    replay_draws,
)


@pytest.fixture(scope="module")
def fixture():
    return load_fixture("lsesim")


def test_fixture_is_the_learned_augmented_setting(fixture):
    assert fixture["official_repo"] == "lyndonzheng/F-LSeSim" and len(fixture["official_commit"]) == 40
    assert fixture["dtype"] == "float64"
    options = fixture["options"]
    assert options["learned_attn"] and options["augment"] and options["patch_size"] == 4
    assert len(fixture["jitter_draws"]) == 2  # A's, then B's


def test_colour_jitter_is_the_official_loaders_on_8bit_pixels(fixture):
    images = fixture["images"]
    for (name, jittered), recorded in zip((("A", "A_aug"), ("B", "B_aug")), fixture["jitter_draws"]):
        draw = jitter_draw(recorded)
        assert torch.equal(jitter_8bit(images[name][0], draw), images[jittered][0]), name
        batch = from_8bit(images[name])
        assert_close(colour_jitter(batch, [draw]), from_8bit(images[jittered]), atol=0, what=jittered)
        wide = from_8bit(images[name], torch.float64)
        assert torch.equal(colour_jitter(wide, [draw]), from_8bit(images[jittered], torch.float64)), jittered


@float64()
def test_one_training_step_equals_the_official_one(fixture, monkeypatch):
    method = build(fixture, LSeSim)
    unused = replay_draws(monkeypatch, fixture)
    batch = {k: from_8bit(fixture["images"][k], torch.float64) for k in ("A", "B")}
    logged, cache, grads = iteration(method, batch)
    assert unused == ([], []), "i2i drew fewer query locations or jitters than the official step"
    official = fixture["losses"]
    assert_float64_close(cache["fake_B"].detach(), fixture["fake_B"], what="G(A)")
    for ours, theirs, scale in (("head_NCE", "spatial", 1), ("G_GAN", "G_GAN", 1), ("G_spatial", "G_s", 1),
                                ("D_real", "D_real", 0.5), ("D_fake", "D_fake", 0.5)):
        assert_float64_close(torch.tensor(logged[ours]), torch.tensor(official[theirs] * scale), what=ours)
    assert_step_equals_the_official_one(method.G.state_dict(), fixture["before"]["G"], fixture["step"]["G"],
                                        grads["G"], fixture["grads"]["G"], "G")
    # the official head's keys conv_i.N (inside its loss module) are i2i's heads.i.N
    assert_step_equals_the_official_one(method.head.state_dict(), head_state(fixture["before"]["F"]),
                                        head_state(fixture["step"]["F"]), grads["head"],
                                        head_state(fixture["grads"]["F"]), "head")
