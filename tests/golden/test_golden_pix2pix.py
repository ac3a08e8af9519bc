"""pix2pix against junyanz/pytorch-CycleGAN-and-pix2pix: one training iteration from the official weights.

Fixture made by record_pix2pix.py (U-Net with 6 levels, ngf = ndf = 2, batch norm, dropout, 64 px, batch 1).
The dropout masks are torch draws: the official step ran right after torch.manual_seed(seed), and i2i's
iteration makes the same draws in the same order from the same seed (the masks are compared too).
Outputs and losses to 1e-6; gradients to 1e-6 of each tensor's largest; weights after one Adam step to
1e-5, except elements whose gradient is ~0, where Adam's first step takes a round-off sign.
"""

from __future__ import annotations

import torch
from torch import nn

from tests.golden.golden_fixtures import assert_close
from tests.golden.replay_cut_cyclegan_pix2pix import (
    assert_networks_after_step,
    build,
    load,
    to_float,
    train_iteration,
)


def _dropout_masks(net: nn.Module) -> list[torch.Tensor]:
    masks: list[torch.Tensor] = []
    for m in net.modules():
        if isinstance(m, nn.Dropout):
            m.register_forward_hook(lambda mod, inp, out: masks.append((out == 0) & (inp[0] != 0)))
    return masks


def test_pix2pix_iteration_equals_the_official_one() -> None:
    fixture = load("pix2pix")
    method = build("pix2pix", fixture)
    batch = {"A": to_float(fixture["inputs"]["A_u8"]), "B": to_float(fixture["inputs"]["B_u8"])}
    masks = _dropout_masks(method.G)
    torch.manual_seed(fixture["draws"]["torch_seed"])
    cache: dict[str, object] = {}
    terms = train_iteration(method, batch, cache)

    official_masks = fixture["draws"]["dropout_masks"]
    assert len(masks) == len(official_masks) > 0
    for mine, theirs in zip(masks, official_masks):
        assert torch.equal(mine, theirs), "dropout masks differ from the official draws"
    assert_close(cache["fake_B"].detach(), fixture["outputs"]["fake_B"], what="fake_B")
    losses = fixture["losses"]
    # i2i weights the D terms by 0.5 each (the official code halves their sum)
    assert_close(terms["D_fake"], 0.5 * torch.tensor(losses["D_fake"]), what="D_fake")
    assert_close(terms["D_real"], 0.5 * torch.tensor(losses["D_real"]), what="D_real")
    assert_close(terms["G_GAN"], torch.tensor(losses["G_GAN"]), what="G_GAN")
    assert_close(terms["G_L1"], torch.tensor(losses["G_L1"]), what="G_L1")
    assert_networks_after_step(method, fixture)
