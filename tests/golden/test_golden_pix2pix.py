"""pix2pix against junyanz/pytorch-CycleGAN-and-pix2pix: one training iteration from the official weights.

Fixture made by record_pix2pix.py (U-Net with 6 levels, ngf = ndf = 2, batch norm, dropout, 64 px, batch 1).
The dropout masks are the official step's torch draws, recorded in the fixture and replayed here in the same
order (a torch build's random stream is not part of pix2pix: torch 2.6 and 2.13 draw other masks from one seed).
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


def _replay_dropout(net: nn.Module, official: list[torch.Tensor]) -> list[nn.Module]:
    """Each nn.Dropout of `net` applies the next official mask (True: dropped) instead of drawing its own."""
    masks, used = iter(official), []

    def replay(module: nn.Module, inputs: tuple[torch.Tensor, ...], _: torch.Tensor) -> torch.Tensor:
        used.append(module)
        kept = ~next(masks).to(inputs[0].device)
        return inputs[0] * kept.to(inputs[0].dtype) / (1 - module.p)

    for m in net.modules():
        if isinstance(m, nn.Dropout):
            m.register_forward_hook(replay)
    return used


def test_pix2pix_iteration_equals_the_official_one() -> None:
    fixture = load("pix2pix")
    method = build("pix2pix", fixture)
    batch = {"A": to_float(fixture["inputs"]["A_u8"]), "B": to_float(fixture["inputs"]["B_u8"])}
    official_masks = fixture["draws"]["dropout_masks"]
    used = _replay_dropout(method.G, official_masks)
    cache: dict[str, object] = {}
    terms = train_iteration(method, batch, cache)

    assert len(used) == len(official_masks) > 0  # dropout where the official U-Net has it, as often
    assert_close(cache["fake_B"].detach(), fixture["outputs"]["fake_B"], what="fake_B")
    losses = fixture["losses"]
    # i2i weights the D terms by 0.5 each (the official code halves their sum)
    assert_close(terms["D_fake"], 0.5 * torch.tensor(losses["D_fake"]), what="D_fake")
    assert_close(terms["D_real"], 0.5 * torch.tensor(losses["D_real"]), what="D_real")
    assert_close(terms["G_GAN"], torch.tensor(losses["G_GAN"]), what="G_GAN")
    assert_close(terms["G_L1"], torch.tensor(losses["G_L1"]), what="G_L1")
    assert_networks_after_step(method, fixture)
