"""Single-image translation: CUT's SinCUT (Park et al., ECCV 2020, Fig. 9) and F-LSeSim's single-image model
(Zheng et al., CVPR 2021, `--model sinsc`), each trained on one image per domain (the single_image layout).

Defaults follow taesungp/contrastive-unpaired-translation models/sincut_model.py and lyndonzheng/F-LSeSim
models/sinsc_model.py + scripts/train_sinsc.sh: the StyleGAN2-style encoder-decoder G (1 resp. 2
downsamplings) and discriminator (models/networks/stylegan2.py), the non-saturating GAN, Adam betas (0, 0.99),
batches of 16 zoom-and-patch crops (64 resp. 128 px), 100,000 crops an epoch. SinCUT adds R1 (weight 1, halved)
and an identity L1 (weight 1) to CUT's PatchNCE (weight 4, one location per layer 0, 2, 4 with the other images of
the batch as negatives); SinSeSim is FSeSim's spatially-correlative loss (VGG16 relu3_1 / relu4_1 / relu4_3,
weight 10) with the WGAN-GP-style penalty at real/fake mixes (`lambda_gradient` 1) and no image pool.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from i2i_cli.models.base import DataSpec, GanMode, InitType, LossDict, TranslationMethod
from i2i_cli.models.draws import draw
from i2i_cli.models.losses.adversarial import GANLoss, interpolated_gradient_penalty, r1_penalty
from i2i_cli.models.methods.cut import CUT, CUTConfig
from i2i_cli.models.methods.sesim import FSeSim, FSeSimConfig
from i2i_cli.models.networks.common import init_weights
from i2i_cli.models.networks.patch_sampler import PatchSampleMLP
from i2i_cli.models.networks.stylegan2 import StyleGAN2Discriminator, StyleGAN2Generator

# Options of the parents that these networks do not have (the StyleGAN2 networks are not re-initialised either).
_NOT_STYLEGAN = ("load_size", "norm", "antialias", "antialias_up", "n_layers_D")


@dataclass
class SinCUTConfig(CUTConfig):
    size: int = 64  # crop size of the zoom-and-patch samples (the networks are built for it)
    load_size: int = 1024  # not used: zoom-and-patch samples the image at its own size, as the reference
    batch_size: int = 16
    epochs: int = 16  # n_epochs 8 + n_epochs_decay 8, of 100,000 crops each
    decay_epochs: int = 8
    lr: float = 0.002
    beta1: float = 0.0
    beta2: float = 0.99
    ngf: int = 10  # generator width (channels = round(k * ngf / 32) per resolution)
    ndf: int = 8  # discriminator width (channels = k * ndf / 64 per resolution)
    n_blocks: int = 6  # residual blocks, half in the encoder and half in the decoder
    n_down: int = 1  # G's downsampling blocks (stylegan2_G_num_downsampling)
    gan_mode: GanMode = "nonsaturating"  # adversarial loss
    lambda_NCE: float = 4.0  # PatchNCE loss weight
    nce_layers: str = "0,2,4"  # encoder layers PatchNCE compares (0: the image itself)
    num_patches: int = 1  # locations sampled per layer; the other images of the batch are the negatives
    nce_all_negatives: bool = True  # negatives from every image of the batch (else the same image's locations)
    lambda_R1: float = 1.0  # R1 penalty weight (applied halved, as the reference)
    lambda_identity: float = 1.0  # L1 between B and G(B)
    random_scale_max: float = 3.0  # zoom: each side is scaled by a factor in [1 / random_scale_max, 1]
    unused: ClassVar[tuple[str, ...]] = _NOT_STYLEGAN + ("flip_equivariance",)

    def data_spec(self) -> DataSpec:
        return DataSpec(random_zoom=self.random_scale_max)


@dataclass
class SinSeSimConfig(FSeSimConfig):
    size: int = 128  # crop size of the zoom-and-patch samples (the networks are built for it)
    load_size: int = 1024  # not used: zoom-and-patch samples the image at its own size, as the reference
    batch_size: int = 16
    epochs: int = 8  # n_epochs 4 + n_epochs_decay 4, of 100,000 crops each
    decay_epochs: int = 4
    lr: float = 0.001
    beta1: float = 0.0
    beta2: float = 0.99
    ngf: int = 8  # generator width (channels = round(k * ngf / 32) per resolution)
    ndf: int = 8  # discriminator width (channels = round(k * ndf / 64) per resolution)
    n_blocks: int = 6  # residual blocks, half in the encoder and half in the decoder
    n_down: int = 2  # G's downsampling blocks (stylegan2_G_num_downsampling)
    gan_mode: GanMode = "nonsaturating"  # adversarial loss
    pool_size: int = 0  # past fakes shown to D (train_sinsc.sh: --pool_size 0)
    lambda_gradient: float = 1.0  # gradient penalty at random real / fake mixes (|grad| - 1)^2
    random_scale_max: float = 3.0  # zoom: each side is scaled by a factor in [1 / random_scale_max, 1]
    init_type: InitType = "normal"  # used by the learned head only (learned_head); G and D keep their N(0, 1)
    unused: ClassVar[tuple[str, ...]] = _NOT_STYLEGAN

    def data_spec(self) -> DataSpec:
        return DataSpec(random_zoom=self.random_scale_max)


class SinCUT(CUT):
    """Random draws of an iteration (models.draws): CUT's "patch_ids/NCE", "patch_ids/NCE_Y", and "noise"
    (G's per-pixel noise maps, one per up-convolution, for A and B batched together)."""

    name = "sincut"
    config_class = SinCUTConfig
    summary = "Single image pair: StyleGAN2-style G/D, PatchNCE over the batch, R1, identity L1 (CUT's SinCUT)"
    accepts = ("single_image",)

    def __init__(self, config: SinCUTConfig, domains: list[str] | None = None) -> None:
        TranslationMethod.__init__(self, config, domains)
        c = config
        self.layers = [int(i) for i in c.nce_layers.split(",")]
        self.G = StyleGAN2Generator(c.ngf, c.size, c.n_down, c.n_blocks)
        self.D = StyleGAN2Discriminator(c.ndf, c.size, final_res=4, rounding="floor")
        with torch.no_grad():
            channels = [f.shape[1] for f in self.G.encode(torch.zeros(1, 3, c.size, c.size), self.layers)]
        self.F = PatchSampleMLP(channels, c.netF_nc)
        init_weights(self.F, c.init_type, c.init_gain)  # the reference initialises only F (define_F)
        self.gan = GANLoss(c.gan_mode)

    @property
    def size_multiple(self) -> int:
        return max(4, 2**self.config.n_down)  # the reference makes test images multiples of 4

    def _nce_groups(self, batch_size: int) -> int:
        return 1 if self.config.nce_all_negatives else batch_size

    def _forward(self, batch: dict[str, torch.Tensor], cache: dict[str, Any]) -> None:
        if "fake_B" in cache:
            return
        real_a = batch["A"]
        real = torch.cat([real_a, batch["B"]]) if self.config.nce_idt else real_a
        cache["flipped"] = False
        fake = self.G(real, draw(cache, "noise", lambda: self.G.make_noises(real)))
        cache["fake_B"] = fake[: real_a.shape[0]]
        if self.config.nce_idt:
            cache["idt_B"] = fake[real_a.shape[0]:]

    def _d_loss(self, batch: dict[str, torch.Tensor], cache: dict[str, Any]) -> LossDict:
        self._forward(batch, cache)
        real_b = batch["B"].detach().requires_grad_(self.config.lambda_R1 > 0)
        pred_real = self.D(real_b)
        terms = {"D_fake": 0.5 * self.gan(self.D(cache["fake_B"].detach()), False),
                 "D_real": 0.5 * self.gan(pred_real, True)}
        if self.config.lambda_R1 > 0:
            terms["D_R1"] = r1_penalty(pred_real, real_b) * (self.config.lambda_R1 * 0.5)
        return terms

    def _g_loss(self, batch: dict[str, torch.Tensor], cache: dict[str, Any]) -> LossDict:
        terms = super()._g_loss(batch, cache)
        if self.config.lambda_identity > 0:
            terms["idt"] = F.l1_loss(cache["idt_B"], batch["B"]) * self.config.lambda_identity
        return terms

    def sample_rows(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"real A": batch["A"], "A->B": self.translate(batch["A"]), "real B": batch["B"],
                "idt B": self.translate(batch["B"])}

    def export_module(self, direction: str = "AtoB", **kwargs: Any) -> nn.Module:
        return copy.deepcopy(self.G).eval()  # the noise at its mean (0): an ONNX graph is deterministic

    @torch.no_grad()
    def translate(self, x: torch.Tensor, direction: str = "AtoB", **kwargs: Any) -> torch.Tensor:
        """The whole image at its size; fresh noise from torch's generator, as the reference's test."""
        return self.G(x, self.G.make_noises(x))


class SinSeSim(FSeSim):
    """Random draws of an iteration (models.draws): "noise" (G's noise maps, one per up-convolution) and
    "gp_alpha" (the penalty's real / fake mixing weights, one per image); FSeSim's query locations."""

    name = "sinsesim"
    config_class = SinSeSimConfig
    summary = "Single image pair: StyleGAN2-style G/D, spatially-correlative loss (VGG16), gradient penalty"
    accepts = ("single_image",)

    def __init__(self, config: SinSeSimConfig, domains: list[str] | None = None) -> None:
        TranslationMethod.__init__(self, config, domains)
        c = config
        self.G = StyleGAN2Generator(c.ngf, c.size, c.n_down, c.n_blocks, tanh=True)
        self.D = StyleGAN2Discriminator(c.ndf, c.size, final_res=8, rounding="round")
        self._build_similarity_loss(c)

    @property
    def size_multiple(self) -> int:
        return max(4, 2**self.config.n_down)

    def _forward(self, batch: dict[str, torch.Tensor], cache: dict[str, Any]) -> None:
        if "fake_B" in cache:
            return
        real_a = batch["A"]
        real = torch.cat([real_a, batch["B"]]) if self._uses_identity() else real_a
        out = self.G(real, draw(cache, "noise", lambda: self.G.make_noises(real)))
        cache["fake_B"] = out[: len(real_a)]
        if self._uses_identity():
            cache["idt_B"] = out[len(real_a):]

    def _d_loss(self, batch: dict[str, torch.Tensor], cache: dict[str, Any]) -> LossDict:
        self._forward(batch, cache)
        c = self.config
        real, fake = batch["B"], self.pool.query(cache["fake_B"].detach())
        terms = {"D_real": 0.5 * self.gan(self.D(real), True), "D_fake": 0.5 * self.gan(self.D(fake), False)}
        if c.lambda_gradient > 0:
            alpha = draw(cache, "gp_alpha", lambda: torch.rand(real.shape[0], device=real.device))
            terms["D_gradient"] = interpolated_gradient_penalty(self.D, real, fake, alpha) * c.lambda_gradient
        return terms

    def sample_rows(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"real A": batch["A"], "A->B": self.translate(batch["A"]), "real B": batch["B"]}

    def export_module(self, direction: str = "AtoB", **kwargs: Any) -> nn.Module:
        return copy.deepcopy(self.G).eval()  # the noise at its mean (0): an ONNX graph is deterministic

    @torch.no_grad()
    def translate(self, x: torch.Tensor, direction: str = "AtoB", **kwargs: Any) -> torch.Tensor:
        """The whole image at its size; fresh noise from torch's generator, as the reference's test."""
        return self.G(x, self.G.make_noises(x))


