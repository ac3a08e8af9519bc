"""The pix2pix paper's ablations as options: losses (L1, GAN, cGAN, L1+GAN, L1+cGAN), encoder-decoder vs U-Net.
(The discriminator fields are pinned to the official code in tests/golden/test_golden_pix2pix_discriminators.py.)"""

from __future__ import annotations

import pytest
import torch

from i2i_cli.models.base import Progress
from i2i_cli.models.methods.pix2pix import Pix2Pix
from tests.conftest import tiny_config


def _batch() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"A": torch.rand(2, 3, 32, 32, generator=g) * 2 - 1, "B": torch.rand(2, 3, 32, 32, generator=g) * 2 - 1}


@pytest.mark.parametrize(("options", "phases", "g_terms", "d_channels"), [
    ({"lambda_GAN": 0.0}, ["G"], {"G_L1"}, 6),  # L1
    ({"lambda_L1": 0.0, "conditional_D": False}, ["D", "G"], {"G_GAN"}, 3),  # GAN
    ({"lambda_L1": 0.0}, ["D", "G"], {"G_GAN"}, 6),  # cGAN
    ({"conditional_D": False}, ["D", "G"], {"G_GAN", "G_L1"}, 3),  # L1 + GAN
    ({}, ["D", "G"], {"G_GAN", "G_L1"}, 6),  # L1 + cGAN (the default)
])
def test_loss_rows(options, phases, g_terms, d_channels):
    method = Pix2Pix(tiny_config("pix2pix", **options))
    steps = method.phases(Progress())
    assert [p.name for p in steps] == phases
    assert next(iter(method.D.parameters())).shape[1] == d_channels
    terms = steps[-1].compute(_batch(), {})
    assert set(terms) == g_terms


def test_gan_weight_scales_the_adversarial_term():
    batch = _batch()
    torch.manual_seed(0)
    one = Pix2Pix(tiny_config("pix2pix", dropout=False))
    torch.manual_seed(0)
    half = Pix2Pix(tiny_config("pix2pix", dropout=False, lambda_GAN=0.5))
    a, b = one.phases(Progress())[-1].compute(batch, {}), half.phases(Progress())[-1].compute(batch, {})
    torch.testing.assert_close(b["G_GAN"], 0.5 * a["G_GAN"])
    torch.testing.assert_close(b["G_L1"], a["G_L1"])


def test_nothing_to_train_is_refused():
    with pytest.raises(ValueError, match="both 0"):
        Pix2Pix(tiny_config("pix2pix", lambda_GAN=0.0, lambda_L1=0.0))


def test_encoder_decoder_is_the_unet_without_skips():
    unet = Pix2Pix(tiny_config("pix2pix")).G
    plain = Pix2Pix(tiny_config("pix2pix", unet_skips=False)).G
    x = _batch()["A"]
    assert plain(x).shape == unet(x).shape == x.shape
    assert sum(p.numel() for p in plain.parameters()) < sum(p.numel() for p in unet.parameters())
    # no skip: the output's centre pixel depends on the whole image through the bottleneck only; with the skip
    # removed no layer concatenates, so each up-convolution takes its inner block's channels alone
    ups = [m for m in plain.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    downs = [m for m in plain.modules() if isinstance(m, torch.nn.Conv2d) and not isinstance(m, torch.nn.ConvTranspose2d)]
    assert sorted(u.in_channels for u in ups) == sorted(d.out_channels for d in downs)
