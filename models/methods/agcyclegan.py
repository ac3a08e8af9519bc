"""Attention-guided CycleGAN (Mejjati, Richardt, Tompkin, Cosker, Kim, NeurIPS 2018)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from models.base import LossDict, MethodConfig, OptimizerSpec, Phase, Progress, TranslationMethod
from models.image_pool import ImagePool, load_pools, pools_state
from models.losses.adversarial import GANLoss
from models.networks.attention import AttendedGenerator, AttentionNetwork, attend
from models.networks.common import init_weights
from models.networks.patchgan import PatchDiscriminator
from models.networks.resnet import ResnetGenerator


@dataclass
class AGCycleGANConfig(MethodConfig):
    lr: float = 1e-4
    epochs: int = 100
    decay_epochs: int = 50  # linear decay over the second half
    ngf: int = 32
    ndf: int = 64
    n_blocks: int = 9
    n_layers_D: int = 3
    attention_ngf: int = 32
    gan_mode: str = "lsgan"
    lambda_cycle: float = 10.0
    pool_size: int = 50
    switch_epoch: int = 30  # of `epochs`: then attention is frozen and D sees only the attended foreground
    mask_threshold: float = 0.1


class AGCycleGAN(TranslationMethod):
    name = "agcyclegan"
    config_class = AGCycleGANConfig
    summary = "CycleGAN with an attention network per domain: only the attended region is translated"
    paper = ("Mejjati, Richardt, Tompkin, Cosker, Kim. Unsupervised Attention-guided Image-to-Image Translation. "
             "NeurIPS 2018")
    code = "https://github.com/AlamiMejjati/Unsupervised-Attention-guided-Image-to-Image-Translation"
    layout = "unaligned"
    two_sided = True

    def __init__(self, config: AGCycleGANConfig, domains: list[str] | None = None) -> None:
        super().__init__(config, domains)
        c = config
        self.G_A = ResnetGenerator(3, 3, c.ngf, c.n_blocks, "instance")  # A -> B
        self.G_B = ResnetGenerator(3, 3, c.ngf, c.n_blocks, "instance")  # B -> A
        self.Att_A = AttentionNetwork(c.attention_ngf)  # where to translate in A images
        self.Att_B = AttentionNetwork(c.attention_ngf)
        self.D_A = PatchDiscriminator(3, c.ndf, c.n_layers_D, "instance")  # judges domain B
        self.D_B = PatchDiscriminator(3, c.ndf, c.n_layers_D, "instance")  # judges domain A
        for net in (self.G_A, self.G_B, self.Att_A, self.Att_B, self.D_A, self.D_B):
            init_weights(net, c.init_type, c.init_gain)
        self.gan = GANLoss(c.gan_mode)
        self.pool_A, self.pool_B = ImagePool(c.pool_size), ImagePool(c.pool_size)

    def optimizers(self) -> list[OptimizerSpec]:
        c = self.config
        betas = (c.beta1, c.beta2)
        g = list(self.G_A.parameters()) + list(self.G_B.parameters())
        a = list(self.Att_A.parameters()) + list(self.Att_B.parameters())
        d = list(self.D_A.parameters()) + list(self.D_B.parameters())
        return [OptimizerSpec("G", [{"params": g}], c.lr, betas), OptimizerSpec("attention", [{"params": a}], c.lr, betas),
                OptimizerSpec("D", [{"params": d}], c.lr, betas)]

    def switched(self, progress: Progress) -> bool:
        """Past the switch epoch, scaled to the run's length (30 of 100 epochs = 30% of the run)."""
        return progress.epoch >= self.config.switch_epoch * progress.total_epochs / self.config.epochs

    def _forward(self, batch: dict[str, torch.Tensor], cache: dict[str, Any]) -> None:
        if "fake_B" in cache:
            return
        real_a, real_b = batch["A"], batch["B"]
        cache["m_A"], cache["m_B"] = self.Att_A(real_a), self.Att_B(real_b)
        cache["fake_B"] = attend(real_a, self.G_A(real_a), cache["m_A"])
        cache["fake_A"] = attend(real_b, self.G_B(real_b), cache["m_B"])
        cache["rec_A"] = attend(cache["fake_B"], self.G_B(cache["fake_B"]), self.Att_B(cache["fake_B"]))
        cache["rec_B"] = attend(cache["fake_A"], self.G_A(cache["fake_A"]), self.Att_A(cache["fake_A"]))

    def _foreground(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return image * (mask > self.config.mask_threshold).to(image.dtype)

    def _g_loss(self, batch: dict[str, torch.Tensor], cache: dict[str, Any], switched: bool) -> LossDict:
        c = self.config
        self._forward(batch, cache)
        fake_b, fake_a = cache["fake_B"], cache["fake_A"]
        if switched:
            fake_b, fake_a = self._foreground(fake_b, cache["m_A"]), self._foreground(fake_a, cache["m_B"])
        return {"G_A": self.gan(self.D_A(fake_b), True), "G_B": self.gan(self.D_B(fake_a), True),
                "cycle_A": F.l1_loss(cache["rec_A"].float(), batch["A"].float()) * c.lambda_cycle,
                "cycle_B": F.l1_loss(cache["rec_B"].float(), batch["B"].float()) * c.lambda_cycle}

    def _d_loss(self, batch: dict[str, torch.Tensor], cache: dict[str, Any], switched: bool) -> LossDict:
        real_a, real_b = batch["A"], batch["B"]
        fake_b, fake_a = cache["fake_B"].detach(), cache["fake_A"].detach()
        if switched:  # D sees only the attended foreground of real and generated images
            with torch.no_grad():
                real_b = self._foreground(real_b, self.Att_B(real_b))
                real_a = self._foreground(real_a, self.Att_A(real_a))
            fake_b = self._foreground(fake_b, cache["m_A"].detach())
            fake_a = self._foreground(fake_a, cache["m_B"].detach())
        fake_b, fake_a = self.pool_B.query(fake_b), self.pool_A.query(fake_a)
        d_a = 0.5 * (self.gan(self.D_A(real_b), True) + self.gan(self.D_A(fake_b), False))
        d_b = 0.5 * (self.gan(self.D_B(real_a), True) + self.gan(self.D_B(fake_a), False))
        return {"D_A": d_a, "D_B": d_b}

    def phases(self, progress: Progress) -> list[Phase]:
        switched = self.switched(progress)
        g_opts = ("G",) if switched else ("G", "attention")
        g_frozen = ("D_A", "D_B", "Att_A", "Att_B") if switched else ("D_A", "D_B")
        return [Phase("G", g_opts, lambda b, c: self._g_loss(b, c, switched), frozen=g_frozen),
                Phase("D", ("D",), lambda b, c: self._d_loss(b, c, switched))]

    def training_state(self) -> dict[str, Any]:
        return pools_state({"pool_A": self.pool_A, "pool_B": self.pool_B})

    def load_training_state(self, state: dict[str, Any]) -> None:
        load_pools({"pool_A": self.pool_A, "pool_B": self.pool_B}, state, next(self.parameters()).device)

    def attention_mask(self, x: torch.Tensor, direction: str = "AtoB") -> torch.Tensor:
        return (self.Att_A if direction == "AtoB" else self.Att_B)(x)

    def sample_rows(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        a = batch["A"]
        mask = self.Att_A(a)
        return {"real A": a, "mask A": mask.expand_as(a) * 2 - 1, "A->B": attend(a, self.G_A(a), mask),
                "real B": batch["B"], "B->A": self.translate(batch["B"], "BtoA")}

    def export_module(self, direction: str = "AtoB", **kwargs: Any) -> nn.Module:
        pair = (self.G_A, self.Att_A) if direction == "AtoB" else (self.G_B, self.Att_B)
        return AttendedGenerator(*copy.deepcopy(pair)).eval()

    @torch.no_grad()
    def translate(self, x: torch.Tensor, direction: str = "AtoB", **kwargs: Any) -> torch.Tensor:
        g, a = (self.G_A, self.Att_A) if direction == "AtoB" else (self.G_B, self.Att_B)
        return attend(x, g(x), a(x))
