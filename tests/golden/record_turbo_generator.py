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
Also CycleGAN-Turbo (`_record_unpaired`): initialize_unet's three LoRA groups (their module lists are saved),
two initialize_vae VAEs, and forward_with_networks in both directions through VAE_encode / VAE_decode.
Saved: the UNet's and VAE's state dicts in the official key layout (peft's), the text encoder's (packed float32:
made in float32, then cast), the inputs in
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
SHAPE = (2, 3, 16, 32)
TINY_VAE = {"in_channels": 3, "out_channels": 3, "down_block_types": ["DownEncoderBlock2D"] * 4,
            "up_block_types": ["UpDecoderBlock2D"] * 4, "block_out_channels": [2, 4, 8, 8],
            "layers_per_block": 1, "latent_channels": 4, "norm_num_groups": 2, "sample_size": 32,
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
SKIP_CHANNELS = {512: 8, 256: 4, 128: 2}  # sd-turbo's VAE channels -> the tiny VAE's
UNPAIRED_RANK = 4  # CycleGAN-Turbo's UNet rank (128 in training; 4 keeps the fixture small)
_RECORDED: dict[str, list[torch.Tensor]] = {"posterior": [], "step": []}


def checkout() -> tuple[Path, str]:
    root = os.environ.get("I2I_OFFICIAL_IMG2IMG_TURBO")
    if not root:
        sys.exit("set I2I_OFFICIAL_IMG2IMG_TURBO to a checkout of GaParmar/img2img-turbo")
    commit = os.environ.get("I2I_OFFICIAL_IMG2IMG_TURBO_COMMIT") or subprocess.run(
        ["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    return Path(root), commit


def _skip_conv_class() -> type:
    conv2d = torch.nn.Conv2d

    class SkipConv(conv2d):  # only the constructors' bias-free 1x1 convolutions at sd-turbo's widths are resized
        def __init__(self, cin, cout, kernel_size, *a, bias=True, **k):
            if kernel_size == (1, 1) and not bias and cin in SKIP_CHANNELS and cout in SKIP_CHANNELS:
                cin, cout = SKIP_CHANNELS[cin], SKIP_CHANNELS[cout]
            super().__init__(cin, cout, kernel_size, *a, bias=bias, **k)

    return SkipConv


def _recording(draw, kind: str):
    def randn(*a, **k):
        noise = draw(*a, **k)
        _RECORDED[kind].append(noise.clone())
        return noise

    return randn


def _patch_environment():
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from diffusers.models.autoencoders import vae as vae_module
    from diffusers.schedulers import scheduling_ddpm
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
    torch.nn.Conv2d = _skip_conv_class()
    vae_module.randn_tensor = _recording(vae_module.randn_tensor, "posterior")
    scheduling_ddpm.randn_tensor = _recording(scheduling_ddpm.randn_tensor, "step")

    def one_step_scheduler():
        scheduler = DDPMScheduler.from_config(SCHEDULER)  # as from_pretrained: unknown keys ignored
        scheduler.set_timesteps(1)
        return scheduler

    return one_step_scheduler


def _record_unpaired(generator: torch.Generator) -> dict:
    """CycleGAN-Turbo's UNet (initialize_unet: three LoRA groups, rank = alpha) and VAEs (initialize_vae, rank 4)
    at the tiny configuration; one a2b and one b2a pass of forward_with_networks with its VAE_encode /
    VAE_decode around two VAEs, float64. The module lists of the three groups are saved as the official made
    them (the test compares i2i's split of the same UNet)."""
    official = importlib.import_module("cyclegan_turbo")
    official.make_1step_sched = importlib.import_module("pix2pix_turbo").make_1step_sched
    torch.nn.Conv2d = _skip_conv_class()
    unet, encoder, decoder, others = official.initialize_unet(UNPAIRED_RANK, return_lora_module_names=True)
    vae_a2b = official.initialize_vae(rank=4)
    vae_b2a = official.initialize_vae(rank=4)
    torch.nn.Conv2d = torch.nn.Conv2d.__mro__[1]
    with torch.no_grad():
        for name, param in [*unet.named_parameters(), *vae_a2b.named_parameters(), *vae_b2a.named_parameters()]:
            if "lora_B" in name:
                param.copy_(0.1 * torch.randn(param.shape, generator=generator))
    unet, vae_a2b, vae_b2a = unet.double().eval(), vae_a2b.double().eval(), vae_b2a.double().eval()
    vae_enc, vae_dec = official.VAE_encode(vae_a2b, vae_b2a), official.VAE_decode(vae_a2b, vae_b2a)
    scheduler = official.make_1step_sched()
    x = torch.rand(SHAPE, generator=generator, dtype=torch.float64) * 2 - 1
    caption = torch.randn(SHAPE[0], 77, TINY_UNET["cross_attention_dim"], generator=generator, dtype=torch.float64)
    timesteps = torch.tensor([999] * SHAPE[0]).long()
    outputs, noise, step_noise = {}, [], []
    for direction in ("a2b", "b2a"):
        _RECORDED["posterior"], _RECORDED["step"] = [], []
        with torch.no_grad():
            outputs[direction] = official.CycleGAN_Turbo.forward_with_networks(
                x, direction, vae_enc, unet, vae_dec, scheduler, timesteps, caption)
        noise.append(_RECORDED["posterior"][-1])
        step_noise.append(torch.stack(_RECORDED["step"]))
    return {"unet": _float32(unet), "vae_a2b": _float32(vae_a2b), "vae_b2a": _float32(vae_b2a), "input": x,
            "caption": caption, "groups": {"default_encoder": encoder, "default_decoder": decoder,
                                           "default_others": others},
            "posterior_noise": noise, "step_noise": step_noise, "output_a2b": outputs["a2b"],
            "output_b2a": outputs["b2a"]}


def _float32(module: torch.nn.Module) -> dict[str, object]:
    """The state dict packed into one float32 vector + keys and shapes (one zip entry per tensor would make the
    file mostly headers); `unpack` in the test restores it. Made in float32, so float32 holds it exactly."""
    state = module.state_dict()
    return {"keys": list(state), "shapes": [list(v.shape) for v in state.values()],
            "flat": torch.cat([v.float().flatten() for v in state.values()])}


def main() -> None:
    root, commit = checkout()
    one_step_scheduler = _patch_environment()
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
              "posterior_noise": _RECORDED["posterior"][-1], "step_noise": _RECORDED["step"][-1], "output": output}
    record["unpaired"] = _record_unpaired(generator)
    torch.save(record, OUT)
    print(f"wrote {OUT}: output mean {float(output.mean()):.6f}")


if __name__ == "__main__":
    main()
