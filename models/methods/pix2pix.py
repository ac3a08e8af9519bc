"""pix2pix (Isola et al., CVPR 2017): conditional GAN with a U-Net generator, PatchGAN and L1."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from i2i_cli.models.base import (
    GanMode,
    LossDict,
    MethodConfig,
    Norm,
    OfficialRelease,
    OptimizerSpec,
    Phase,
    Progress,
    TranslationMethod,
)
from i2i_cli.models.losses.adversarial import GANLoss
from i2i_cli.models.losses.precision import upcast
from i2i_cli.models.networks.common import init_weights, with_per_image_batchnorm
from i2i_cli.models.networks.patchgan import PatchDiscriminator, PixelDiscriminator
from i2i_cli.models.networks.unet import UnetGenerator


@dataclass
class Pix2PixConfig(MethodConfig):
    ngf: int = 64  # generator width (filters of its first layer)
    ndf: int = 64  # discriminator width (filters of its first layer)
    # discriminator: n_layers = the official NLayerDiscriminator with n_layers_D (1: 16x16 field, 3: 70x70 PatchGAN,
    # 5: 286x286 ImageGAN at 256 px); pixel = the official 1x1 PixelDiscriminator (PixelGAN)
    netD: Literal["n_layers", "pixel"] = "n_layers"
    n_layers_D: int = 3  # NLayerDiscriminator depth: 1 = 16x16, 3 = 70x70 PatchGAN, 5 = 286x286
    conditional_D: bool = True  # D sees the input with the output (cGAN); False: the output alone (the paper's GAN rows)
    lambda_GAN: float = 1.0  # weight of the adversarial loss; 0: L1 alone, no discriminator is trained (paper's L1 row)
    unet_skips: bool = True  # False: the paper's encoder-decoder (the U-Net without its skip connections)
    norm: Norm = "batch"  # normalisation layers: batch, instance or none
    dropout: bool = True  # dropout 0.5 in the three inner decoder blocks during training
    num_downs: int = 0  # U-Net levels; 0 = log2(size), i.e. unet_256 at 256 px
    gan_mode: GanMode = "vanilla"  # adversarial loss (vanilla: BCE on logits)
    lambda_L1: float = 100.0  # weight of the L1 loss to the ground truth
    # Inference as the reference test script: BatchNorm uses each image's own statistics (the network is
    # left in training mode at batch 1); "running" uses the running averages (the reference's --eval).
    inference_norm: Literal["per_image", "running"] = "per_image"
    test_dropout: bool = False  # the paper keeps dropout at test time as noise; off for deterministic output

    def problems(self) -> list[str]:
        if not self.lambda_GAN and not self.lambda_L1:
            return ["lambda_GAN and lambda_L1 are both 0: nothing would be trained; set one of them above 0"]
        return []


class Pix2Pix(TranslationMethod, OfficialRelease):
    name = "pix2pix"
    config_class = Pix2PixConfig
    summary = "Paired translation: U-Net generator, 70x70 PatchGAN conditioned on the input, L1 x100"
    paper = "Isola, Zhu, Zhou, Efros. Image-to-Image Translation with Conditional Adversarial Networks. CVPR 2017"
    code = "https://github.com/junyanz/pytorch-CycleGAN-and-pix2pix"
    accepts = ("aligned",)

    def __init__(self, config: Pix2PixConfig, domains: list[str] | None = None) -> None:
        super().__init__(config, domains)
        if config.problems():
            raise ValueError(config.problems()[0])
        num_downs = config.num_downs or max(5, int(math.log2(config.size)))
        self.G = UnetGenerator(3, 3, num_downs=num_downs, ngf=config.ngf, norm=config.norm, dropout=config.dropout,
                               skips=config.unet_skips)
        d_in = 6 if config.conditional_D else 3
        self.D: nn.Module = (PixelDiscriminator(d_in, ndf=config.ndf, norm=config.norm) if config.netD == "pixel" else
                             PatchDiscriminator(d_in, ndf=config.ndf, n_layers=config.n_layers_D, norm=config.norm))
        init_weights(self.G, config.init_type, config.init_gain)
        init_weights(self.D, config.init_type, config.init_gain)
        self.gan = GANLoss(config.gan_mode)

    def optimizers(self) -> list[OptimizerSpec]:
        c = self.config
        return [
            OptimizerSpec("G", [{"params": list(self.G.parameters())}], c.lr, (c.beta1, c.beta2)),
            OptimizerSpec("D", [{"params": list(self.D.parameters())}], c.lr, (c.beta1, c.beta2)),
        ]

    def _fake(self, batch: dict[str, torch.Tensor], cache: dict[str, Any]) -> torch.Tensor:
        if "fake_B" not in cache:
            cache["fake_B"] = self.G(batch["A"])
        return cache["fake_B"]

    def _d_input(self, real_a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """What D judges: the input with the output (conditional), or the output alone."""
        return torch.cat([real_a, b], 1) if self.config.conditional_D else b

    def _d_loss(self, batch: dict[str, torch.Tensor], cache: dict[str, Any]) -> LossDict:
        real_a, real_b = batch["A"], batch["B"]
        fake_b = self._fake(batch, cache).detach()
        loss_fake = self.gan(self.D(self._d_input(real_a, fake_b)), False)
        loss_real = self.gan(self.D(self._d_input(real_a, real_b)), True)
        return {"D_fake": 0.5 * loss_fake, "D_real": 0.5 * loss_real}

    def _g_loss(self, batch: dict[str, torch.Tensor], cache: dict[str, Any]) -> LossDict:
        real_a, real_b = batch["A"], batch["B"]
        fake_b = self._fake(batch, cache)
        terms: LossDict = {}
        if self.config.lambda_GAN:
            terms["G_GAN"] = self.gan(self.D(self._d_input(real_a, fake_b)), True) * self.config.lambda_GAN
        if self.config.lambda_L1:
            terms["G_L1"] = F.l1_loss(upcast(fake_b), upcast(real_b)) * self.config.lambda_L1
        return terms

    def phases(self, progress: Progress) -> list[Phase]:
        # Reference order: forward G, update D on the detached fake, then update G with D frozen. Without the
        # adversarial term (lambda_GAN 0, the paper's L1 row) there is no discriminator to train.
        g_step = Phase("G", ("G",), self._g_loss, frozen=("D",))
        if not self.config.lambda_GAN:
            return [g_step]
        return [Phase("D", ("D",), self._d_loss), g_step]

    def sample_rows(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"input": batch["A"], "output": self.translate(batch["A"]), "target": batch["B"]}

    @property
    def size_multiple(self) -> int:
        return self.G.size_multiple

    def _inference_generator(self) -> nn.Module:
        import copy

        net = copy.deepcopy(self.G)
        if self.config.norm == "batch" and self.config.inference_norm == "per_image":
            with_per_image_batchnorm(net)
        net.eval()
        if self.config.test_dropout:
            for m in net.modules():
                if isinstance(m, nn.Dropout):
                    m.train()
        return net

    @torch.no_grad()
    def translate(self, x: torch.Tensor, direction: str = "AtoB", **kwargs: Any) -> torch.Tensor:
        return self._inference_generator()(x)

    def release_parts(self) -> dict[str, nn.Module]:
        return {"": self.G}  # JZ UnetGenerator: model.model.0 ... (nested UnetSkipConnectionBlock)

    def export_module(self, direction: str = "AtoB", **kwargs: Any) -> nn.Module:
        return self._inference_generator()
