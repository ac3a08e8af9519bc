"""The pix2pix paper's discriminator fields against junyanz/pytorch-CycleGAN-and-pix2pix's define_D, in float64.

Fixture made by record_pix2pix_discriminators.py: the official PixelDiscriminator (1x1, `--netD pixel`) and
NLayerDiscriminator with n_layers_D 1 / 3 / 5 (16x16, 70x70, 286x286 fields), conditional (6 channels) and
unconditional (3 channels). Its weights load into i2i's discriminator as pix2pix builds it from
netD / n_layers_D / conditional_D, key for key; the logits, the vanilla GAN loss and every gradient agree to 1e-12.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from i2i_cli.models.methods.pix2pix import Pix2Pix, Pix2PixConfig
from tests.golden.golden_fixtures import load_fixture

FIXTURE = load_fixture("pix2pix_discriminators")


@pytest.mark.parametrize("name", sorted(FIXTURE["cases"]))
def test_discriminator_equals_the_official_one(name: str) -> None:
    case = FIXTURE["cases"][name]
    config = Pix2PixConfig(ndf=FIXTURE["ndf"], netD="pixel" if case["netD"] == "pixel" else "n_layers",
                           n_layers_D=case["n_layers_D"], conditional_D=case["channels"] == 6, size=32)
    net = Pix2Pix(config).D.double().train()
    assert sorted(net.state_dict()) == sorted(case["state"])  # the official key layout
    net.load_state_dict(case["state"])
    x = case["input_f32"].double().requires_grad_(True)
    out = net(x)
    loss = nn.BCEWithLogitsLoss()(out, torch.ones_like(out))
    loss.backward()
    torch.testing.assert_close(out.detach(), case["output"], rtol=0, atol=1e-12)
    assert abs(loss.item() - case["loss"]) < 1e-12
    if case["input_grad"] is not None:
        torch.testing.assert_close(x.grad, case["input_grad"], rtol=0, atol=1e-12)
    for key, p in net.named_parameters():
        torch.testing.assert_close(p.grad, case["param_grads"][key], rtol=0, atol=1e-12, msg=key)


def test_fields_as_the_paper_names_them() -> None:
    """Receptive fields 1, 16, 70 and 286 pixels: one output pixel changes when exactly that window changes."""
    for net_d, layers, field in (("pixel", 3, 1), ("n_layers", 1, 16), ("n_layers", 3, 70), ("n_layers", 5, 286)):
        d = Pix2Pix(Pix2PixConfig(ndf=2, netD=net_d, n_layers_D=layers, norm="none", size=32)).D.double()
        size = field + 40
        x = torch.zeros(1, 6, size, size, dtype=torch.float64, requires_grad=True)
        out = d(x)
        out[0, 0, out.shape[2] // 2, out.shape[3] // 2].backward()
        rows = torch.nonzero(x.grad.abs().sum(dim=(0, 1, 3)))
        assert int(rows.max() - rows.min() + 1) <= field, (net_d, layers)
