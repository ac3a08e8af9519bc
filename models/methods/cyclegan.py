"""CycleGAN (Zhu, Park, Isola, Efros, ICCV 2017): two generators, two PatchGANs, cycle consistency."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

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
from i2i_cli.models.image_pool import ImagePool, load_pools, pools_state
from i2i_cli.models.losses.adversarial import GANLoss
from i2i_cli.models.losses.precision import upcast
from i2i_cli.models.networks.common import init_weights
from i2i_cli.models.networks.patchgan import PatchDiscriminator
from i2i_cli.models.networks.resnet import ResnetGenerator


@dataclass
class CycleGANConfig(MethodConfig):
    ngf: int = 64  # generator width (filters of its first layer)
    ndf: int = 64  # discriminator width (filters of its first layer)
    n_blocks: int = 9  # resnet_9blocks
    n_layers_D: int = 3  # PatchGAN depth: 3 = 70x70 patches
    norm: Norm = "instance"  # normalisation layers: batch, instance or none
    dropout: bool = False  # dropout 0.5 in the generator's residual blocks
    gan_mode: GanMode = "lsgan"  # adversarial loss (lsgan: least squares)
    lambda_A: float = 10.0  # cycle A -> B -> A
    lambda_B: float = 10.0  # cycle B -> A -> B
    lambda_identity: float = 0.5  # identity loss weight, relative to the cycle weights
    pool_size: int = 50  # past fakes kept to show D (0: only the newest)


class CycleGAN(TranslationMethod, OfficialRelease):
    """Random draws of an iteration (models.draws, replayable through the phase cache): "pool_B" and "pool_A",
    the picks of the pools of generated B (for D_A) and A (for D_B) images, see ImagePool.query_with_picks."""

    name = "cyclegan"
    config_class = CycleGANConfig
    summary = "Unpaired, two-sided: two ResNet-9 generators, two 70x70 PatchGANs, LSGAN, cycle x10, identity 0.5"
    paper = ("Zhu, Park, Isola, Efros. Unpaired Image-to-Image Translation using Cycle-Consistent Adversarial "
             "Networks. ICCV 2017")
    code = "https://github.com/junyanz/pytorch-CycleGAN-and-pix2pix"
    accepts = ("unaligned", "aligned")
    two_sided = True

    def __init__(self, config: CycleGANConfig, domains: list[str] | None = None) -> None:
        super().__init__(config, domains)
        c = config
        self.G_A = ResnetGenerator(3, 3, c.ngf, c.n_blocks, c.norm, c.dropout)  # A -> B
        self.G_B = ResnetGenerator(3, 3, c.ngf, c.n_blocks, c.norm, c.dropout)  # B -> A
        self.D_A = PatchDiscriminator(3, c.ndf, c.n_layers_D, c.norm)  # real B vs G_A(A)
        self.D_B = PatchDiscriminator(3, c.ndf, c.n_layers_D, c.norm)  # real A vs G_B(B)
        for net in (self.G_A, self.G_B, self.D_A, self.D_B):
            init_weights(net, c.init_type, c.init_gain)
        self.gan = GANLoss(c.gan_mode)
        self.pool_A = ImagePool(c.pool_size)  # fakes of domain A, for D_B
        self.pool_B = ImagePool(c.pool_size)  # fakes of domain B, for D_A

    def optimizers(self) -> list[OptimizerSpec]:
        c = self.config
        g = list(self.G_A.parameters()) + list(self.G_B.parameters())
        d = list(self.D_A.parameters()) + list(self.D_B.parameters())
        return [OptimizerSpec("G", [{"params": g}], c.lr, (c.beta1, c.beta2)),
                OptimizerSpec("D", [{"params": d}], c.lr, (c.beta1, c.beta2))]

    def _forward(self, batch: dict[str, torch.Tensor], cache: dict[str, Any]) -> None:
        if "fake_B" in cache:
            return
        cache["fake_B"] = self.G_A(batch["A"])
        cache["rec_A"] = self.G_B(cache["fake_B"])
        cache["fake_A"] = self.G_B(batch["B"])
        cache["rec_B"] = self.G_A(cache["fake_A"])

    def _g_loss(self, batch: dict[str, torch.Tensor], cache: dict[str, Any]) -> LossDict:
        c = self.config
        self._forward(batch, cache)
        real_a, real_b = batch["A"], batch["B"]
        terms: LossDict = {}
        if c.lambda_identity > 0:
            terms["idt_A"] = F.l1_loss(upcast(self.G_A(real_b)), upcast(real_b)) * c.lambda_B * c.lambda_identity
            terms["idt_B"] = F.l1_loss(upcast(self.G_B(real_a)), upcast(real_a)) * c.lambda_A * c.lambda_identity
        terms["G_A"] = self.gan(self.D_A(cache["fake_B"]), True)
        terms["G_B"] = self.gan(self.D_B(cache["fake_A"]), True)
        terms["cycle_A"] = F.l1_loss(upcast(cache["rec_A"]), upcast(real_a)) * c.lambda_A
        terms["cycle_B"] = F.l1_loss(upcast(cache["rec_B"]), upcast(real_b)) * c.lambda_B
        return terms

    @staticmethod
    def _from_pool(pool: ImagePool, fakes: torch.Tensor, cache: dict[str, Any], name: str) -> torch.Tensor:
        """The pool's answer; its picks are a named draw of the iteration (models.draws): replayed when the
        cache holds them, recorded there otherwise."""
        draws = cache.setdefault("draws", {})
        images, draws[name] = pool.query_with_picks(fakes.detach(), draws.get(name))
        return images

    def _d_loss(self, batch: dict[str, torch.Tensor], cache: dict[str, Any]) -> LossDict:
        fake_b = self._from_pool(self.pool_B, cache["fake_B"], cache, "pool_B")
        fake_a = self._from_pool(self.pool_A, cache["fake_A"], cache, "pool_A")
        d_a = (self.gan(self.D_A(batch["B"]), True) + self.gan(self.D_A(fake_b), False)) * 0.5
        d_b = (self.gan(self.D_B(batch["A"]), True) + self.gan(self.D_B(fake_a), False)) * 0.5
        return {"D_A": d_a, "D_B": d_b}

    def phases(self, progress: Progress) -> list[Phase]:
        # Reference order: forward both cycles, update both G with the Ds frozen, then both Ds (image pools).
        return [Phase("G", ("G",), self._g_loss, frozen=("D_A", "D_B")), Phase("D", ("D",), self._d_loss)]

    def training_state(self) -> dict[str, Any]:
        return pools_state({"pool_A": self.pool_A, "pool_B": self.pool_B})

    def load_training_state(self, state: dict[str, Any]) -> None:
        load_pools({"pool_A": self.pool_A, "pool_B": self.pool_B}, state, next(self.parameters()).device)

    def sample_rows(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        fake_b = self.G_A(batch["A"])
        fake_a = self.G_B(batch["B"])
        return {"real A": batch["A"], "A->B": fake_b, "A->B->A": self.G_B(fake_b),
                "real B": batch["B"], "B->A": fake_a, "B->A->B": self.G_A(fake_a)}

    def generator(self, direction: str) -> ResnetGenerator:
        """G_A for AtoB, G_B for BtoA."""
        if direction not in ("AtoB", "BtoA"):
            raise ValueError(f"direction must be AtoB or BtoA, not {direction!r}")
        return self.G_A if direction == "AtoB" else self.G_B

    release_directions = ("AtoB",)  # every released .pth is one generator: G_A holds it, G_B stays untrained

    def release_parts(self) -> dict[str, nn.Module]:
        return {"": self.G_A}  # JZ ResnetGenerator: model.0 ... model.27 (resnet_9blocks)

    def export_module(self, direction: str = "AtoB", **kwargs: Any) -> nn.Module:
        return copy.deepcopy(self.generator(direction)).eval()

    @torch.no_grad()
    def translate(self, x: torch.Tensor, direction: str = "AtoB", **kwargs: Any) -> torch.Tensor:
        return self.generator(direction)(x)
