"""img2img-turbo's one-step generator (Parmar et al. 2024, GaParmar/img2img-turbo src/model.py,
src/pix2pix_turbo.py, src/cyclegan_turbo.py), on diffusers' UNet2DConditionModel / AutoencoderKL and peft LoRA.

The pieces, as the official code builds them (facts read at 86f5414; no code taken from it):
- the VAE encoder keeps the input of each of its down blocks; the decoder adds `skip_conv_i(skip * gamma)`
  before each of its up blocks (1x1 convolutions without bias, initialised to 1e-5, attached to the decoder as
  `skip_conv_1..4` so LoRA and state-dict keys match the official checkpoints);
- the VAE latent of the input, sampled from the encoder's Gaussian (`noise` is that draw), times the scaling
  factor, goes straight into the UNet at timestep 999; one DDPM step (one inference step: the previous
  timestep is -1, so the step returns the predicted x0) gives the latent the decoder turns into the output;
- LoRA (peft, Gaussian init) on the UNet and the VAE with the official target lists; the UNet's conv_in is
  trained fully (the caller's optimizer takes it).

Channels of the skip convolutions follow the VAE's block_out_channels (c0..c3): the encoder's down-block inputs
are (c0, c0, c1, c2), the decoder's up-block inputs (c3, c3, c2, c1); sd-turbo's (128, 256, 512, 512) gives the
official 512->512, 256->512, 128->512, 128->256.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

Tensor = torch.Tensor

TIMESTEP = 999  # the one step: the UNet always sees t = 999
SKIP_INIT = 1e-5
# pix2pix-Turbo's UNet LoRA targets (rank 8) and both methods' VAE targets (adapter "vae_skip", rank 4)
UNET_TARGETS_PAIRED = ("to_k", "to_q", "to_v", "to_out.0", "conv", "conv1", "conv2", "conv_shortcut", "conv_out",
                       "proj_in", "proj_out", "ff.net.2", "ff.net.0.proj")
VAE_TARGETS = ("conv1", "conv2", "conv_in", "conv_shortcut", "conv", "conv_out", "skip_conv_1", "skip_conv_2",
               "skip_conv_3", "skip_conv_4", "to_k", "to_q", "to_v", "to_out.0")
# CycleGAN-Turbo's patterns: each UNet weight whose name contains one joins the encoder (down blocks, conv_in),
# decoder (up blocks) or "others" adapter, in this order of patterns (the first match decides)
UNET_PATTERNS_UNPAIRED = ("to_k", "to_q", "to_v", "to_out.0", "conv", "conv1", "conv2", "conv_in", "conv_shortcut",
                          "conv_out", "proj_out", "proj_in", "ff.net.2", "ff.net.0.proj")
VAE_ADAPTER = "vae_skip"


def add_skip_convs(vae: nn.Module) -> None:
    """Attach the four encoder -> decoder 1x1 convolutions to vae.decoder, initialised to 1e-5."""
    c = list(vae.config.block_out_channels)
    if len(c) != 4:
        raise ValueError(f"the skip convolutions need a VAE with 4 blocks, not {len(c)}")
    for i, (cin, cout) in enumerate(zip((c[2], c[1], c[0], c[0]), (c[3], c[3], c[2], c[1])), start=1):
        conv = nn.Conv2d(cin, cout, kernel_size=1, bias=False)
        nn.init.constant_(conv.weight, SKIP_INIT)
        setattr(vae.decoder, f"skip_conv_{i}", conv)


def skip_convs(vae: nn.Module) -> list[nn.Module]:
    return [getattr(vae.decoder, f"skip_conv_{i}") for i in range(1, 5)]


def add_vae_lora(vae: nn.Module, rank: int) -> None:
    from peft import LoraConfig

    vae.add_adapter(LoraConfig(r=rank, init_lora_weights="gaussian", target_modules=list(VAE_TARGETS)),
                    adapter_name=VAE_ADAPTER)


def add_unet_lora_paired(unet: nn.Module, rank: int) -> None:
    """pix2pix-Turbo: one adapter ("default") over UNET_TARGETS_PAIRED, lora_alpha peft's default (8)."""
    from peft import LoraConfig

    unet.add_adapter(LoraConfig(r=rank, init_lora_weights="gaussian", target_modules=list(UNET_TARGETS_PAIRED)))


