"""The optional hooks of models/base.py: which methods declare which, and that each gives what it says."""

from __future__ import annotations

import pytest
import torch

from i2i_cli.diffusion.base_model import attach_base_model
from i2i_cli.models import registry
from i2i_cli.models.base import AttentionMasks, LossMaps, OfficialRelease, SegmentationModel, StyleSource
from tests.conftest import TINY_SIZE, tiny_config

HOOKS = {
    StyleSource: {"starganv2"},
    LossMaps: {"cut", "fastcut", "fsesim", "lsesim", "sincut", "sinsesim"},
    OfficialRelease: {"pix2pix", "cyclegan", "cut", "fastcut", "fsesim", "lsesim", "starganv2", "sincut", "sinsesim"},
    SegmentationModel: {"segmenter"},
    AttentionMasks: {"agcyclegan"},
}


def _build(name: str, **extra):
    cls = registry.method_class(name)
    domains = ["cat", "dog"] if cls.multi_domain else None
    torch.manual_seed(0)
    method = cls(tiny_config(name, **extra), domains=domains)
    attach_base_model(method)
    return method.eval()


def _image(seed: int = 1) -> torch.Tensor:
    return torch.rand(1, 3, TINY_SIZE, TINY_SIZE, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.mark.parametrize("hook", list(HOOKS), ids=lambda h: h.__name__)
def test_each_hook_is_declared_by_exactly_its_methods(hook):
    assert {n for n in registry.list_methods() if issubclass(registry.method_class(n), hook)} == HOOKS[hook]


def test_style_source_gives_styles_and_the_networks_an_export_writes():
    method = _build("starganv2")
    assert isinstance(method, StyleSource) and method.style_size == TINY_SIZE
    x, domain = _image(), torch.tensor([1])
    networks = method.style_networks()
    assert set(networks) == {"style_encoder", "mapping"}
    z = torch.randn(1, method.latent_dim)
    with torch.no_grad():
        style = method.style_from_reference(x, domain)
        assert style.shape == (1, method.style_dim)
        assert torch.equal(networks["style_encoder"](x, domain), style)
        assert torch.equal(networks["mapping"](z, domain), method.style_from_latent(z, domain))
        assert torch.equal(method.styled_generator()(x, style), method.translate(x, style=style))


@pytest.mark.parametrize("name", sorted(HOOKS[LossMaps]))
def test_loss_maps_are_the_declared_ones_with_the_image_shape(name):
    method = _build(name)
    maps = method.loss_maps("run7")
    assert tuple(maps) == type(method).loss_map_names
    x, y = _image(1), _image(2)
    with torch.no_grad():
        for loss, found in maps.items():
            same, different = found.fn(x, x), found.fn(x, y)
            assert same.dim() == 2 and same.shape == different.shape, loss
            assert torch.isfinite(different).all() and float(different.mean()) > 0, loss
            if loss == "fsesim":  # learned pieces at random init need not give 0 (PatchNCE's floor, dead heads)
                assert float(same.abs().max()) < 1e-5, loss
    learned = {"patchnce", "lsesim"} & set(maps)  # drawn with the run's trained pieces: the notes name it
    assert all("run7" in maps[n].note and "run7" not in method.loss_maps()[n].note for n in learned)


@pytest.mark.parametrize("name", sorted(HOOKS[OfficialRelease]))
def test_release_parts_are_the_methods_own_networks(name):
    method = _build(name)
    own = {id(m) for m in method.modules()}
    parts = method.release_parts()
    assert parts and all(id(module) in own for module in parts.values())
    assert ("" in parts) == (len(parts) == 1)  # a whole-file release is one network
    assert type(method).release_directions == (("AtoB",) if name == "cyclegan" else ())


def test_segmentation_model_gives_logits_and_colours():
    method = _build("segmenter")
    x = _image()
    with torch.no_grad():
        logits = method.logits(x)
    assert logits.shape == (1, method.n_classes, TINY_SIZE, TINY_SIZE)
    colours = method.colorize(logits.argmax(1))
    assert colours.shape == (1, 3, TINY_SIZE, TINY_SIZE) and torch.equal(colours, method.translate(x))


@pytest.mark.parametrize("direction", ["AtoB", "BtoA"])
def test_attention_mask_module_is_the_mask_of_its_direction(direction):
    method = _build("agcyclegan")
    x = _image()
    with torch.no_grad():
        mask = method.mask_module(direction)(x)
        assert mask.shape == (1, 1, TINY_SIZE, TINY_SIZE) and float(mask.min()) >= 0 and float(mask.max()) <= 1
        assert torch.equal(mask, method.attention_mask(x, direction))
        other = method.attention_mask(x, "BtoA" if direction == "AtoB" else "AtoB")
    assert not torch.equal(mask, other)
