"""StarGAN v2 against the official code (tests/golden/starganv2.pt, recorded by record_starganv2.py).

Initial weights in the official key layout (loaded through the release importer), outputs of the four networks,
every D and G loss term of one iteration in the official order (AFHQ: w_hpf 0; CelebA-HQ: w_hpf 1 with masks),
weights after each optimizer step, the EMA after one update, and the FAN's heat maps and masks. Recorded and
replayed in float64 (golden_fixtures' policy): 1e-9 of each compared tensor's largest (a loss term: of itself);
after an Adam step 1e-9 of the weights' largest plus the float32 storage of the step, excluding the elements
whose gradient was ~0 in the official step (there Adam's first step lr * g / (|g| + eps) has a round-off sign);
the fixture marks them (`.keep`).
"""

from __future__ import annotations

import pytest
import torch

from i2i_cli.engine.trainer import EMA, _optimizer
from i2i_cli.models.base import Progress
from i2i_cli.models.methods.starganv2 import StarGANv2, StarGANv2Config
from i2i_cli.models.networks.fan import FAN, masks_from_heatmaps
from i2i_cli.pretrained import load_official
from tests.golden.golden_fixtures import FLOAT32_STORAGE, assert_float64_close, float64, load_fixture
from tests.golden.record_starganv2 import (
    DIM_IN,
    FAN_GAIN,
    LATENT_DIM,
    MAX_CONV_DIM,
    SEED,
    SIZE,
    STYLE_DIM,
    inputs,
    mapping_subset,
    seeded_fill,
    stand_in_masks,
    synthetic_heatmaps,
)

FIXTURE = load_fixture("starganv2")
NETS = {"generator": "G", "mapping_network": "F", "style_encoder": "E", "discriminator": "D"}


def _method(setting: dict) -> StarGANv2:
    config = StarGANv2Config(size=SIZE, dim_in=DIM_IN, style_dim=STYLE_DIM, latent_dim=LATENT_DIM,
                             max_conv_dim=MAX_CONV_DIM, w_hpf=setting["w_hpf"], lambda_ds=setting["lambda_ds"],
                             fan_width=16, total_iters=10, ds_iter=10)
    method = StarGANv2(config, domains=["a", "b"])
    initial = setting["initial"]
    for official in ("generator", "style_encoder", "discriminator"):  # the importer: hpf.filter checked, not loaded
        load_official(getattr(method, NETS[official]), initial[official], official)
    method.F.load_state_dict(seeded_fill(method.F.state_dict(), SEED + 1))  # too big to store: the same seeded fill
    method.to(torch.float64)
    for key, value in method.F.state_dict().items():
        assert float(value.double().sum()) == pytest.approx(initial["mapping_network_sums"][key], abs=1e-6), key
    if setting["w_hpf"] > 0:
        # the recorded iteration's masks: a formula of the image (see the recorder), constant as the FAN's are
        method.face_masks = lambda x: stand_in_masks(x.detach())
    return method


def _compare_step(net: torch.nn.Module, expected: dict, official_name: str, initial: dict) -> None:
    """The official step (float32, from the float16-exact initial weights) or, for the mapping network, a seeded
    subset of its float64 values after the step; elements whose gradient was ~0 (`.keep` False) left out."""
    for key, p in net.named_parameters():
        actual = p.detach()
        if official_name == "mapping_network":
            actual = actual.flatten()[mapping_subset(actual, sum(map(ord, key)))]
            wanted, slack = expected[key].double(), torch.zeros(())
        else:
            step = expected[key].double()
            wanted, slack = initial[official_name][key].double() + step, FLOAT32_STORAGE * step.abs()
        keep = expected.get(key + ".keep", torch.ones_like(wanted, dtype=torch.bool))
        scale = float(wanted.abs().max())
        assert_float64_close(actual[keep], wanted[keep], what=f"{official_name}.{key} after the step", scale=scale,
                             slack=slack.broadcast_to(wanted.shape)[keep])


def _assert_terms_equal(ours: dict[str, float], official: dict[str, float], phase: str) -> None:
    assert set(ours) == set(official), phase
    for name, value in official.items():
        assert_float64_close(torch.tensor(ours[name]), torch.tensor(float(value)), what=f"{phase} {name}")


def _official_terms(terms: dict[str, torch.Tensor], phase: str, lambda_ds: float) -> dict[str, float]:
    """i2i's weighted loss terms as the official unweighted parts (lambda_reg, lambda_sty, lambda_cyc are 1)."""
    guide = phase.split("_")[1]

    def value(key: str) -> float:
        return float(terms[key].detach())

    if phase.startswith("D"):
        return {"real": value(f"D_real_{guide}"), "fake": value(f"D_fake_{guide}"), "reg": value(f"R1_{guide}")}
    return {"adv": value(f"G_adv_{guide}"), "sty": value(f"G_sty_{guide}"), "ds": -value(f"G_ds_{guide}") / lambda_ds,
            "cyc": value(f"G_cyc_{guide}")}