def unpaired_unet_groups(unet: nn.Module) -> dict[str, list[str]]:
    """CycleGAN-Turbo's three LoRA groups: {adapter: module names}, by each weight's name (biases and norms
    skipped) and the first pattern it contains."""
    groups: dict[str, list[str]] = {"default_encoder": [], "default_decoder": [], "default_others": []}
    for name, _ in unet.named_parameters():
        if "bias" in name or "norm" in name:
            continue
        if not any(pattern in name for pattern in UNET_PATTERNS_UNPAIRED):
            continue
        if "down_blocks" in name or "conv_in" in name:
            group = "default_encoder"
        elif "up_blocks" in name:
            group = "default_decoder"
        else:
            group = "default_others"
        groups[group].append(name.replace(".weight", ""))
    return groups


def add_unet_lora_unpaired(unet: nn.Module, rank: int) -> None:
    """CycleGAN-Turbo: three adapters (encoder, decoder, others), lora_alpha = rank, all active."""
    from peft import LoraConfig

    warnings.filterwarnings("ignore", message="Already found a `peft_config` attribute")  # three adapters, by design
    for adapter, modules in unpaired_unet_groups(unet).items():
        unet.add_adapter(LoraConfig(r=rank, init_lora_weights="gaussian", target_modules=modules, lora_alpha=rank),
                         adapter_name=adapter)
    unet.set_adapters(["default_encoder", "default_decoder", "default_others"])


def encode_with_skips(vae: nn.Module, x: Tensor, noise: Tensor | None) -> tuple[Tensor, list[Tensor]]:
    """Image -> (scaled latent sampled with `noise`, or the mean when None; the down-block inputs)."""
    encoder = vae.encoder
    h = encoder.conv_in(x)
    skips = []
    for block in encoder.down_blocks:
        skips.append(h)
        h = block(h)
    h = encoder.conv_out(encoder.conv_act(encoder.conv_norm_out(encoder.mid_block(h))))
    if vae.quant_conv is not None:
        h = vae.quant_conv(h)
    mean, logvar = torch.chunk(h, 2, dim=1)
    latent = mean if noise is None else mean + torch.exp(0.5 * torch.clamp(logvar, -30.0, 20.0)) * noise
    return latent * vae.config.scaling_factor, skips


def decode_with_skips(vae: nn.Module, latent: Tensor, skips: list[Tensor], gamma: float = 1.0) -> Tensor:
    """Scaled latent + the encoder's down-block inputs -> image in [-1, 1]."""
    z = latent / vae.config.scaling_factor
    if vae.post_quant_conv is not None:
        z = vae.post_quant_conv(z)
    decoder = vae.decoder
    h = decoder.conv_in(z)
    h = decoder.mid_block(h, None).to(next(iter(decoder.up_blocks.parameters())).dtype)
    for conv, skip, block in zip(skip_convs(vae), reversed(skips), decoder.up_blocks):
        h = block(h + conv(skip * gamma), None)
    h = decoder.conv_out(decoder.conv_act(decoder.conv_norm_out(h)))
    return h.clamp(-1, 1)


class OneStepScheduler(nn.Module):
    """The scheduler's one step from t = 999 with one inference step: DDPM's predicted x0 (the previous-sample
    coefficients are 1 and 0; the variance term is sqrt(1e-20) * noise, 1e-10, left out)."""

    def __init__(self, alphas_cumprod: Tensor, prediction_type: str = "epsilon", clip_sample: bool = False,
                 clip_sample_range: float = 1.0) -> None:
        super().__init__()
        if prediction_type not in ("epsilon", "sample", "v_prediction"):
            raise ValueError(f"prediction type {prediction_type!r}")
        # the square roots are taken in the scheduler's float32, as diffusers' step takes them
        alpha = alphas_cumprod[TIMESTEP].float()
        self.sqrt_alpha, self.sqrt_beta = float(alpha**0.5), float((1 - alpha) ** 0.5)
        self.prediction_type = prediction_type
        self.clip = clip_sample_range if clip_sample else None

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> OneStepScheduler:
        """From a diffusers scheduler config (what the base model's scheduler/scheduler_config.json holds)."""
        from diffusers import DDPMScheduler

        if config.get("thresholding"):
            raise ValueError("dynamic thresholding is not supported")
        scheduler = DDPMScheduler.from_config(config)
        return cls(scheduler.alphas_cumprod, scheduler.config.prediction_type, scheduler.config.clip_sample,
                   scheduler.config.clip_sample_range)

    def forward(self, model_output: Tensor, sample: Tensor) -> Tensor:
        a, b = self.sqrt_alpha, self.sqrt_beta
        if self.prediction_type == "epsilon":
            x0 = (sample - b * model_output) / a
        elif self.prediction_type == "sample":
            x0 = model_output
        else:
            x0 = a * sample - b * model_output
        return x0 if self.clip is None else x0.clamp(-self.clip, self.clip)


