"""OpenAI CLIP, the CLIP-similarity loss and the vision-aided discriminator: the weights entry and its TorchScript
file, shapes, frozen backbones, draw replay, loss values. Fidelity to the official code is
tests/golden/test_golden_clip.py and test_golden_vision_aided.py."""

from __future__ import annotations

import hashlib
import math
import warnings
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from i2i_cli import weights
from i2i_cli.engine.fixed_weights import load_pretrained_modules
from i2i_cli.models.losses.clip_similarity import ClipSimilarityLoss, clip_normalise, clip_similarity_loss
from i2i_cli.models.losses.vision_aided import multilevel_sigmoid_loss
from i2i_cli.models.networks.clip import Clip, ClipConfig
from i2i_cli.models.networks.vision_aided import ClipVisionBackbone, VisionAidedDiscriminator
from tests.http_server import serve

# ViT-B/32's geometry (224 px, patch 32: 7 x 7 maps) at small widths
TINY = ClipConfig(embed_dim=16, image_resolution=224, vision_layers=3, vision_width=64, vision_patch_size=32,
                  vision_heads=1, context_length=12, vocab_size=30, transformer_width=64, transformer_heads=1,
                  transformer_layers=2)
TOKENS = torch.tensor([[28, 3, 4, 29] + [0] * 8, [28, 5, 6, 7, 8, 29] + [0] * 6, [28, *range(1, 11), 29]])


def _randomised(model: nn.Module, seed: int = 0) -> nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.2)
    return model


def _tiny_clip() -> Clip:
    model = _randomised(Clip(TINY)).eval()
    with torch.no_grad():
        model.logit_scale.fill_(math.log(100.0))
    return model


