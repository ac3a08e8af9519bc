"""LSeSim against the official F-LSeSim code (fixture lsesim.pt, made by record_lsesim.py).

One official `optimize_parameters` with `--learned_attn --augment` at 32 px (ngf 2, ndf 4, tiny seeded VGG16,
patch_size 4 so relu3_1's map is windowed and relu4's are global, 32 queries per layer), replayed with the
official query locations and colour-jitter draws. Compared: the loader's jitter (exact, on 8-bit pixels), the
translation and every loss term, the head's InfoNCE included (1e-6), the gradients (1e-6 of the
network's largest) and the head's and G's weights after one
Adam step each (1e-5, elements whose gradient is under 1e-5 of the network's largest excluded: there Adam's first
step takes the sign of round-off).
"""

from __future__ import annotations

import pytest
import torch
from i2i_cli.models.losses.spatial_correlative import colour_jitter, from_8bit, jitter_8bit
from i2i_cli.models.methods.sesim import LSeSim

from tests.golden.golden_fixtures import assert_adam_step_close, assert_close, load_fixture
from tests.golden.sesim_replay import build, head_state, iteration, jitter_draw, replay_draws


@pytest.fixture(scope="module")
def fixture():
    return load_fixture("lsesim")


def test_fixture_is_the_learned_augmented_setting(fixture):
    assert fixture["official_repo"] == "lyndonzheng/F-LSeSim" and len(fixture["official_commit"]) == 40
    options = fixture["options"]
    assert options["learned_attn"] and options["augment"] and options["patch_size"] == 4
    assert len(fixture["jitter_draws"]) == 2  # A's, then B's


def test_colour_jitter_is_the_official_loaders_on_8bit_pixels(fixture):
    images = fixture["images"]
    for (name, jittered), recorded in zip((("A", "A_aug"), ("B", "B_aug")), fixture["jitter_draws"]):
        draw = jitter_draw(recorded)
        assert torch.equal(jitter_8bit(images[name][0], draw), images[jittered][0]), name
        batch = from_8bit(images[name])
        assert_close(colour_jitter(batch, [draw]), from_8bit(images[jittered]), what=jittered)


def test_one_training_step_equals_the_official_one(fixture, monkeypatch):
    method = build(fixture, LSeSim)
    unused = replay_draws(monkeypatch, fixture)
    batch = {k: from_8bit(fixture["images"][k]) for k in ("A", "B")}
    logged, cache, grads = iteration(method, batch)
    assert unused == ([], []), "i2i drew fewer query locations or jitters than the official step"
    official = fixture["losses"]
    assert_close(cache["fake_B"].detach(), fixture["fake_B"], what="G(A)")
    for ours, theirs, scale in (("head_NCE", "spatial", 1), ("G_GAN", "G_GAN", 1), ("G_spatial", "G_s", 1),
                                ("D_real", "D_real", 0.5), ("D_fake", "D_fake", 0.5)):
        assert_close(torch.tensor(logged[ours]), torch.tensor(official[theirs] * scale), what=ours)
    steps = {"G": (method.G.state_dict(), fixture["after"]["G"], fixture["grads"]["G"]),
             "head": (method.head.state_dict(), head_state(fixture["after"]["F"]), head_state(fixture["grads"]["F"]))}
    for name, (ours, theirs, their_grads) in steps.items():
        # gradients reach ~100 (the head's, through InfoNCE at T 0.07): compared to 1e-6 of the network's
        # largest; a tensor whose gradient is under 1e-5 of it is zero in exact arithmetic (a bias before a
        # mean-centring or an instance norm) and only round-off, so it is not compared
        scale = max(float(g.abs().max()) for g in their_grads.values())
        for key, grad in grads[name].items():
            if float(their_grads[key].abs().max()) > 1e-5 * scale:
                assert_close(grad, their_grads[key], atol=1e-6 * scale, what=f"{name} grad {key}")
            # the step check leaves out elements whose gradient is within 10x its round-off of 0
            assert_adam_step_close(ours[key], theirs[key], their_grads[key], grad_floor=1e-5 * scale)
