"""The vision-aided CLIP discriminator equals vision_aided_loss's `Discriminator(cv_type='clip',
loss_type='multilevel_sigmoid_s')` (tests/golden/vision_aided.pt, made by record_clip.py) in float64: the
official DiffAugment draws replayed through the draw cache, the backbone (ViT-B/32's image-tower widths, 9
blocks, seeded weights rebuilt here) and the heads (seeded weights and spectral-norm vectors) in train mode,
called as pix2pix-turbo's step calls them: G on fakes, real, fake. Compared per call: the backbone's features,
the heads' logits, the per-image losses (and `multilevel_sigmoid`'s), the spectral-norm buffers after the call,
the images' gradient (G) and the heads' gradients (real, fake).

Tolerance: the float64 policy of golden_fixtures.py (1e-9 of each compared tensor's largest magnitude; a
gradient of its parameter's largest element).
"""

from __future__ import annotations

import pytest
import torch

from i2i_cli.models.losses.vision_aided import multilevel_sigmoid_loss
from i2i_cli.models.networks.diff_augment import diff_augment
from i2i_cli.models.networks.vision_aided import ClipVisionBackbone, VisionAidedDiscriminator
from tests.golden.golden_fixtures import assert_float64_close, float64, load_fixture
from tests.golden.record_clip import (
    DRAW_NAMES,
    TARGETS,
    VISION,
    discriminator_inputs,
    sample_index,
    seeded_state,
)
from tests.golden.test_golden_clip import clip_config


@pytest.fixture(scope="module")
def fixture() -> dict:
    return load_fixture("vision_aided")


def seeded_discriminator() -> VisionAidedDiscriminator:
    backbone = ClipVisionBackbone(clip_config(VISION))
    backbone.load_pretrained_state_dict(seeded_state({k: tuple(v.shape) for k, v in backbone.state_dict().items()}))
    disc = VisionAidedDiscriminator("multilevel_sigmoid_s", backbone=backbone)
    shapes = {k: tuple(v.shape) for k, v in disc.heads.state_dict().items() if not k.endswith("filt")}
    missing, unexpected = disc.heads.load_state_dict(seeded_state(shapes), strict=False)
    assert not unexpected and all(k.endswith("filt") for k in missing)
    return disc.to(torch.float64).train()


def _compare_summary(actual: torch.Tensor, expected: dict, what: str) -> None:
    flat = actual.detach().reshape(-1)
    scale = float(expected["absmax"])
    assert_float64_close(flat[sample_index(flat.numel())], expected["samples"], what=what, scale=scale)
    assert_float64_close(flat.abs().max(), expected["absmax"], what=f"{what} largest", scale=scale)
    assert_float64_close(flat.norm(), expected["norm"], what=f"{what} norm")


def _call(disc: VisionAidedDiscriminator, target: str, x: torch.Tensor, recorded: dict) -> dict:
    cache = {"draws": {f"vision_aided.{target}.{name}": value for name, value in recorded["draws"].items()}}
    seen: dict = {}
    hooks = [disc.backbone.register_forward_hook(lambda m, a, out: seen.update(features=out)),
             disc.heads.register_forward_hook(lambda m, a, out: seen.update(predictions=out))]
    loss = disc(x, target, cache)
    loss.mean().backward()
    for hook in hooks:
        hook.remove()
    return {"loss": loss.detach(), **seen}


def _check_call(disc: VisionAidedDiscriminator, target: str, got: dict, recorded: dict) -> None:
    assert_float64_close(got["loss"], recorded["loss"].reshape(-1), what=f"{target} loss")
    for name, mine in zip(("map4", "map8", "embedding"), got["features"]):
        _compare_summary(mine, recorded[name], f"{target} backbone {name}")
    for level, (mine, theirs) in enumerate(zip(got["predictions"], recorded["predictions"])):
        assert_float64_close(mine.detach(), theirs, what=f"{target} logits level {level}")
    plain = multilevel_sigmoid_loss(got["predictions"], target, real_label=1.0).detach()
    assert_float64_close(plain, recorded["loss_multilevel_sigmoid"].reshape(-1), what=f"{target} multilevel_sigmoid")
    state = disc.heads.state_dict()
    for key, value in recorded["spectral"].items():
        assert_float64_close(state[key][: value.numel()], value, what=f"{target} {key} after the call")
    for key, expected in recorded.get("heads_grad", {}).items():
        _compare_summary(dict(disc.heads.named_parameters())[key].grad, expected, f"{target} gradient of {key}")
    disc.heads.zero_grad(set_to_none=True)


def test_discriminator_calls_of_one_step_equal_the_official(fixture):
    inputs = discriminator_inputs()
    with float64():
        disc = seeded_discriminator()
        for target in TARGETS:
            x = (inputs["real"] if target == "real" else inputs["fake"]).clone().requires_grad_(target == "G")
            got = _call(disc, target, x, fixture[target])
            _check_call(disc, target, got, fixture[target])
            if target == "G":
                assert_float64_close(x.grad, fixture["G"]["image_grad"], what="G: gradient to the images")


def test_fresh_draws_follow_the_official_order(fixture):
    """From the seed the official call ran under, i2i's DiffAugment draws the same values (same calls, same
    order, same shapes and dtypes), so a seeded run draws as the official one would."""
    x = discriminator_inputs()["fake"]
    for target in TARGETS:
        torch.manual_seed(fixture[target]["seed"])
        cache: dict = {}
        diff_augment(x, cache, "d")
        for name in DRAW_NAMES:
            assert torch.equal(cache["draws"][f"d.{name}"], fixture[target]["draws"][name]), (target, name)


def test_the_fused_attn_switch_of_the_training_scripts_reaches_no_module(fixture):
    # train_*_turbo.py set module.fused_attn = False where "attn" is in the module's name: the official
    # discriminator has no such module (its CLIP sits in a plain list), so that loop changes nothing.
    assert fixture["attn_module_names"] == []