class OneStepTranslator(nn.Module):
    """VAE encoder (with skips) -> UNet at t = 999 with a caption embedding -> one step -> VAE decoder."""

    def __init__(self, unet: nn.Module, vae: nn.Module, scheduler: OneStepScheduler) -> None:
        super().__init__()
        self.unet = unet
        self.vae = vae
        self.scheduler = scheduler

    def forward(self, x: Tensor, caption: Tensor, noise: Tensor | None = None, gamma: float = 1.0) -> Tensor:
        """(N, 3, H, W) input (H, W multiples of 8) + (N, L, D) caption embedding -> (N, 3, H, W) in [-1, 1]."""
        latent, skips = encode_with_skips(self.vae, x, noise)
        t = torch.full((x.shape[0],), TIMESTEP, dtype=torch.long, device=x.device)
        prediction = self.unet(latent, t, encoder_hidden_states=caption).sample
        denoised = self.scheduler(prediction, latent).to(prediction.dtype)
        return decode_with_skips(self.vae, denoised, skips, gamma)

    def trained_parameters(self) -> list[nn.Parameter]:
        """LoRA weights, the UNet's conv_in and the skip convolutions: what the official optimizers take."""
        params = [p for n, p in self.unet.named_parameters() if "lora" in n]
        params += list(self.unet.conv_in.parameters())
        params += [p for n, p in self.vae.named_parameters() if "lora" in n and VAE_ADAPTER in n]
        for conv in skip_convs(self.vae):
            params += list(conv.parameters())
        return list(dict.fromkeys(params))


def latent_noise_shape(vae: nn.Module, x: Tensor) -> tuple[int, ...]:
    """The shape of the posterior draw for images x: (N, latent channels, H / f, W / f), f = 2^(blocks - 1)."""
    factor = 2 ** (len(vae.config.block_out_channels) - 1)
    return (x.shape[0], vae.config.latent_channels, x.shape[2] // factor, x.shape[3] // factor)


def encode_captions(text_encoder: nn.Module, tokenizer: Any, captions: list[str]) -> tuple[Tensor, Tensor]:
    """Captions -> (token ids (N, max length), padded as the official datasets pad them; the text encoder's last
    hidden state (N, L, D), what the UNet attends to)."""
    device = next(text_encoder.parameters()).device
    ids = tokenizer(captions, max_length=tokenizer.model_max_length, padding="max_length", truncation=True,
                    return_tensors="pt").input_ids.to(device)
    with torch.no_grad():
        return ids, text_encoder(ids)[0]


def official_paired_parameters(unet: nn.Module, vae: nn.Module) -> list[nn.Parameter]:
    """pix2pix-Turbo's optimizer list in the official order, duplicates included: every UNet LoRA weight, the
    UNet's conv_in, every VAE `vae_skip` LoRA weight, then the skip convolutions' parameters (whose LoRA weights,
    once peft wraps them, are listed a second time)."""
    params = [p for n, p in unet.named_parameters() if "lora" in n]
    params += list(unet.conv_in.parameters())
    params += [p for n, p in vae.named_parameters() if "lora" in n and VAE_ADAPTER in n]
    for conv in skip_convs(vae):
        params += list(conv.parameters())
    return params


def official_unpaired_parameters(unet: nn.Module, vae_a2b: nn.Module, vae_b2a: nn.Module) -> list[nn.Parameter]:
    """CycleGAN-Turbo's optimizer list in the official order, duplicates included: the UNet's conv_in (with its
    LoRA weights), every UNet LoRA weight (those again), then per VAE its LoRA weights and skip convolutions."""
    params = list(unet.conv_in.parameters())
    params += [p for n, p in unet.named_parameters() if "lora" in n and "default" in n]
    for vae in (vae_a2b, vae_b2a):
        params += [p for n, p in vae.named_parameters() if "lora" in n and VAE_ADAPTER in n]
        for conv in skip_convs(vae):
            params += list(conv.parameters())
    return params


def trained_state_keys(prefix: str, module: nn.Module) -> list[str]:
    """State-dict keys (under `prefix`) of what img2img-turbo trains and saves: LoRA weights, the UNet's conv_in
    and the skip convolutions; the rest is the base model's."""
    unet_conv_in = ("conv_in.", "unet.conv_in.")  # `module` is a UNet or a OneStepTranslator (not the VAE's)
    return [prefix + k for k in module.state_dict() if "lora" in k or k.startswith(unet_conv_in) or "skip_conv" in k]


def merge_lora(module: nn.Module) -> nn.Module:
    """Fold every active LoRA adapter into its base layer and put the plain layer back in its place (in place):
    the same outputs from plain convolutions and linears, what an exported graph should hold."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, BaseTunerLayer):
                child.merge()
                setattr(parent, name, child.get_base_layer())
    return module
