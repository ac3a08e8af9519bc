"""img2img-turbo's one-step generator (tests/golden/turbo_generator.pt, made by record_turbo_generator.py from
Pix2Pix_Turbo.forward at a tiny configuration, float64) equals i2i's OneStepTranslator built from the same
configs with i2i's own skip convolutions, LoRA placement (peft, the official target lists) and one-step
scheduler, the official weights loaded strictly (so the LoRA and skip-conv key layout matches too).

The official DDPM step adds sqrt(1e-20) * randn = 1e-10 noise to the latent, which i2i leaves out: with that draw
replayed the pieces equal the official output to 1e-12; i2i's generator itself is within 1e-9 (4e-11 measured).
The scheduler's square roots are taken in float32 as diffusers takes them (in float64 they differ by 2e-8).
"""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("diffusers")
pytest.importorskip("peft")

from i2i_cli.models.networks import turbo  # noqa: E402
from tests.golden.golden_fixtures import assert_close, load_fixture  # noqa: E402
from tests.golden.record_turbo_generator import (  # noqa: E402
    SCHEDULER,
    TINY_TEXT,
    TINY_UNET,
    TINY_VAE,
    UNPAIRED_RANK,
)


def unpack(packed: dict) -> dict[str, torch.Tensor]:
    """A state dict the recorder packed into one vector (record_turbo_generator._float32), in float64."""
    sizes = [int(torch.tensor(shape).prod()) for shape in packed["shapes"]]
    parts = torch.split(packed["flat"].double(), sizes)
    return {key: part.reshape(shape) for key, part, shape in zip(packed["keys"], parts, packed["shapes"])}


def _vae(rank: int = 4):
    from diffusers import AutoencoderKL

    vae = AutoencoderKL(**TINY_VAE)
    turbo.add_skip_convs(vae)
    turbo.add_vae_lora(vae, rank=rank)
    return vae


def _translator() -> turbo.OneStepTranslator:
    from diffusers import UNet2DConditionModel

    vae = _vae()
    unet = UNet2DConditionModel(**TINY_UNET)
    turbo.add_unet_lora_paired(unet, rank=8)
    return turbo.OneStepTranslator(unet, vae, turbo.OneStepScheduler.from_config(SCHEDULER))


@pytest.fixture(scope="module")
def loaded() -> tuple[turbo.OneStepTranslator, torch.Tensor, dict]:
    from transformers import CLIPTextConfig, CLIPTextModel

    fixture = load_fixture("turbo_generator")
    translator = _translator()
    translator, text = translator.double().eval(), CLIPTextModel(CLIPTextConfig(**TINY_TEXT)).double().eval()
    translator.unet.load_state_dict(unpack(fixture["unet"]), strict=True)
    translator.vae.load_state_dict(unpack(fixture["vae"]), strict=True)
    text.load_state_dict(unpack(fixture["text_encoder"]), strict=True)
    with torch.no_grad():
        caption = text(fixture["tokens"])[0]
    return translator, caption, fixture


def test_each_piece_equals_pix2pix_turbo_forward_with_its_step_noise_replayed(loaded) -> None:
    translator, caption, fixture = loaded
    x = fixture["input"]
    with torch.no_grad():
        latent, skips = turbo.encode_with_skips(translator.vae, x, fixture["posterior_noise"])
        t = torch.full((x.shape[0],), turbo.TIMESTEP, dtype=torch.long)
        prediction = translator.unet(latent, t, encoder_hidden_states=caption).sample
        # DDPM's variance at t=999 with one step is clamp(0, min=1e-20); its square root scales the draw
        denoised = translator.scheduler(prediction, latent) + 1e-10 * fixture["step_noise"]
        output = turbo.decode_with_skips(translator.vae, denoised, skips)
    assert_close(output, fixture["output"], atol=1e-12, what="pix2pix-Turbo output")


def test_the_generator_without_the_1e10_step_noise_is_within_1e9(loaded) -> None:
    translator, caption, fixture = loaded
    with torch.no_grad():
        output = translator(fixture["input"], caption, noise=fixture["posterior_noise"])
    assert_close(output, fixture["output"], atol=1e-9, what="pix2pix-Turbo output")  # measured 4e-11


def test_skip_convs_start_at_1e5_and_lora_wraps_them() -> None:
    translator = _translator()
    names = dict(translator.vae.named_parameters())
    assert torch.all(names["decoder.skip_conv_1.base_layer.weight"] == 1e-5)
    assert "decoder.skip_conv_4.lora_A.vae_skip.weight" in names
    trained = {id(p) for p in translator.trained_parameters()}
    assert id(translator.unet.conv_in.weight) in trained  # conv_in (no LoRA in pix2pix-Turbo) is trained fully
    assert id(names["decoder.skip_conv_2.base_layer.weight"]) in trained
    assert id(names["encoder.conv_in.base_layer.weight"]) not in trained  # base VAE weights stay fixed


def test_cyclegan_turbo_lora_groups_and_both_directions_equal_the_official(loaded) -> None:
    from diffusers import UNet2DConditionModel

    fixture = loaded[2]["unpaired"]
    unet = UNet2DConditionModel(**TINY_UNET)
    assert turbo.unpaired_unet_groups(unet) == fixture["groups"]  # before any adapter: as the official splits
    turbo.add_unet_lora_unpaired(unet, rank=UNPAIRED_RANK)
    scheduler = turbo.OneStepScheduler.from_config(SCHEDULER)
    unet = unet.double().eval()
    unet.load_state_dict(unpack(fixture["unet"]), strict=True)
    for i, direction in enumerate(("a2b", "b2a")):
        vae = _vae().double().eval()
        vae.load_state_dict(unpack(fixture[f"vae_{direction}"]), strict=True)
        translator = turbo.OneStepTranslator(unet, vae, scheduler)
        with torch.no_grad():
            output = translator(fixture["input"], fixture["caption"], noise=fixture["posterior_noise"][i])
        assert_close(output, fixture[f"output_{direction}"], atol=1e-9, what=f"CycleGAN-Turbo {direction}")
