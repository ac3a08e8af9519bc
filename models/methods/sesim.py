"""FSeSim and LSeSim (Zheng, Cham, Cai, CVPR 2021): one-sided translation with the spatially-correlative loss."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from models.base import LossDict, MethodConfig, OptimizerSpec, Phase, Progress, TranslationMethod
from models.image_pool import ImagePool, load_pools, pools_state
from models.losses.adversarial import GANLoss
from models.losses.spatial_correlative import (
    LearnedSimilarityHead,
    colour_jitter,
    compare_maps,
    similarity_infonce,
    similarity_maps,
)
from models.networks.common import init_weights
from models.networks.patchgan import PatchDiscriminator
from models.networks.resnet import ResnetGenerator
from models.networks.vgg import VGG16Features

VGG_CHANNELS = {"relu3_1": 256, "relu4_1": 512, "relu4_3": 512}


@dataclass
class FSeSimConfig(MethodConfig):
    lr: float = 1e-4
    ngf: int = 64
    ndf: int = 64
    n_blocks: int = 9
    n_layers_D: int = 3
    norm: str = "instance"
    gan_mode: str = "lsgan"
    pool_size: int = 50
    lambda_spatial: float = 10.0
    layers: str = "relu3_1,relu4_1,relu4_3"
    num_patches: int = 256
    patch_size: int = 64  # window of the self-similarity maps (64 covers the whole relu3_1 map at 256 px)
    loss_mode: str = "cos"  # cos | l1
    top_fraction: float = 0.25  # compare only the target's top 25% similarities
    learned_head: bool = False
    nce_T: float = 0.07


@dataclass
class LSeSimConfig(FSeSimConfig):
    learned_head: bool = True
    patch_size: int = 32  # the authors' recommendation for the learned variant


class FSeSim(TranslationMethod):
    name = "fsesim"
    config_class = FSeSimConfig
    summary = "Unpaired, one-sided: spatially-correlative loss on fixed VGG16 self-similarities (x10), LSGAN"
    paper = ("Zheng, Cham, Cai. The Spatially-Correlative Loss for Various Image Translation Tasks. CVPR 2021")
    code = "https://github.com/lyndonzheng/F-LSeSim"
    layout = "unaligned"

    def __init__(self, config: FSeSimConfig, domains: list[str] | None = None) -> None:
        super().__init__(config, domains)
        c = config
        self.layer_names = tuple(n.strip() for n in c.layers.split(","))
        self.G = ResnetGenerator(3, 3, c.ngf, c.n_blocks, c.norm)
        self.D = PatchDiscriminator(3, c.ndf, c.n_layers_D, c.norm)
        init_weights(self.G, c.init_type, c.init_gain)
        init_weights(self.D, c.init_type, c.init_gain)
        self.vgg = VGG16Features(self.layer_names)
        if c.learned_head:
            self.head = LearnedSimilarityHead([VGG_CHANNELS[n] for n in self.layer_names])
            init_weights(self.head, c.init_type, c.init_gain)
        self.gan = GANLoss(c.gan_mode)
        self.pool = ImagePool(c.pool_size)

    def pretrained_weights(self) -> dict[str, str]:
        return {"vgg": "vgg16"}

    def frozen_modules(self) -> list[str]:
        return ["vgg"]

    def optimizers(self) -> list[OptimizerSpec]:
        c = self.config
        betas = (c.beta1, c.beta2)
        specs = [OptimizerSpec("G", [{"params": list(self.G.parameters())}], c.lr, betas),
                 OptimizerSpec("D", [{"params": list(self.D.parameters())}], c.lr, betas)]
        if c.learned_head:
            specs.append(OptimizerSpec("head", [{"params": list(self.head.parameters())}], c.lr, betas))
        return specs

    # features -------------------------------------------------------------------------------------------
    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = self.vgg(x)
        out = [feats[n].float() for n in self.layer_names]
        return self.head(out) if self.config.learned_head else out

    def _query_ids(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        return [torch.randperm(f.shape[-2] * f.shape[-1], device=f.device)[: self.config.num_patches] for f in feats]

    def _maps(self, feats: list[torch.Tensor], ids: list[torch.Tensor]) -> list[torch.Tensor]:
        return [similarity_maps(f, i, self.config.patch_size) for f, i in zip(feats, ids)]

    def spatial_loss(self, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        c = self.config
        fs, ft = self._features(source), self._features(target)
        ids = self._query_ids(fs)
        losses = [compare_maps(s, t, c.loss_mode, c.top_fraction)
                  for s, t in zip(self._maps(fs, ids), self._maps(ft, ids))]
        return torch.stack(losses).mean()

    # phases ---------------------------------------------------------------------------------------------
    def _fake(self, batch: dict[str, torch.Tensor], cache: dict[str, Any]) -> torch.Tensor:
        if "fake_B" not in cache:
            cache["fake_B"] = self.G(batch["A"])
        return cache["fake_B"]

    def _head_loss(self, batch: dict[str, torch.Tensor], cache: dict[str, Any]) -> LossDict:
        """LSeSim: the head learns maps where A matches its jittered self and its translation, not B."""
        real_a, real_b = batch["A"], batch["B"]
        fake_b = self._fake(batch, cache).detach()
        with torch.no_grad():
            aug_a, aug_b = colour_jitter(real_a), colour_jitter(real_b)
        feats = {k: self._features(v) for k, v in
                 {"a": real_a, "aug_a": aug_a, "fake": fake_b, "b": real_b, "aug_b": aug_b}.items()}
        ids = self._query_ids(feats["a"])
        maps = {k: self._maps(v, ids) for k, v in feats.items()}
        losses = [similarity_infonce(maps["a"][i], [maps["aug_a"][i], maps["fake"][i]],
                                     [maps["b"][i], maps["aug_b"][i]], self.config.nce_T)
                  for i in range(len(ids))]
        return {"head_NCE": torch.stack(losses).mean()}

    def _d_loss(self, batch: dict[str, torch.Tensor], cache: dict[str, Any]) -> LossDict:
        fake = self.pool.query(self._fake(batch, cache).detach())
        return {"D_real": 0.5 * self.gan(self.D(batch["B"]), True), "D_fake": 0.5 * self.gan(self.D(fake), False)}

    def _g_loss(self, batch: dict[str, torch.Tensor], cache: dict[str, Any]) -> LossDict:
        fake_b = self._fake(batch, cache)
        return {"G_GAN": self.gan(self.D(fake_b), True),
                "G_spatial": self.spatial_loss(batch["A"], fake_b) * self.config.lambda_spatial}

    def phases(self, progress: Progress) -> list[Phase]:
        phases = []
        if self.config.learned_head:
            phases.append(Phase("head", ("head",), self._head_loss))  # the head's loss updates only the head
        phases.append(Phase("D", ("D",), self._d_loss))
        frozen = ("D", "head") if self.config.learned_head else ("D",)
        phases.append(Phase("G", ("G",), self._g_loss, frozen=frozen))
        return phases

    def training_state(self) -> dict[str, Any]:
        return pools_state({"pool": self.pool})

    def load_training_state(self, state: dict[str, Any]) -> None:
        load_pools({"pool": self.pool}, state, next(self.parameters()).device)

    def sample_rows(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"real A": batch["A"], "A->B": self.G(batch["A"]), "real B": batch["B"]}

    def export_module(self, direction: str = "AtoB", **kwargs: Any) -> nn.Module:
        return copy.deepcopy(self.G).eval()

    @torch.no_grad()
    def translate(self, x: torch.Tensor, direction: str = "AtoB", **kwargs: Any) -> torch.Tensor:
        return self.G(x)


class LSeSim(FSeSim):
    name = "lsesim"
    config_class = LSeSimConfig
    summary = "FSeSim with a learned self-similarity head (its own InfoNCE with colour-jitter positives)"
