"""pix2pix-Turbo (Parmar, Park, Narasimhan, Zhu 2024, GaParmar/img2img-turbo): paired translation in one step of
sd-turbo, with LoRA on its UNet and VAE, VAE encoder-to-decoder skips, L2 + LPIPS + CLIP similarity + a CLIP
vision-aided GAN.

Facts read from the official code at 86f5414 (src/pix2pix_turbo.py, src/train_pix2pix_turbo.py,
src/my_utils/training_utils.py); no code taken from it:
- the input (condition) goes into the VAE in [0, 1], the target and output are in [-1, 1];
- one iteration = four optimizer steps: (1) L2 x1 + LPIPS-VGG x5 + CLIP similarity x5 on G(x), clip 1.0, step;
  (2) a fresh G(x), GAN x0.5 through the vision-aided discriminator, clip, step; (3) D on the target, clip,
  step; (4) D on the detached output of (2), clip, step. (3) is taken without zeroing D's gradients, so it also
  carries the gradient of (2)'s generator loss on D's heads (`d_keeps_g_gradients`);
- AdamW (0.9, 0.999), weight decay 1e-2, eps 1e-8, lr 5e-6, constant; the generator's list holds the skip
  convolutions' LoRA weights twice (`official_param_lists`);
- the VAE latent is sampled from the posterior (draws "posterior/rec", "posterior/gan"); i2i translates with
  the posterior mean, so a translation is repeatable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from i2i_cli.models.base import LossDict, MethodConfig, Phase, Progress
from i2i_cli.models.losses.precision import upcast
from i2i_cli.models.methods.one_step import OneStepDiffusionMethod
from i2i_cli.models.networks.turbo import (
    add_skip_convs,
    add_unet_lora_paired,
    add_vae_lora,
    official_paired_parameters,
)

Tensor = torch.Tensor
GanLoss = Literal["multilevel_sigmoid_s", "multilevel_sigmoid"]


@dataclass
class Pix2PixTurboConfig(MethodConfig):
    size: int = 512  # resized_crop_512
    load_size: int = 0  # resize to `size` (no random crop)
    flip: bool = False
    batch_size: int = 4  # the official default (its README trains with 2)
    epochs: int = 0  # the schedule is in iterations: max_train_steps
    decay_epochs: int = 0
    lr: float = 5e-6  # AdamW's learning rate (constant)
    beta1: float = 0.9  # AdamW's beta1
    beta2: float = 0.999  # AdamW's beta2
    weight_decay: float = 1e-2  # AdamW's
    adam_eps: float = 1e-8  # AdamW's epsilon
    max_grad_norm: float = 1.0  # gradient clipping before every optimizer step
    max_train_steps: int = 10000  # the schedule's length in iterations (--steps overrides it)
    base_model: str = "stabilityai/sd-turbo"  # Hub id, hf://OWNER/NAME[@REV] or a local diffusers folder
    lora_rank_unet: int = 8  # LoRA rank of the UNet's adapter
    lora_rank_vae: int = 4  # LoRA rank of the VAE's adapter
    caption: str = ""  # the caption (text prompt) of every image: what the UNet and the CLIP similarity read
    lambda_l2: float = 1.0  # weight of the L2 (MSE) loss to the target
    lambda_lpips: float = 5.0  # weight of LPIPS-VGG to the target (0: no LPIPS network loaded)
    lambda_clipsim: float = 5.0  # 0: no CLIP similarity loss (no CLIP model loaded)
    lambda_gan: float = 0.5  # 0: no discriminator
    gan_loss: GanLoss = "multilevel_sigmoid_s"  # the vision-aided loss (_s: one-sided label smoothing, real 0.8)
    # the official optimizer lists some LoRA weights twice: AdamW steps them twice, clipping scales them twice
    official_param_lists: bool = True
    # the official D-real step keeps the gradients the generator's GAN loss left on D's heads
    d_keeps_g_gradients: bool = True
    unused: ClassVar[tuple[str, ...]] = ("init_type", "init_gain", "direction")
    positive: ClassVar[tuple[str, ...]] = (*MethodConfig.positive, "lora_rank_unet", "lora_rank_vae",
                                           "max_train_steps", "adam_eps")

    def total_iterations(self) -> int:
        return self.max_train_steps


class Pix2PixTurbo(OneStepDiffusionMethod):
    """Networks: `G` (OneStepTranslator: sd-turbo's UNet and VAE with LoRA and skips), `text_encoder` (frozen),
    `lpips` and `clip` (frozen, when their weights are above 0), `D` (vision-aided, when lambda_gan > 0)."""

    name = "pix2pix_turbo"
    config_class = Pix2PixTurboConfig
    summary = "Paired, one-step diffusion (sd-turbo + LoRA, VAE skips): L2, LPIPS x5, CLIP x5, vision-aided GAN"
    paper = "Parmar, Park, Narasimhan, Zhu. One-Step Image Translation with Text-to-Image Models. arXiv 2024"
    code = "https://github.com/GaParmar/img2img-turbo"
    accepts = ("aligned",)

    def __init__(self, config: Pix2PixTurboConfig, domains: list[str] | None = None) -> None:
        super().__init__(config, domains, config.lambda_lpips > 0, config.lambda_clipsim > 0,
                         ["D"] if config.lambda_gan > 0 else [], config.gan_loss)

    def attach_base_model(self, parts: Any) -> None:
        c = self.config
        add_skip_convs(parts.vae)
        add_vae_lora(parts.vae, c.lora_rank_vae)
        add_unet_lora_paired(parts.unet, c.lora_rank_unet)
        self.G = self._generator(parts.unet, parts.vae, parts)
        for name, param in self.G.named_parameters():  # the official set_train()
            param.requires_grad_("lora" in name or name.startswith(("unet.conv_in.", "vae.decoder.skip_conv")))
        self._take_text_encoder(parts)

    def generators(self) -> dict[str, nn.Module]:
        return {"G": self.G}

    def unet_and_vae(self) -> tuple[nn.Module, nn.Module]:
        return self.G.unet, self.G.vae

    # --- training -----------------------------------------------------------------------------------------
    def official_generator_parameters(self) -> list[nn.Parameter]:
        return official_paired_parameters(self.G.unet, self.G.vae)

    def phases(self, progress: Progress) -> list[Phase]:
        c = self.config
        phases = [Phase("G_rec", ("G",), self._reconstruction_loss)]
        if c.lambda_gan > 0:
            keep = c.d_keeps_g_gradients
            phases += [Phase("G_GAN", ("G",), self._generator_gan_loss, frozen=() if keep else ("D",)),
                       Phase("D_real", ("D",), self._d_real_loss, accumulate=("D",) if keep else ()),
                       Phase("D_fake", ("D",), self._d_fake_loss)]
        return phases

    def _output(self, batch: dict[str, Tensor], cache: dict[str, Any], tag: str) -> Tensor:
        condition = batch["A"] * 0.5 + 0.5  # the official condition range [0, 1]
        embedding = self.embeddings(self.batch_captions(batch, self.config.caption))
        return self.run(self.G, condition, embedding, cache, f"posterior/{tag}")

    def _reconstruction_loss(self, batch: dict[str, Tensor], cache: dict[str, Any]) -> LossDict:
        c = self.config
        fake = self._output(batch, cache, "rec")
        fake32, real32 = upcast(fake), upcast(batch["B"])  # the official computes these losses in float32
        terms: LossDict = {"G_L2": F.mse_loss(fake32, real32) * c.lambda_l2}
        if self.lpips is not None:
            terms["G_LPIPS"] = self.lpips(fake32, real32).mean() * c.lambda_lpips
        if self.clip is not None:
            terms["G_CLIPSIM"] = self.clip_similarity(fake, self.batch_captions(batch, c.caption)) * c.lambda_clipsim
        return terms

    def _generator_gan_loss(self, batch: dict[str, Tensor], cache: dict[str, Any]) -> LossDict:
        cache["fake_B"] = fake = self._output(batch, cache, "gan")
        return {"G_GAN": self.discriminate("D", fake, "G", cache, "G").mean() * self.config.lambda_gan}

    def _d_real_loss(self, batch: dict[str, Tensor], cache: dict[str, Any]) -> LossDict:
        return {"D_real": self.discriminate("D", batch["B"], "real", cache, "real").mean() * self.config.lambda_gan}

    def _d_fake_loss(self, batch: dict[str, Tensor], cache: dict[str, Any]) -> LossDict:
        fake = cache["fake_B"].detach()
        return {"D_fake": self.discriminate("D", fake, "fake", cache, "fake").mean() * self.config.lambda_gan}

    def sample_rows(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        return {"input": batch["A"], "output": self.translate(batch["A"]), "target": batch["B"]}

    # --- inference ----------------------------------------------------------------------------------------
    @torch.no_grad()
    def translate(self, x: Tensor, direction: str = "AtoB", caption: str | None = None, **kwargs: Any) -> Tensor:
        embedding = self.caption_embedding(self.config.caption if caption is None else caption)
        return self.G(x * 0.5 + 0.5, embedding.expand(x.shape[0], -1, -1).to(x.dtype))

    def export_module(self, direction: str = "AtoB", caption: str | None = None, **kwargs: Any) -> nn.Module:
        embedding = self.caption_embedding(self.config.caption if caption is None else caption)
        return self.export_generator(self.G, embedding, unit_range_input=True)
