"""ResNet generators' key layouts, the image pool, PatchNCE."""

from __future__ import annotations

import math

import torch

from i2i_cli.models.image_pool import ImagePool
from i2i_cli.models.losses.patchnce import patch_nce
from i2i_cli.models.networks.resnet import ResnetGenerator


def _reference_resnet_keys(n_blocks: int, antialias: bool) -> list[str]:
    """Parameter/buffer keys of the reference ResnetGenerator (JZ; CUT with anti-aliasing), from its layer list."""
    keys = ["model.1.weight", "model.1.bias"]
    if antialias:
        keys += ["model.4.weight", "model.4.bias", "model.7.filt", "model.8.weight", "model.8.bias", "model.11.filt"]
        first_block = 12
    else:
        keys += ["model.4.weight", "model.4.bias", "model.7.weight", "model.7.bias"]
        first_block = 10
    for b in range(first_block, first_block + n_blocks):
        keys += [f"model.{b}.conv_block.1.weight", f"model.{b}.conv_block.1.bias",
                 f"model.{b}.conv_block.5.weight", f"model.{b}.conv_block.5.bias"]
    up = first_block + n_blocks
    if antialias:
        keys += [f"model.{up}.filt", f"model.{up + 1}.weight", f"model.{up + 1}.bias",
                 f"model.{up + 4}.filt", f"model.{up + 5}.weight", f"model.{up + 5}.bias"]
        keys += [f"model.{up + 9}.weight", f"model.{up + 9}.bias"]
    else:
        keys += [f"model.{up}.weight", f"model.{up}.bias", f"model.{up + 3}.weight", f"model.{up + 3}.bias",
                 f"model.{up + 7}.weight", f"model.{up + 7}.bias"]
    return keys


def test_resnet_generators_follow_the_reference_key_layouts():
    assert list(ResnetGenerator(n_blocks=9).state_dict()) == _reference_resnet_keys(9, False)
    assert list(ResnetGenerator(n_blocks=9, antialias=True).state_dict()) == _reference_resnet_keys(9, True)


def test_encoder_features_follow_cut_layer_indices():
    g = ResnetGenerator(ngf=8, n_blocks=9, antialias=True)
    feats = g.encode(torch.rand(1, 3, 32, 32), [0, 4, 8, 12, 16])
    assert [tuple(f.shape[1:]) for f in feats] == [(3, 38, 38), (16, 32, 32), (32, 16, 16), (32, 8, 8), (32, 8, 8)]


def test_patchnce_is_near_its_minimum_for_identical_features_and_grows_when_shuffled():
    torch.manual_seed(0)
    feats = torch.nn.functional.normalize(torch.randn(2 * 64, 32), dim=1)
    same = patch_nce(feats, feats, batch_size=2).mean()
    shuffled = patch_nce(feats, feats[torch.randperm(128)], batch_size=2).mean()
    chance = math.log(64)  # uniform over the positive and 63 negatives
    assert same < 0.1 * chance < shuffled


def test_image_pool_returns_stored_images_half_of_the_time_once_full():
    torch.manual_seed(0)
    pool = ImagePool(4)
    first = torch.arange(4.0).view(4, 1, 1, 1)
    assert torch.equal(pool.query(first), first)  # filling: returned as given
    fresh = 100 + torch.arange(400.0).view(400, 1, 1, 1)
    out = pool.query(fresh)
    from_pool = (out != fresh).sum().item()
    assert 150 < from_pool < 250  # each image is swapped for a stored one with probability 0.5
    restored = ImagePool(4)
    restored.load_state(pool.state(), torch.device("cpu"))
    assert torch.equal(restored.state(), pool.state())


def test_attention_composite_keeps_x_where_the_mask_is_zero():
    from i2i_cli.models.networks.attention import attend

    x, g = torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 4)
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., :2] = 1.0
    out = attend(x, g, mask)
    assert torch.equal(out[..., 2:], x[..., 2:]) and torch.equal(out[..., :2], g[..., :2])


def test_agcyclegan_freezes_attention_after_the_switch_epoch():
    from i2i_cli.models.base import Progress
    from i2i_cli.models.methods.agcyclegan import AGCycleGAN
    from tests.conftest import tiny_config

    method = AGCycleGAN(tiny_config("agcyclegan"))
    early = method.phases(Progress(step=10, total_steps=100, epoch=10, total_epochs=100))
    late = method.phases(Progress(step=40, total_steps=100, epoch=40, total_epochs=100))
    assert "Att_A" in early[0].optimizers and "Att_A" not in late[0].optimizers
    assert {"Att_A", "Att_B"} <= set(late[0].frozen)
    # the switch scales with the run: 30 of the method's 100 epochs = 30% of a 10-epoch run
    assert method.switched(Progress(epoch=3.0, total_epochs=10)) and not method.switched(Progress(epoch=2.9, total_epochs=10))
