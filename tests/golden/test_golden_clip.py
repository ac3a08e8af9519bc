"""OpenAI CLIP and pix2pix-turbo's CLIP-similarity loss equal the official code (tests/golden/clip.pt, made by
record_clip.py from openai/CLIP clip/model.py and the loss lines of img2img-turbo's train_pix2pix_turbo.py) in
float64, with a tiny CLIP rebuilt here from the recorder's seeded weights (loaded strictly: same keys).

Tolerance: the float64 policy of golden_fixtures.py (1e-9 of each compared tensor's largest magnitude; the
images' gradient: of its own largest element).
"""

from __future__ import annotations

import pytest
import torch

from i2i_cli.models.losses.clip_similarity import clip_similarity_loss
from i2i_cli.models.networks.clip import Clip, ClipConfig
from tests.golden.golden_fixtures import assert_float64_close, float64, load_fixture
from tests.golden.record_clip import TINY, clip_inputs, seeded_state


def clip_config(dims: dict) -> ClipConfig:
    """The official CLIP(...) arguments as i2i's config (the official vision heads are width // 64)."""
    return ClipConfig(**dims, vision_heads=dims["vision_width"] // 64)


def seeded_clip(dims: dict) -> Clip:
    model = Clip(clip_config(dims))
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    model.load_pretrained_state_dict(seeded_state(shapes))
    return model.to(torch.float64).eval().requires_grad_(False)


@pytest.fixture(scope="module")
def fixture() -> dict:
    return load_fixture("clip")


def test_features_and_logits_equal_the_official(fixture):
    inputs = clip_inputs()
    assert torch.equal(inputs["tokens"], fixture["tokens"])
    with float64():
        model = seeded_clip(TINY)
        with torch.no_grad():
            per_image, per_text = model(inputs["images"], inputs["tokens"])
            image_features = model.encode_image(inputs["images"])
            text_features = model.encode_text(inputs["tokens"])
    assert_float64_close(image_features, fixture["image_features"], what="image features")
    assert_float64_close(text_features, fixture["text_features"], what="text features")
    assert_float64_close(per_image, fixture["logits_per_image"], what="logits per image")
    assert_float64_close(per_text, fixture["logits_per_text"], what="logits per text")


def test_clip_similarity_loss_and_its_gradient_equal_the_official(fixture):
    inputs = clip_inputs()
    with float64():
        model = seeded_clip(TINY)
        images = inputs["loss_images"].clone().requires_grad_(True)
        loss = clip_similarity_loss(model, images, inputs["tokens"][:2])
        loss.backward()
    assert_float64_close(loss.detach(), fixture["loss_clipsim"], what="CLIP-similarity loss")
    assert_float64_close(images.grad, fixture["loss_clipsim_image_grad"], what="its gradient to the images")
