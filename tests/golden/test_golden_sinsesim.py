"""SinSeSim against the official F-LSeSim code (fixture sinsesim.pt, made by record_sinsesim.py), in float64.

One official `optimize_parameters` of `--model sinsc` (64 px crops, ngf 1, ndf 1, batch 2, tiny seeded VGG16),
replayed with the official draws (G's noise maps, the query locations, the penalty's mixing weights) from the
same seeded weights. Compared: G(A), every loss term (G GAN, spatial, D real / fake, gradient penalty), G's
gradients and D's weights after one Adam step.
"""

from __future__ import annotations

from typing import Any

import pytest

from i2i_cli.models.methods.single_image import SinSeSim, SinSeSimConfig
from tests.golden.golden_fixtures import assert_close, load_fixture
from tests.golden.sesim_replay import replay_draws, tiny_vgg
from tests.golden.test_golden_sincut import RTOL, canonical_init, one_step


@pytest.fixture(scope="module")
def fixture() -> dict[str, Any]:
    return load_fixture("sinsesim")


def build(fixture: dict[str, Any]) -> SinSeSim:
    o = fixture["options"]
    config = SinSeSimConfig(size=o["crop_size"], ngf=o["ngf"], ndf=o["ndf"], batch_size=2)
    assert (config.lr, config.beta1, config.beta2, config.num_patches, config.patch_size, config.loss_mode,
            config.use_norm, config.lambda_spatial, config.lambda_gradient, config.gan_mode, config.pool_size,
            config.n_down) == (o["lr"], o["beta1"], o["beta2"], int(o["patch_nums"]), o["patch_size"], o["loss_mode"],
                               o["use_norm"], o["lambda_spatial"], o["lambda_gradient"], o["gan_mode"], o["pool_size"],
                               o["stylegan2_G_num_downsampling"]), "defaults differ"
    assert o["attn_layers"].replace(" ", "") == "4,7,9" and config.layers == "relu3_1,relu4_1,relu4_3"
    method = SinSeSim(config)
    method.vgg.features = tiny_vgg(fixture["vgg_features"])
    method.double()
    method.vgg.features.load_state_dict(fixture["vgg_features"])  # again in float64 (tiny_vgg builds float32)
    for name, seed in fixture["init_seeds"].items():
        net = getattr(method, name)
        canonical_init(net, seed)
        for key, value in fixture["buffers"][name].items():
            assert_close(net.state_dict()[key], value, atol=0, what=f"{name} buffer {key}")
    return method


def test_fixture_names_the_official_code(fixture):
    assert fixture["official_repo"] == "lyndonzheng/F-LSeSim"
    assert len(fixture["official_commit"]) == 40 and fixture["dtype"] == "float64"


def test_one_training_step_equals_the_official_one(fixture, monkeypatch):
    method = build(fixture)
    unused = replay_draws(monkeypatch, fixture)
    batch = {k: v.double() / 127.5 - 1 for k, v in fixture["images"].items()}
    draws = {"noise": fixture["draws"]["noise"], "gp_alpha": fixture["draws"]["gp_alpha"][0]}
    logged, cache, grads = one_step(method, batch, draws)
    assert unused == ([], []), "i2i drew fewer query locations than the official step"
    assert_close(cache["fake_B"].detach(), fixture["fake_B"], atol=RTOL * 10, what="G(A)")
    official = fixture["losses"]
    for ours, theirs, scale in (("G_GAN", "G_GAN", 1), ("G_spatial", "G_s", 1), ("D_real", "D_real", 0.5),
                                ("D_fake", "D_fake", 0.5), ("D_gradient", "D_Gradient", 1)):
        expected = official[theirs] * scale
        assert abs(logged[ours] - expected) <= RTOL * max(1.0, abs(expected)), (ours, logged[ours], expected)
    theirs = fixture["grads"]["G"]
    scale = max(float(g.abs().max()) for g in theirs.values())
    for key, grad in grads["G"].items():
        assert_close(grad, theirs[key], atol=RTOL * scale, what=f"G grad {key}")
    ours = method.D.state_dict()
    for key, value in fixture["after"]["D"].items():
        assert_close(ours[key], value, atol=RTOL * 10, what=f"D after the step: {key}")
