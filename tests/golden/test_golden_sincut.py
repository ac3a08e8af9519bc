"""SinCUT against the official CUT code (fixture sincut.pt, made by record_sincut.py), in float64.

One official `optimize_parameters` of `--model sincut` at its 64 px crop (ngf 1, ndf 1, netF_nc 16, batch 2),
replayed with the official draws (G's noise maps, the PatchNCE locations) from the same seeded weights.
Compared: G(A), every loss term (D fake / real, R1, G GAN, both PatchNCE terms, identity L1), G's and F's
gradients, and G's, F's and D's weights after one Adam step.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from i2i_cli.engine.trainer import _optimizer
from i2i_cli.models.base import Progress
from i2i_cli.models.methods.single_image import SinCUT, SinCUTConfig
from tests.golden.golden_fixtures import assert_close, load_fixture

RTOL = 1e-9


@pytest.fixture(scope="module")
def fixture() -> dict[str, Any]:
    return load_fixture("sincut")


@torch.no_grad()
def canonical_init(net: torch.nn.Module, seed: int) -> None:
    """The recorder's seeded redraw of every parameter (sorted keys; vectors scaled by 0.1)."""
    generator = torch.Generator().manual_seed(seed)
    params = dict(net.named_parameters())
    for key in sorted(params):
        p = params[key]
        p.copy_(torch.randn(p.shape, generator=generator, dtype=torch.float64) * (1.0 if p.dim() > 1 else 0.1))


def build(fixture: dict[str, Any]) -> SinCUT:
    o = fixture["options"]
    config = SinCUTConfig(size=o["crop_size"], ngf=o["ngf"], ndf=o["ndf"], netF_nc=o["netF_nc"], batch_size=2)
    assert (config.lr, config.beta1, config.beta2, config.lambda_NCE, config.lambda_R1, config.lambda_identity,
            config.nce_layers, config.num_patches, config.nce_T, config.n_down, config.gan_mode) == (
        o["lr"], o["beta1"], o["beta2"], o["lambda_NCE"], o["lambda_R1"], o["lambda_identity"], o["nce_layers"],
        o["num_patches"], o["nce_T"], o["stylegan2_G_num_downsampling"], o["gan_mode"]), "defaults differ"
    method = SinCUT(config).double()
    for name, seed in fixture["init_seeds"].items():
        net = getattr(method, name)
        assert set(dict(net.named_parameters())) | set(fixture["buffers"][name]) == set(net.state_dict())
        canonical_init(net, seed)
        for key, value in fixture["buffers"][name].items():
            assert_close(net.state_dict()[key], value, atol=0, what=f"{name} buffer {key}")
    return method


def one_step(method: SinCUT, batch: dict[str, torch.Tensor], draws: dict[str, Any]
             ) -> tuple[dict[str, float], dict[str, Any], dict[str, dict[str, torch.Tensor]]]:
    """One iteration as the trainer runs it (phases in order, each optimizer stepped), with given draws."""
    optimizers = {s.name: _optimizer(s, torch.device("cpu")) for s in method.optimizers()}  # the trainer's own
    cache: dict[str, Any] = {"draws": draws}
    logged: dict[str, float] = {}
    grads: dict[str, dict[str, torch.Tensor]] = {}
    for phase in method.phases(Progress()):
        for name in phase.frozen:
            getattr(method, name).requires_grad_(False)
        terms = phase.compute(batch, cache)
        for name in phase.optimizers:
            optimizers[name].zero_grad(set_to_none=True)
        sum(terms.values()).backward()
        for name in phase.optimizers:
            grads[name] = {k: p.grad.clone() for k, p in getattr(method, name).named_parameters()}
            optimizers[name].step()
        for name in phase.frozen:
            getattr(method, name).requires_grad_(True)
        logged.update({k: float(v.detach()) for k, v in terms.items()})
    return logged, cache, grads


def test_fixture_names_the_official_code(fixture):
    assert fixture["official_repo"] == "taesungp/contrastive-unpaired-translation"
    assert len(fixture["official_commit"]) == 40 and fixture["dtype"] == "float64"


def test_one_training_step_equals_the_official_one(fixture):
    method = build(fixture)
    batch = {k: v.double() / 127.5 - 1 for k, v in fixture["images"].items()}
    ids = fixture["draws"]["patch_ids"]
    draws = {"noise": fixture["draws"]["noise"], "patch_ids/NCE": ids[0], "patch_ids/NCE_Y": ids[1]}
    logged, cache, grads = one_step(method, batch, draws)
    assert_close(cache["fake_B"].detach(), fixture["fake_B"], atol=RTOL * 10, what="G(A)")
    official = fixture["losses"]
    # the official D terms are before loss_D's 0.5 and its NCE terms before their average; i2i logs each part
    for ours, theirs, scale in (("D_fake", "D_fake", 0.5), ("D_real", "D_real", 0.5), ("D_R1", "D_R1", 1),
                                ("G_GAN", "G_GAN", 1), ("NCE", "NCE", 0.5), ("NCE_Y", "NCE_Y", 0.5), ("idt", "idt", 1)):
        expected = official[theirs] * scale
        assert abs(logged[ours] - expected) <= RTOL * max(1.0, abs(expected)), (ours, logged[ours], expected)
    for name in ("G", "F"):
        theirs = fixture["grads"][name]
        scale = max(float(g.abs().max()) for g in theirs.values())
        for key, grad in grads[name].items():
            assert_close(grad, theirs[key], atol=RTOL * scale, what=f"{name} grad {key}")
    for name, after in fixture["after"].items():
        ours = getattr(method, name).state_dict()
        for key, value in after.items():
            assert_close(ours[key], value, atol=RTOL * 10, what=f"{name} after the step: {key}")