class _Archived(Clip):
    """CLIP's parameters behind a trivial forward: tracing it is cheap and keeps every parameter."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.logit_scale


def _save_torchscript(model: Clip, path) -> None:
    """A TorchScript archive with float16 weights, as OpenAI publishes ViT-B-32.pt."""
    archived = _Archived(model.config)
    archived.load_state_dict(model.state_dict())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.trace(archived, torch.ones(1)).half().save(str(path))


def test_the_registry_entry_is_openais_file():
    entry = weights.entry("clip_vit_b32")
    assert entry.filename == "ViT-B-32.pt" and entry.licence == "MIT"
    assert entry.url.startswith("https://openaipublic.azureedge.net/clip/models/")
    assert entry.url.split("/")[-2] == entry.sha256 and len(entry.sha256) == 64


def test_a_torchscript_archive_loads_as_its_state_dict(tmp_path):
    linear = nn.Linear(3, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch >= 2.9: torch.jit is deprecated (the published files are TorchScript)
        torch.jit.script(linear).save(str(tmp_path / "scripted.pt"))
    state = weights.load_state_dict(tmp_path / "scripted.pt")
    assert set(state) == {"weight", "bias"} and torch.equal(state["weight"], linear.weight.detach())
    torch.save(linear.state_dict(), tmp_path / "plain.pt")  # a plain checkpoint still goes through weights_only
    assert torch.equal(weights.load_state_dict(tmp_path / "plain.pt")["bias"], linear.bias.detach())


def test_a_served_clip_file_loads_into_the_loss_and_the_backbone(monkeypatch, tmp_path):
    monkeypatch.setenv("I2I_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("I2I_OFFLINE", raising=False)
    monkeypatch.delenv("I2I_WEIGHTS_DIR", raising=False)
    source = _tiny_clip()
    _save_torchscript(source, tmp_path / "ViT-B-32.pt")
    payload = (tmp_path / "ViT-B-32.pt").read_bytes()
    method = SimpleNamespace(clip_loss=ClipSimilarityLoss(TINY), backbone=ClipVisionBackbone(TINY))
    with serve({"/clip/ViT-B-32.pt": payload}) as (base, _):
        weights.register(weights.WeightsEntry("test_clip", "ViT-B-32.pt", f"{base}/clip/ViT-B-32.pt",
                                              hashlib.sha256(payload).hexdigest(), "a tiny CLIP"))
        try:
            used = load_pretrained_modules(method, names={"clip_loss": "test_clip", "backbone": "test_clip"})
        finally:
            weights.REGISTRY.pop("test_clip")
    assert [u.verified for u in used] == [True, True]
    half = {k: v.half().float() for k, v in source.state_dict().items()}  # what the float16 file holds
    for key, value in method.clip_loss.clip.state_dict().items():
        assert torch.equal(value, half[key]), key
    assert torch.equal(method.backbone.visual.conv1.weight, half["visual.conv1.weight"])


def test_released_files_extra_entries_are_dropped_and_the_config_is_read_from_the_weights():
    state = {**_tiny_clip().state_dict(), "input_resolution": torch.tensor(224), "context_length": torch.tensor(12),
             "vocab_size": torch.tensor(30)}
    model = Clip.from_state_dict(state)
    assert model.config == TINY
    with torch.device("meta"):  # ViT-B/32's shapes without its 151M parameters
        full = Clip().state_dict()
    assert ClipConfig.from_state_dict(full) == ClipConfig()


def test_clip_shapes_and_the_causal_text_tower():
    model = _tiny_clip()
    images = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        per_image, per_text = model(images, TOKENS)
        text = model.encode_text(TOKENS)
        padded = TOKENS.clone()
        padded[0, 5:] = 7  # after the end-of-text token: a causal tower never sees it
        assert torch.equal(model.encode_text(padded)[0], text[0])
    assert per_image.shape == (2, 3) and torch.equal(per_text, per_image.t())
    assert model.encode_image(images).shape == (2, 16) and text.shape == (3, 16)


def test_clip_similarity_loss_is_one_minus_the_mean_logit_over_all_pairs():
    loss_module = ClipSimilarityLoss(TINY)
    loss_module.clip.load_state_dict(_tiny_clip().state_dict())
    loss_module.train()
    assert not loss_module.clip.training and not any(p.requires_grad for p in loss_module.parameters())
    images = (torch.rand(2, 3, 40, 56) * 2 - 1).requires_grad_(True)
    loss = loss_module(images, TOKENS[:2])
    with torch.no_grad():
        logits, _ = loss_module.clip(clip_normalise(images), TOKENS[:2])
    assert logits.shape == (2, 2)
    assert float(loss.detach()) == pytest.approx(1 - float(logits.mean()) / 100, abs=1e-6)
    loss.backward()
    assert images.grad.abs().sum() > 0
    assert torch.equal(clip_similarity_loss(loss_module.clip, images, TOKENS[:2]), loss)


def test_discriminator_shapes_frozen_backbone_and_trained_heads():
    backbone = _randomised(ClipVisionBackbone(TINY))
    disc_a = VisionAidedDiscriminator(backbone=backbone, channels=8, name="disc_a").train()
    disc_b = VisionAidedDiscriminator("multilevel_sigmoid", backbone=backbone, channels=8, name="disc_b").train()
    assert disc_a.backbone is disc_b.backbone and not backbone.training
    assert all(not p.requires_grad for p in backbone.parameters())
    assert all(p.requires_grad for p in disc_a.heads.parameters())
    x = (torch.rand(2, 3, 64, 48) * 2 - 1).requires_grad_(True)
    features = backbone(x)
    assert [tuple(f.shape) for f in features] == [(2, 64, 7, 7), (2, 64, 7, 7), (2, 16)]
    assert [tuple(p.shape) for p in disc_a.heads(features)] == [(2, 3, 3), (2, 3, 3), (2, 1)]
    cache: dict = {}
    loss = disc_a(x, "G", cache) + disc_b(x, "G", cache)
    assert loss.shape == (2,)
    loss.mean().backward()
    assert x.grad.abs().sum() > 0 and all(p.grad is None for p in backbone.parameters())
    assert all(p.grad is not None for p in disc_a.heads.parameters())
    names = {"brightness", "saturation", "contrast", "translation_x", "translation_y", "cutout_x", "cutout_y"}
    assert set(cache["draws"]) == {f"disc_{d}.G.{n}" for d in "ab" for n in names}


def test_replayed_draws_give_the_same_loss_and_a_new_cache_draws_anew():
    disc = VisionAidedDiscriminator(backbone=_randomised(ClipVisionBackbone(TINY)), channels=8).eval()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    cache: dict = {}
    with torch.no_grad():
        first = disc(x, "real", cache)
        again = disc(x, "real", {"draws": dict(cache["draws"])})
        torch.manual_seed(123)
        other = disc(x, "real")
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert cache["draws"]["vision_aided.real.translation_x"].shape == (2, 1, 1)
    assert cache["draws"]["vision_aided.real.brightness"].dtype == x.dtype


def test_multilevel_sigmoid_loss_values():
    logits = [torch.full((2, 3, 3), 1.0), torch.full((2, 3, 3), -1.0), torch.full((2, 1), 2.0)]

    def bce(value: float, label: float) -> float:
        return math.log1p(math.exp(value)) - label * value

    for target, label in (("G", 0.8), ("real", 0.8), ("fake", 0.0)):
        expected = bce(1.0, label) + bce(-1.0, label) + bce(2.0, label)
        assert multilevel_sigmoid_loss(logits, target, 0.8).tolist() == pytest.approx([expected] * 2)
    with pytest.raises(ValueError, match="target"):
        multilevel_sigmoid_loss(logits, "true", 0.8)
    with pytest.raises(ValueError, match="loss_type"):
        VisionAidedDiscriminator("hinge", backbone=ClipVisionBackbone(TINY))
