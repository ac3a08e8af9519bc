"""CycleGAN-Turbo (Parmar, Park, Narasimhan, Zhu 2024, GaParmar/img2img-turbo): unpaired translation both ways
in one step of sd-turbo: one UNet with three LoRA adapters for both directions (a caption per target domain), a
VAE per direction with LoRA and skips, cycle + identity (L1 + LPIPS) and CLIP vision-aided GAN losses.

Facts read from the official code at 86f5414 (src/cyclegan_turbo.py, src/train_cyclegan_turbo.py); no code taken:
- images in [-1, 1]; a2b runs vae_a2b's encoder and decoder with the caption of domain B, b2a vae_b2a's with A's;
  vae_b2a starts as a copy of vae_a2b (the same LoRA initialisation);
- one iteration = five optimizer steps: (1) cycle: L1 x1 + LPIPS x10 both ways, clip 10, step; (2) GAN x0.5 on
  fresh a2b / b2a outputs, step; (3) identity: L1 x1 + LPIPS x1, step; (4) the discriminators on (2)'s detached
  outputs, mean of the two, step; (5) on the real images, step. PR #62 (merged 2024-09-08) zeroes the
  discriminators' gradients after (2); before it (4) also carried (2)'s generator gradients on the heads:
  `d_keeps_g_gradients` = True reproduces the old behaviour, False (default) the fixed one;
- AdamW (0.9, 0.999), weight decay 1e-2, eps 1e-8, lr 5e-6 (the README's horse2zebra recipe: 1e-5), constant;
  the generator's list holds the UNet conv_in's LoRA weights twice (`official_param_lists`);
- the VAE latent is sampled from the posterior (draws "posterior/<pass>"); i2i translates with its mean.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from i2i_cli.models.base import LossDict, MethodConfig, Phase, Progress
from i2i_cli.models.methods.one_step import OneStepDiffusionMethod
from i2i_cli.models.networks.turbo import (
    OneStepScheduler,
    OneStepTranslator,
    add_skip_convs,
    add_unet_lora_unpaired,
    add_vae_lora,
    official_unpaired_parameters,
)

Tensor = torch.Tensor


@dataclass
class CycleGANTurboConfig(MethodConfig):
    size: int = 256  # resize_286_randomcrop_256x256_hflip
    load_size: int = 286
    flip: bool = True
    batch_size: int = 4  # the official default (its README trains with 1)
    epochs: int = 0  # the schedule is in iterations
    decay_epochs: int = 0
    lr: float = 5e-6  # AdamW's learning rate (constant)
    beta1: float = 0.9  # AdamW's beta1
    beta2: float = 0.999  # AdamW's beta2
    weight_decay: float = 1e-2  # AdamW's
    adam_eps: float = 1e-8  # AdamW's epsilon
    max_grad_norm: float = 10.0  # gradient clipping before every optimizer step
    max_train_steps: int = 25000  # the schedule's length in iterations (the README's recipe; --steps overrides it)
    base_model: str = "stabilityai/sd-turbo"  # Hub id, hf://OWNER/NAME[@REV] or a local diffusers folder
    lora_rank_unet: int = 128  # LoRA rank of the UNet's three adapters (encoder, decoder, others)
    lora_rank_vae: int = 4  # LoRA rank of the VAE's adapter
    caption_A: str = ""  # the fixed caption of domain A (fixed_prompt_a.txt), what b2a is conditioned on
    caption_B: str = ""  # the fixed caption of domain B (fixed_prompt_b.txt), what a2b is conditioned on
    lambda_cycle: float = 1.0  # weight of the cycle L1
    lambda_cycle_lpips: float = 10.0  # weight of the cycle LPIPS
    lambda_idt: float = 1.0  # weight of the identity L1
    lambda_idt_lpips: float = 1.0  # weight of the identity LPIPS
    lambda_gan: float = 0.5  # 0: no discriminators
    gan_loss: Literal["multilevel_sigmoid", "multilevel_sigmoid_s"] = "multilevel_sigmoid"  # the vision-aided loss
    official_param_lists: bool = True  # as pix2pix_turbo's
    d_keeps_g_gradients: bool = False  # True: before PR #62 (the D-fake step carries the G-GAN gradients)
    unused: ClassVar[tuple[str, ...]] = ("init_type", "init_gain", "direction")
    positive: ClassVar[tuple[str, ...]] = (*MethodConfig.positive, "lora_rank_unet", "lora_rank_vae",
                                           "max_train_steps", "adam_eps")

    def total_iterations(self) -> int:
        return self.max_train_steps

    def problems(self) -> list[str]:
        if self.caption_A and self.caption_B:
            return []
        return ["cyclegan_turbo needs a caption per domain: --set caption_A='picture of a horse' --set "
                "caption_B='picture of a zebra' (what the official fixed_prompt_a.txt / fixed_prompt_b.txt hold)"]


class CycleGANTurbo(OneStepDiffusionMethod):
    """Networks: `unet` (shared, three LoRA adapters), `vae_a2b`, `vae_b2a` (LoRA, skips), `text_encoder` and
    `lpips` (frozen), `D_A` (judges B-domain images: real B vs a2b outputs) and `D_B` (A-domain), vision-aided."""

    name = "cyclegan_turbo"
    config_class = CycleGANTurboConfig
    summary = "Unpaired, one-step diffusion both ways (sd-turbo + LoRA): cycle/identity L1+LPIPS, vision-aided GAN"
    paper = "Parmar, Park, Narasimhan, Zhu. One-Step Image Translation with Text-to-Image Models. arXiv 2024"
    code = "https://github.com/GaParmar/img2img-turbo"
    accepts = ("unaligned", "aligned")
    two_sided = True

    def __init__(self, config: CycleGANTurboConfig, domains: list[str] | None = None) -> None:
        if config.problems():
            raise ValueError(config.problems()[0])
        lpips = config.lambda_cycle_lpips > 0 or config.lambda_idt_lpips > 0
        super().__init__(config, domains, lpips, False, ["D_A", "D_B"] if config.lambda_gan > 0 else [],
                         config.gan_loss)

    def attach_base_model(self, parts: Any) -> None:
        c = self.config
        add_unet_lora_unpaired(parts.unet, c.lora_rank_unet)
        add_skip_convs(parts.vae)
        add_vae_lora(parts.vae, c.lora_rank_vae)
        self.unet, self.vae_a2b = parts.unet, parts.vae
        self.unet.requires_grad_(False)
        self.vae_a2b.requires_grad_(False)
        for name, param in self.unet.named_parameters():  # initialize_unet: LoRA and conv_in are trained
            param.requires_grad_("lora" in name or name.startswith("conv_in."))
        # initialize_vae: only LoRA (peft's add_adapter freezes the rest after the skip convolutions were made
        # trainable, so their 1x1 weights stay at 1e-5 and only their LoRA weights train; pix2pix-Turbo differs)
        for name, param in self.vae_a2b.named_parameters():
            param.requires_grad_("lora" in name)
        self.vae_b2a = copy.deepcopy(self.vae_a2b)
        self._take_text_encoder(parts)
        self.scheduler = OneStepScheduler.from_config(parts.scheduler_config)
        # the two directions as generators over the shared modules (plain attributes: nothing registered twice)
        object.__setattr__(self, "_directions", {
            "a2b": OneStepTranslator(self.unet, self.vae_a2b, self.scheduler),
            "b2a": OneStepTranslator(self.unet, self.vae_b2a, self.scheduler)})

    def generators(self) -> dict[str, nn.Module]:
        return {"unet": self.unet, "vae_a2b": self.vae_a2b, "vae_b2a": self.vae_b2a}

    def unet_and_vae(self) -> tuple[nn.Module, nn.Module]:
        return self.unet, self.vae_a2b

    def _translator(self, direction: str) -> OneStepTranslator:
        """a2b (AtoB) or b2a (BtoA): the shared UNet with that direction's VAE."""
        return self._directions["a2b" if direction in ("a2b", "AtoB") else "b2a"]

    def _caption(self, direction: str) -> str:
        return self.config.caption_B if direction in ("a2b", "AtoB") else self.config.caption_A

    def _pass(self, x: Tensor, direction: str, cache: dict[str, Any], tag: str) -> Tensor:
        embedding = self.caption_embedding(self._caption(direction)).expand(x.shape[0], -1, -1)
        return self.run(self._translator(direction), x, embedding, cache, f"posterior/{tag}")

    # --- training -----------------------------------------------------------------------------------------
    def official_generator_parameters(self) -> list[nn.Parameter]:
        return official_unpaired_parameters(self.unet, self.vae_a2b, self.vae_b2a)

    def phases(self, progress: Progress) -> list[Phase]:
        c = self.config
        phases = [Phase("G_cycle", ("G",), self._cycle_loss)]
        if c.lambda_gan > 0:
            keep = c.d_keeps_g_gradients
            phases.append(Phase("G_GAN", ("G",), self._generator_gan_loss, frozen=() if keep else ("D_A", "D_B")))
        if c.lambda_idt > 0 or c.lambda_idt_lpips > 0:
            phases.append(Phase("G_idt", ("G",), self._identity_loss))
        if c.lambda_gan > 0:
            keep = ("D",) if c.d_keeps_g_gradients else ()
            phases += [Phase("D_fake", ("D",), self._d_fake_loss, accumulate=keep),
                       Phase("D_real", ("D",), self._d_real_loss)]
        return phases

    def _l1_lpips(self, x: Tensor, y: Tensor, l1: float, lpips: float) -> Tensor:
        loss = F.l1_loss(x, y) * l1
        return loss + self.lpips(x, y).mean() * lpips if lpips > 0 else loss

    def _cycle_loss(self, batch: dict[str, Tensor], cache: dict[str, Any]) -> LossDict:
        c = self.config
        a, b = batch["A"], batch["B"]
        rec_a = self._pass(self._pass(a, "a2b", cache, "cycle_a2b"), "b2a", cache, "cycle_rec_a")
        rec_b = self._pass(self._pass(b, "b2a", cache, "cycle_b2a"), "a2b", cache, "cycle_rec_b")
        return {"cycle_A": self._l1_lpips(rec_a, a, c.lambda_cycle, c.lambda_cycle_lpips),
                "cycle_B": self._l1_lpips(rec_b, b, c.lambda_cycle, c.lambda_cycle_lpips)}

    def _generator_gan_loss(self, batch: dict[str, Tensor], cache: dict[str, Any]) -> LossDict:
        lam = self.config.lambda_gan
        cache["fake_A"] = fake_a = self._pass(batch["B"], "b2a", cache, "gan_b2a")
        cache["fake_B"] = fake_b = self._pass(batch["A"], "a2b", cache, "gan_a2b")
        return {"G_GAN_A": self.discriminate("D_A", fake_b, "G", cache, "G_A").mean() * lam,
                "G_GAN_B": self.discriminate("D_B", fake_a, "G", cache, "G_B").mean() * lam}

    def _identity_loss(self, batch: dict[str, Tensor], cache: dict[str, Any]) -> LossDict:
        c = self.config
        a, b = batch["A"], batch["B"]
        idt_a = self._pass(b, "a2b", cache, "idt_a2b")
        idt_b = self._pass(a, "b2a", cache, "idt_b2a")
        return {"idt_A": self._l1_lpips(idt_a, b, c.lambda_idt, c.lambda_idt_lpips),
                "idt_B": self._l1_lpips(idt_b, a, c.lambda_idt, c.lambda_idt_lpips)}

    def _d_fake_loss(self, batch: dict[str, Tensor], cache: dict[str, Any]) -> LossDict:
        lam = self.config.lambda_gan
        d_a = self.discriminate("D_A", cache["fake_B"].detach(), "fake", cache, "fake_A").mean() * lam
        d_b = self.discriminate("D_B", cache["fake_A"].detach(), "fake", cache, "fake_B").mean() * lam
        return {"D_A_fake": d_a * 0.5, "D_B_fake": d_b * 0.5}

    def _d_real_loss(self, batch: dict[str, Tensor], cache: dict[str, Any]) -> LossDict:
        lam = self.config.lambda_gan
        d_a = self.discriminate("D_A", batch["B"], "real", cache, "real_A").mean() * lam
        d_b = self.discriminate("D_B", batch["A"], "real", cache, "real_B").mean() * lam
        return {"D_A_real": d_a * 0.5, "D_B_real": d_b * 0.5}

    def sample_rows(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        fake_b, fake_a = self.translate(batch["A"], "AtoB"), self.translate(batch["B"], "BtoA")
        return {"real_A": batch["A"], "fake_B": fake_b, "real_B": batch["B"], "fake_A": fake_a}

    # --- inference ----------------------------------------------------------------------------------------
    @torch.no_grad()
    def translate(self, x: Tensor, direction: str = "AtoB", caption: str | None = None, **kwargs: Any) -> Tensor:
        embedding = self.caption_embedding(self._caption(direction) if caption is None else caption)
        return self._translator(direction)(x, embedding.expand(x.shape[0], -1, -1).to(x.dtype))

    def export_module(self, direction: str = "AtoB", caption: str | None = None, **kwargs: Any) -> nn.Module:
        embedding = self.caption_embedding(self._caption(direction) if caption is None else caption)
        return self.export_generator(self._translator(direction), embedding, unit_range_input=False)
