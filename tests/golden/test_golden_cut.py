"""CUT and FastCUT against taesungp/contrastive-unpaired-translation: one training iteration from the official
weights (netF included, as the official data_dependent_initialize built it).

Fixtures made by record_cut.py / record_fastcut.py (ResNet-6 G with anti-aliased sampling, ngf 4 / 2, ndf 2,
netF_nc 16, 64 patches, 32 px, batch 2). The official code draws the PatchNCE locations and FastCUT's flip
with numpy; the fixtures hold those draws and i2i replays them through the phase cache (models/draws.py).
Recorded and replayed in float64: outputs and losses to 1e-9 of their largest, gradients to 1e-9 of their
module's largest, weights after one Adam step to 1e-9 (plus the float32 storage of the step), except elements
whose gradient is ~0, where Adam's first step takes a round-off sign (golden_fixtures' float64 policy).
"""

from __future__ import annotations

import pytest
import torch

from tests.golden.golden_fixtures import assert_float64_close, float64
from tests.golden.replay_cut_cyclegan_pix2pix import (
    assert_networks_after_step,
    build,
    load,
    to_float,
    train_iteration,
)


@pytest.mark.parametrize("name", ["cut", "fastcut"])
def test_cut_iteration_equals_the_official_one(name: str) -> None:
    with float64():
        _compare_iteration(name)


def _compare_iteration(name: str) -> None:
    fixture = load(name)
    assert fixture["dtype"] == "float64"
    method = build(name, fixture)
    batch = {"A": to_float(fixture["inputs"]["A_u8"]), "B": to_float(fixture["inputs"]["B_u8"])}
    cache: dict[str, object] = {"draws": dict(fixture["draws"])}
    terms = train_iteration(method, batch, cache)

    assert cache["flipped"] == fixture["draws"].get("flip", False)
    assert_float64_close(cache["fake_B"].detach(), fixture["outputs"]["fake_B"], what="fake_B")
    if "idt_B" in fixture["outputs"]:
        assert_float64_close(cache["idt_B"].detach(), fixture["outputs"]["idt_B"], what="idt_B")
    losses = {k: torch.tensor(v) for k, v in fixture["losses"].items()}
    assert_float64_close(terms["D_fake"], 0.5 * losses["D_fake"], what="D_fake")  # i2i halves each, the official the sum
    assert_float64_close(terms["D_real"], 0.5 * losses["D_real"], what="D_real")
    assert_float64_close(terms["G_GAN"], losses["G_GAN"], what="G_GAN")
    if "NCE_Y" in losses:  # with identity NCE both terms are averaged
        assert_float64_close(terms["NCE"], 0.5 * losses["NCE"], what="NCE")
        assert_float64_close(terms["NCE_Y"], 0.5 * losses["NCE_Y"], what="NCE_Y")
    else:
        assert_float64_close(terms["NCE"], losses["NCE"], what="NCE")
    assert_networks_after_step(method, fixture)


@float64()
def test_cut_draws_its_patches_when_none_are_given_and_records_them() -> None:
    fixture = load("cut")
    method = build("cut", fixture)
    batch = {"A": to_float(fixture["inputs"]["A_u8"]), "B": to_float(fixture["inputs"]["B_u8"])}
    cache: dict[str, object] = {}
    train_iteration(method, batch, cache)
    drawn = cache["draws"]
    assert set(drawn) == {"patch_ids/NCE", "patch_ids/NCE_Y"}
    official = fixture["draws"]["patch_ids/NCE"]
    assert [ids.shape for ids in drawn["patch_ids/NCE"]] == [ids.shape for ids in official]
    assert all(len(set(ids.tolist())) == len(ids) for ids in drawn["patch_ids/NCE"])  # distinct locations