@pytest.mark.parametrize("name", ["afhq", "celeba_hq"])
@float64()
def test_networks_losses_and_one_iteration_equal_the_official_code(name):
    assert FIXTURE["dtype"] == "float64"
    setting = FIXTURE[name]
    torch.manual_seed(0)
    method = _method(setting)
    x_real, x_ref, x_ref2, z, z2 = inputs(setting["inputs_seed"])
    assert [float(t.double().sum()) for t in (x_real, x_ref, x_ref2)] == pytest.approx(setting["input_sums"], abs=1e-9)
    assert torch.equal(z, setting["z"]) and torch.equal(z2, setting["z2"])
    y_org, y_trg = setting["y_org"], setting["y_trg"]
    with torch.no_grad():
        s = method.F(z, y_trg)
        assert_float64_close(s, setting["mapping_out"], what="mapping network")
        assert_float64_close(method.E(x_ref, y_trg), setting["style_encoder_out"], what="style encoder")
        assert_float64_close(method.G(x_real, s, method.face_masks(x_real)), setting["generator_out"],
                             what="generator")
        assert_float64_close(method.D(x_real, y_org), setting["discriminator_out"], what="discriminator")

    optimizers = {spec.name: _optimizer(spec, torch.device("cpu")) for spec in method.optimizers()}
    ema = EMA(method, method.ema_networks(), method.config.ema_beta)
    batch = {"x": x_real, "y": y_org, "ref": x_ref, "ref2": x_ref2, "y_ref": y_trg}
    cache: dict = {"z": z, "z2": z2}
    after = {"D_latent": ("D_after_latent", ["discriminator"]), "G_latent": ("G_after_latent", None),
             "G_ref": ("G_after_ref", None)}
    for phase in method.phases(Progress(step=0, total_steps=10)):
        frozen = [getattr(method, n) for n in phase.frozen]
        for net in frozen:
            net.requires_grad_(False)
        terms = phase.compute(batch, cache)
        for net in frozen:
            net.requires_grad_(True)
        official = setting["losses"][phase.name]
        _assert_terms_equal(_official_terms(terms, phase.name, setting["lambda_ds"]), official, phase.name)
        for n in phase.optimizers:
            optimizers[n].zero_grad(set_to_none=True)
        sum(terms.values()).backward()
        for n in phase.optimizers:
            optimizers[n].step()
        key, nets = after.get(phase.name, (None, None))
        if key and key in setting:
            if nets:  # a single network's snapshot
                _compare_step(method.D, setting[key], "discriminator", setting["initial"])
            else:
                for official_name, snapshot in setting[key].items():
                    _compare_step(getattr(method, NETS[official_name]), snapshot, official_name, setting["initial"])
    ema.update(method)
    if "D_after_ref" in setting:
        _compare_step(method.D, setting["D_after_ref"], "discriminator", setting["initial"])
        _compare_step(ema.copies["G"], setting["ema"]["generator"], "generator", setting["initial"])


@float64()
def test_the_fan_and_its_masks_equal_the_official_code():
    fixture = FIXTURE["fan"]
    fan = FAN().to(torch.float64)
    fan.load_pretrained_state_dict({"state_dict": seeded_fill(fan.state_dict(), SEED + 20, gain=FAN_GAIN)})
    for key, value in fan.state_dict().items():
        assert float(value.double().sum()) == pytest.approx(fixture["weight_sums"][key], abs=1e-6), key
    g = torch.Generator().manual_seed(fixture["x_seed"])
    x = torch.rand(1, 3, 64, 64, generator=g) * 2 - 1
    assert float(x.double().sum()) == pytest.approx(fixture["x_sum"], abs=1e-9)
    with torch.no_grad():
        raw = fan(torch.nn.functional.interpolate(x, size=(256, 256), mode="bilinear") * 0.5 + 0.5)[:, :-1]
        assert_float64_close(raw[:, :, ::8, ::8], fixture["heatmaps_sub8"], what="FAN heat maps")
        whole, inner = fan.face_masks(x)
    assert_float64_close(whole[..., ::4, ::4], fixture["masks_sub4"][0], what="first mask")
    assert_float64_close(inner[..., ::4, ::4], fixture["masks_sub4"][1], what="second mask")
    whole, inner = masks_from_heatmaps(synthetic_heatmaps(fixture["synthetic_seed"]))
    assert_float64_close(whole[..., ::4, ::4], fixture["synthetic_masks_sub4"][0], what="preprocessed synthetic, first")
    assert_float64_close(inner[..., ::4, ::4], fixture["synthetic_masks_sub4"][1], what="preprocessed synthetic, second")
