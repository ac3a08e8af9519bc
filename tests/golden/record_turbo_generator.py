"""Record tests/golden/turbo_generator.pt: img2img-turbo's one-step generator (Pix2Pix_Turbo.forward,
deterministic=True) at a tiny configuration, in float64.

Runs outside CI against a checkout named by I2I_OFFICIAL_IMG2IMG_TURBO (GaParmar/img2img-turbo; the commit from
`git rev-parse HEAD` there or I2I_OFFICIAL_IMG2IMG_TURBO_COMMIT); needs diffusers, transformers and peft:

    I2I_OFFICIAL_IMG2IMG_TURBO=/tmp/official/turbo python tests/golden/record_turbo_generator.py

What is patched, and why (the official constructor loads stabilityai/sd-turbo and runs on CUDA):
- the four `from_pretrained` calls return tiny random models built from TINY_UNET / TINY_VAE / TINY_TEXT below
  (the tokenizer: None; prompts go in as token ids), and `make_1step_sched` builds the same DDPMScheduler from
  SCHEDULER (sd-turbo's scheduler settings) on the CPU;
- `.cuda()` and `.to("cuda")` on modules and tensors are the identity, and `torch.tensor(..., device="cuda")` is
  made on the CPU;
- the four 1x1 skip convolutions the constructor makes with sd-turbo's channels (512/256/128) are made with the
  tiny VAE's (SKIP_CHANNELS maps them), everything else about them (no bias, 1e-5 init, LoRA) as it is.
After construction every LoRA B matrix (zero at init) is set to seeded noise, so LoRA changes the output, and the
whole model is cast to float64. The VAE's posterior draw (`latent_dist.sample()`'s randn) is recorded so the test
replays it, and the DDPM step's draw (its variance term is sqrt(1e-20) * randn = 1e-10 noise, which i2i leaves
out) so the test can show that this is the whole difference.
Saved: the UNet's and VAE's state dicts in the official key layout (peft's), the text encoder's (float32: made
in float32, then cast), the inputs in
[0, 1] (the official conditioning range), the token ids, the posterior noise and the output.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import torch

OUT = Path(__file__).resolve().parent / "turbo_generator.pt"
SEED = 31
SHAPE = (2, 3, 32, 48)
TINY_VAE = {"in_channels": 3, "out_channels": 3, "down_block_types": ["DownEncoderBlock2D"] * 4,
            "up_block_types": ["UpDecoderBlock2D"] * 4, "block_out_channels": [4, 8, 16, 16],
            "layers_per_block": 1, "latent_channels": 4, "norm_num_groups": 4, "sample_size": 32,
            "scaling_factor": 0.18215}
TINY_UNET = {"sample_size": 4, "in_channels": 4, "out_channels": 4, "layers_per_block": 1,
             "block_out_channels": [4, 8], "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
             "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"], "cross_attention_dim": 8,
             "attention_head_dim": [2, 4], "norm_num_groups": 2, "use_linear_projection": True}
TINY_TEXT = {"vocab_size": 100, "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 2,
             "num_attention_heads": 2, "max_position_embeddings": 77, "projection_dim": 8, "bos_token_id": 98,
             "eos_token_id": 99}
SCHEDULER = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "clip_sample": False,
             "num_train_timesteps": 1000, "prediction_type": "epsilon", "set_alpha_to_one": False,
             "steps_offset": 1, "timestep_spacing": "trailing"}
SKIP_CHANNELS = {512: 16, 256: 8, 128: 4}  # sd-turbo's VAE channels -> the tiny VAE's


def checkout() -> tuple[Path, str]:
    root = os.environ.get("I2I_OFFICIAL_IMG2IMG_TURBO")
    if not root:
        sys.exit("set I2I_OFFICIAL_IMG2IMG_TURBO to a checkout of GaParmar/img2img-turbo")
    commit = os.environ.get("I2I_OFFICIAL_IMG2IMG_TURBO_COMMIT") or subprocess.run(
        ["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    return Path(root), commit


def _patch_environment(recorded_noise: list[torch.Tensor], recorded_step_noise: list[torch.Tensor]):
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from diffusers.models.autoencoders import vae as vae_module
    from transformers import AutoTokenizer, CLIPTextConfig, CLIPTextModel

    torch.manual_seed(SEED)
    AutoTokenizer.from_pretrained = staticmethod(lambda *a, **k: None)
    CLIPTextModel.from_pretrained = staticmethod(lambda *a, **k: CLIPTextModel(CLIPTextConfig(**TINY_TEXT)))
    AutoencoderKL.from_pretrained = staticmethod(lambda *a, **k: AutoencoderKL(**TINY_VAE))
    UNet2DConditionModel.from_pretrained = staticmethod(lambda *a, **k: UNet2DConditionModel(**TINY_UNET))
    torch.nn.Module.cuda = lambda self, *a, **k: self
    torch.Tensor.cuda = lambda self, *a, **k: self
    module_to = torch.nn.Module.to
    torch.nn.Module.to = lambda self, *a, **k: self if a[:1] == ("cuda",) else module_to(self, *a, **k)
    make_tensor = torch.tensor
    torch.tensor = lambda *a, device=None, **k: make_tensor(*a, **k)
    conv2d = torch.nn.Conv2d

    class SkipConv(conv2d):  # only the constructor's bias-free 1x1 convolutions are resized
        def __init__(self, cin, cout, kernel_size, *a, bias=True, **k):
            if kernel_size == (1, 1) and not bias and cin in SKIP_CHANNELS and cout in SKIP_CHANNELS:
                cin, cout = SKIP_CHANNELS[cin], SKIP_CHANNELS[cout]
            super().__init__(cin, cout, kernel_size, *a, bias=bias, **k)

    torch.nn.Conv2d = SkipConv
    draw = vae_module.randn_tensor

    def recording_randn(*a, **k):
        noise = draw(*a, **k)
        recorded_noise.append(noise.clone())
        return noise

    vae_module.randn_tensor = recording_randn
    from diffusers.schedulers import scheduling_ddpm

    def recording_step_randn(*a, **k):
        noise = draw(*a, **k)
        recorded_step_noise.append(noise.clone())
        return noise

    scheduling_ddpm.randn_tensor = recording_step_randn

    def one_step_scheduler():
        scheduler = DDPMScheduler.from_config(SCHEDULER)  # as from_pretrained: unknown keys ignored
        scheduler.set_timesteps(1)
        return scheduler

    return one_step_scheduler


def _float32(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.float() if v.is_floating_point() else v for k, v in module.state_dict().items()}


def main() -> None:
    root, commit = checkout()
    noise: list[torch.Tensor] = []
    step_noise: list[torch.Tensor] = []
    one_step_scheduler = _patch_environment(noise, step_noise)
    sys.path.insert(0, str(root / "src"))
    official = importlib.import_module("pix2pix_turbo")
    official.make_1step_sched = one_step_scheduler
    model = official.Pix2Pix_Turbo(lora_rank_unet=8, lora_rank_vae=4)
    torch.nn.Conv2d = torch.nn.Conv2d.__mro__[1]
    generator = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for name, param in [*model.unet.named_parameters(), *model.vae.named_parameters()]:
            if "lora_B" in name:
                param.copy_(0.1 * torch.randn(param.shape, generator=generator))
    model = model.double()
    model.set_eval()
    x = torch.rand(SHAPE, generator=generator, dtype=torch.float64)
    tokens = torch.randint(0, TINY_TEXT["vocab_size"], (SHAPE[0], 77), generator=generator)
    with torch.no_grad():
        output = model(x, prompt_tokens=tokens, deterministic=True)
    record = {"official_repo": "GaParmar/img2img-turbo", "official_commit": commit,
              # made in float32 and cast: float32 holds them exactly (and halves the file)
              "unet": _float32(model.unet), "vae": _float32(model.vae), "text_encoder": _float32(model.text_encoder), "input": x, "tokens": tokens,
              "posterior_noise": noise[-1], "step_noise": step_noise[-1], "output": output}
    torch.save(record, OUT)
    print(f"wrote {OUT}: output mean {float(output.mean()):.6f}, {len(noise)} posterior draw(s)")


if __name__ == "__main__":
    main()
