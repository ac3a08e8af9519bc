"""Attention-guided CycleGAN (Mejjati, Richardt, Tompkin, Cosker, Kim, NeurIPS 2018).

Defaults and training order follow the official TensorFlow code (main.py, model.py, configs/exp_01.json):
ngf 32, ndf 64, LSGAN, cycle 10 both ways, pool 50, Adam lr 1e-4 (beta1 0.5), 100 epochs with linear decay
over the second half, switch epoch 30 and foreground threshold 0.1. Each iteration updates, in order,
G_A (+ its attention before the switch), the discriminator of domain B, G_B (+ attention), the discriminator of
domain A, each step with a fresh forward pass as the official `sess.run` calls do.

Names follow our CycleGAN: G_A maps A -> B, Att_A attends A images, D_A judges domain B (G_A's output).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from i2i_cli.models.base import (
    AttentionMasks,
    GanMode,
    LossDict,
    MethodConfig,
    OptimizerSpec,
    Phase,
    Progress,
    TranslationMethod,
)
from i2i_cli.models.image_pool import ImagePool, load_pools, pools_state
from i2i_cli.models.losses.adversarial import GANLoss
from i2i_cli.models.losses.precision import upcast
from i2i_cli.models.networks.attention import (
    AttendedGenerator,
    AttentionGuidedDiscriminator,
    AttentionGuidedGenerator,
    AttentionNetwork,
    attend,
    foreground,
)
from i2i_cli.models.networks.common import init_weights


@dataclass
class AGCycleGANConfig(MethodConfig):
    lr: float = 1e-4
    epochs: int = 100
    decay_epochs: int = 50  # linear decay over the second half
    ngf: int = 32  # generator width (filters of its first layer)
    ndf: int = 64  # discriminator width (filters of its first layer)
    n_blocks: int = 9  # residual blocks in the generator
    attention_ngf: int = 32  # attention network width
    gan_mode: GanMode = "lsgan"  # adversarial loss (lsgan: least squares)
    lambda_cycle: float = 10.0  # cycle-consistency weight
    pool_size: int = 50  # past fakes kept to show D (0: only the newest)
    switch_epoch: int = 30  # of `epochs`: then attention is frozen and D sees only the attended foreground
    mask_threshold: float = 0.1  # from switch_epoch on, mask values below this are dropped from what D sees


class AGCycleGAN(TranslationMethod, AttentionMasks):
    name = "agcyclegan"
    config_class = AGCycleGANConfig
    summary = "CycleGAN with an attention network per domain: only the attended region is translated"
    paper = ("Mejjati, Richardt, Tompkin, Cosker, Kim. Unsupervised Attention-guided Image-to-Image Translation. "
             "NeurIPS 2018")
    code = "https://github.com/AlamiMejjati/Unsupervised-Attention-guided-Image-to-Image-Translation"
    accepts = ("unaligned", "aligned")
    two_sided = True

    def __init__(self, config: AGCycleGANConfig, domains: list[str] | None = None) -> None:
        super().__init__(config, domains)
        c = config
        # the official TensorFlow generator: zero padding, "SAME" strided (transposed) convs, affine norms
        self.G_A = AttentionGuidedGenerator(c.ngf, c.n_blocks)  # A -> B
        self.G_B = AttentionGuidedGenerator(c.ngf, c.n_blocks)  # B -> A
        self.Att_A = AttentionNetwork(c.attention_ngf)  # where to translate in A images
        self.Att_B = AttentionNetwork(c.attention_ngf)
        self.D_A = AttentionGuidedDiscriminator(3, c.ndf)  # judges domain B
        self.D_B = AttentionGuidedDiscriminator(3, c.ndf)  # judges domain A
        for net in (self.G_A, self.G_B, self.Att_A, self.Att_B, self.D_A, self.D_B):
            init_weights(net, c.init_type, c.init_gain)
        self.gan = GANLoss(c.gan_mode)
        # the pools keep each fake with its mask (4 channels), so a fake drawn after the switch is masked
        # with the threshold then in force, as the official pool of (image, mask) pairs does
        self.pool_A, self.pool_B = ImagePool(c.pool_size), ImagePool(c.pool_size)

    def optimizers(self) -> list[OptimizerSpec]:
        c = self.config
        betas = (c.beta1, c.beta2)
        return [OptimizerSpec(name, [{"params": list(getattr(self, name).parameters())}], c.lr, betas)
                for name in ("G_A", "G_B", "Att_A", "Att_B", "D_A", "D_B")]

    def switched(self, progress: Progress) -> bool:
        """Past the switch epoch, scaled to the run's length (30 of 100 epochs = 30% of the run)."""
        return progress.epoch >= self.config.switch_epoch * progress.total_epochs / self.config.epochs

    # forward ----------------------------------------------------------------------------------------
    def _cycle(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Both translations and both cycles; each goes through the attention of the image's own domain."""
        real_a, real_b = batch["A"], batch["B"]
        out = {"m_A": self.Att_A(real_a), "m_B": self.Att_B(real_b)}
        out["fake_B"] = attend(real_a, self.G_A(real_a), out["m_A"])
        out["fake_A"] = attend(real_b, self.G_B(real_b), out["m_B"])
        out["rec_A"] = attend(out["fake_B"], self.G_B(out["fake_B"]), self.Att_B(out["fake_B"]))
        out["rec_B"] = attend(out["fake_A"], self.G_A(out["fake_A"]), self.Att_A(out["fake_A"]))
        return out

    def _threshold(self, switched: bool) -> float:
        return self.config.mask_threshold if switched else 0.0  # mask >= 0 keeps every pixel

    def _g_loss(self, batch: dict[str, torch.Tensor], cache: dict[str, Any], side: str, switched: bool) -> LossDict:
        """The official g_loss_A (side A: both cycles + G_A's adversarial term) or g_loss_B."""
        out = self._cycle(batch)
        threshold = self._threshold(switched)
        cycle = (F.l1_loss(upcast(out["rec_A"]), upcast(batch["A"]))
                 + F.l1_loss(upcast(out["rec_B"]), upcast(batch["B"]))) * self.config.lambda_cycle
        if side == "A":
            cache["pool_B_in"] = torch.cat([out["fake_B"], out["m_A"]], 1).detach()
            adversarial = self.gan(self.D_A(foreground(out["fake_B"], out["m_A"], threshold)), True)
        else:
            cache["pool_A_in"] = torch.cat([out["fake_A"], out["m_B"]], 1).detach()
            adversarial = self.gan(self.D_B(foreground(out["fake_A"], out["m_B"], threshold)), True)
        return {f"G_{side}_GAN": adversarial, f"G_{side}_cycle": cycle}

    def _d_loss(self, batch: dict[str, torch.Tensor], cache: dict[str, Any], side: str, switched: bool) -> LossDict:
        """D_A (side A) judges domain B: real B under its own attention vs a pooled fake B under its mask."""
        threshold = self._threshold(switched)
        real, attention, disc, pool, key = ((batch["B"], self.Att_B, self.D_A, self.pool_B, "pool_B_in") if side == "A"
                                            else (batch["A"], self.Att_A, self.D_B, self.pool_A, "pool_A_in"))
        with torch.no_grad():
            real_mask = attention(real)
        pooled = pool.query(cache[key])
        fake, fake_mask = pooled[:, :3], pooled[:, 3:]
        loss = 0.5 * (self.gan(disc(foreground(real, real_mask, threshold)), True)
                      + self.gan(disc(foreground(fake, fake_mask, threshold)), False))
        return {f"D_{side}": loss}

    def phases(self, progress: Progress) -> list[Phase]:
        switched = self.switched(progress)
        for disc in (self.D_A, self.D_B):
            disc.normalise = not switched  # the official donorm
        discs = ("D_A", "D_B")

        def g_phase(side: str) -> Phase:
            other = "B" if side == "A" else "A"
            steps = (f"G_{side}",) if switched else (f"G_{side}", f"Att_{side}")
            frozen = discs + (f"G_{other}", f"Att_{other}") + ((f"Att_{side}",) if switched else ())
            return Phase(f"G_{side}", steps, lambda b, c: self._g_loss(b, c, side, switched), frozen=frozen)

        def d_phase(side: str) -> Phase:
            return Phase(f"D_{side}", (f"D_{side}",), lambda b, c: self._d_loss(b, c, side, switched))

        return [g_phase("A"), d_phase("A"), g_phase("B"), d_phase("B")]

    # state and inference ----------------------------------------------------------------------------
    def training_state(self) -> dict[str, Any]:
        return pools_state({"pool_A": self.pool_A, "pool_B": self.pool_B})

    def load_training_state(self, state: dict[str, Any]) -> None:
        load_pools({"pool_A": self.pool_A, "pool_B": self.pool_B}, state, next(self.parameters()).device)

    def attention_mask(self, x: torch.Tensor, direction: str = "AtoB") -> torch.Tensor:
        """(N, 1, H, W) in [0, 1]: where the translation in `direction` changes the image."""
        return (self.Att_A if direction == "AtoB" else self.Att_B)(x)

    def mask_module(self, direction: str = "AtoB") -> nn.Module:
        return copy.deepcopy(self.Att_A if direction == "AtoB" else self.Att_B).eval()

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
