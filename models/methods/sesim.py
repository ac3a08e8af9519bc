"""FSeSim and LSeSim (Zheng, Cham, Cai, CVPR 2021): one-sided translation with the spatially-correlative loss.

Defaults follow lyndonzheng/F-LSeSim (`--model sc`, options/*.py and scripts/train_sc.sh): CUT's anti-aliased
ResNet-9 generator and PatchGAN, xavier init, LSGAN, pool 50, Adam lr 1e-4, 200 + 200 epochs, the loss at VGG16
relu3_1 / relu4_1 / relu4_3 with weight 10. LSeSim = `--learned_attn --augment`: a learned head per layer with its
own optimizer and phase (first in the iteration, as `optimize_parameters` orders it: head, D, G).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from i2i_cli.models.base import (
    GanMode,
    InitType,
    LossDict,
    LossMap,
    LossMaps,
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
from i2i_cli.models.losses.spatial_correlative import (
    LOSS_MODES,
    LearnedSimilarityHead,
    colour_jitter,
    compare_maps,
    layers_map,
    sample_query_ids,
    similarity_infonce,
    similarity_maps,
)
from i2i_cli.models.networks.common import init_weights
from i2i_cli.models.networks.patchgan import PatchDiscriminator
from i2i_cli.models.networks.resnet import ResnetGenerator
from i2i_cli.models.networks.vgg import VGG16_CHANNELS, VGG16Features


@dataclass
class FSeSimConfig(MethodConfig):
    lr: float = 1e-4
    epochs: int = 400  # n_epochs 200 + n_epochs_decay 200 (the official defaults)
    decay_epochs: int = 200
    init_type: InitType = "xavier"
    init_gain: float = 0.02
    ngf: int = 64  # generator width (filters of its first layer)
    ndf: int = 64  # discriminator width (filters of its first layer)
    n_blocks: int = 9  # residual blocks in the generator
    n_layers_D: int = 3  # PatchGAN depth: 3 = 70x70 patches
    norm: Norm = "instance"  # normalisation layers: batch, instance or none
    antialias: bool = True  # CUT's blur down/up-sampling in G and D (the official code's default)
    gan_mode: GanMode = "lsgan"  # adversarial loss (lsgan: least squares)
    pool_size: int = 50  # past fakes kept to show D (0: only the newest)
    lambda_spatial: float = 10.0  # spatially-correlative loss weight (A vs G(A))
    lambda_spatial_idt: float = 0.0  # spatial loss between B and G(B)
    lambda_identity: float = 0.0  # L1 between B and G(B)
    layers: str = "relu3_1,relu4_1,relu4_3"  # the official attn_layers 4,7,9
    num_patches: int = 256  # query locations per layer (<= 0: every location)
    patch_size: int = 64  # window of the maps; 64 covers every VGG map of a 256 crop (global maps)
    loss_mode: Literal["cos", "l1"] = "cos"  # cos | l1
    use_norm: bool = False  # cosine self-similarities; off: tanh(dot / 10) of features / sqrt(C) (official default)
    top_fraction: float = 0.25  # compare only the target's top similarities (the official top quarter)
    learned_head: bool = False  # LSeSim (--learned_attn)
    augment: bool = False  # colour-jittered A and B in the head's InfoNCE (--augment)
    nce_T: float = 0.07  # temperature of the learned head's InfoNCE (LSeSim)
    head_init_type: InitType = "normal"  # the official head is initialised normal(0, 0.02) whatever init_type says
    head_init_gain: float = 0.02  # std of the head's normal initialisation


@dataclass
class LSeSimConfig(FSeSimConfig):
    learned_head: bool = True
    augment: bool = True


class FSeSim(TranslationMethod, LossMaps, OfficialRelease):
    name = "fsesim"
    config_class = FSeSimConfig
    summary = "Unpaired, one-sided: spatially-correlative loss on fixed VGG16 self-similarities (x10), LSGAN"
    paper = "Zheng, Cham, Cai. The Spatially-Correlative Loss for Various Image Translation Tasks. CVPR 2021"
    code = "https://github.com/lyndonzheng/F-LSeSim"
    accepts = ("unaligned", "aligned")
    loss_map_names = ("fsesim",)

    def __init__(self, config: FSeSimConfig, domains: list[str] | None = None) -> None:
        super().__init__(config, domains)
        c = config
        self.G = ResnetGenerator(3, 3, c.ngf, c.n_blocks, c.norm, antialias=c.antialias)
        self.D = PatchDiscriminator(3, c.ndf, c.n_layers_D, c.norm, antialias=c.antialias)
        init_weights(self.G, c.init_type, c.init_gain)
        init_weights(self.D, c.init_type, c.init_gain)
        self._build_similarity_loss(c)

    def _build_similarity_loss(self, c: FSeSimConfig) -> None:
        """The loss side every F/LSeSim variant shares (after its G and D, so the head's initialisation draws
        come where the official code makes them): VGG16 layers, the learned head, the GAN loss, the pool."""
        if c.loss_mode not in LOSS_MODES:
            raise ValueError(f"loss_mode '{c.loss_mode}': use one of {', '.join(LOSS_MODES)}")
        self.layer_names = tuple(n.strip() for n in c.layers.split(",") if n.strip())
        self.vgg = VGG16Features(self.layer_names)
        if c.learned_head:
            self.head = LearnedSimilarityHead([VGG16_CHANNELS[n] for n in self.layer_names])
            init_weights(self.head, c.head_init_type, c.head_init_gain)
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

    # the loss ---------------------------------------------------------------------------------------
    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The layers the loss reads (through the learned head for LSeSim), one tensor per layer."""
        feats = self.vgg(x)
        out = [upcast(feats[n]) for n in self.layer_names]
        return self.head(out) if self.config.learned_head else out

    def _query_ids(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        return [sample_query_ids(f.shape[-2], f.shape[-1], self.config.num_patches, f.device) for f in feats]

    def _maps(self, feats: list[torch.Tensor], ids: list[torch.Tensor]) -> list[torch.Tensor]:
        c = self.config
        return [similarity_maps(f, i, c.patch_size, c.use_norm) for f, i in zip(feats, ids)]

    def spatial_loss(self, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean over layers of the map distance at shared random queries (the official Spatial_Loss)."""
        c = self.config
        fs, ft = self._features(source), self._features(target)
        ids = self._query_ids(fs)
        losses = [compare_maps(s, t, c.loss_mode, c.use_norm, c.top_fraction)
                  for s, t in zip(self._maps(fs, ids), self._maps(ft, ids))]
        return torch.stack(losses).mean()

    def head_nce_loss(self, real_a: torch.Tensor, fake_b: torch.Tensor, real_b: torch.Tensor) -> torch.Tensor:
        """LSeSim's head loss: A's maps must match those of its translation (and, with augment, of its
        colour-jittered copy) at the same query, not those of B (and jittered B) flipped in both axes."""
        source, target, other = real_a, fake_b, real_b
        if self.config.augment:
            with torch.no_grad():
                aug_a, aug_b = colour_jitter(real_a), colour_jitter(real_b)
            source = torch.cat([real_a, real_a])
            target = torch.cat([fake_b, aug_a])
            other = torch.cat([real_b, aug_b])
        fs, ft, fo = self._features(source), self._features(target), self._features(torch.flip(other, [2, 3]))
        ids = self._query_ids(fs)
        maps = [self._maps(f, ids) for f in (fs, ft, fo)]
        losses = [similarity_infonce(s, t, o, self.config.nce_T) for s, t, o in zip(*maps)]
        return torch.stack(losses).mean()

    # phases -----------------------------------------------------------------------------------------
    def _uses_identity(self) -> bool:
        return self.config.lambda_identity > 0 or self.config.lambda_spatial_idt > 0

    def _forward(self, batch: dict[str, torch.Tensor], cache: dict[str, Any]) -> None:
        """One generator pass per iteration (A and, with an identity term, B batched together, as officially)."""
        if "fake_B" in cache:
            return
        real_a = batch["A"]
        if self._uses_identity():
            out = self.G(torch.cat([real_a, batch["B"]]))
            cache["fake_B"], cache["idt_B"] = out[: len(real_a)], out[len(real_a):]
        else:
            cache["fake_B"] = self.G(real_a)

    def _head_loss(self, batch: dict[str, torch.Tensor], cache: dict[str, Any]) -> LossDict:
        self._forward(batch, cache)
        return {"head_NCE": self.head_nce_loss(batch["A"], cache["fake_B"].detach(), batch["B"])}

    def _d_loss(self, batch: dict[str, torch.Tensor], cache: dict[str, Any]) -> LossDict:
        self._forward(batch, cache)
        fake = self.pool.query(cache["fake_B"].detach())
        return {"D_real": 0.5 * self.gan(self.D(batch["B"]), True), "D_fake": 0.5 * self.gan(self.D(fake), False)}

    def _g_loss(self, batch: dict[str, torch.Tensor], cache: dict[str, Any]) -> LossDict:
        c = self.config
        self._forward(batch, cache)
        fake_b = cache["fake_B"]
        terms = {"G_GAN": self.gan(self.D(fake_b), True),
                 "G_spatial": self.spatial_loss(batch["A"], fake_b) * c.lambda_spatial}
        if c.lambda_spatial_idt > 0:
            terms["G_spatial_idt"] = self.spatial_loss(batch["B"], cache["idt_B"]) * c.lambda_spatial_idt
        if c.lambda_identity > 0:
            terms["idt_B"] = F.l1_loss(upcast(cache["idt_B"]), upcast(batch["B"])) * c.lambda_identity
        return terms

    def phases(self, progress: Progress) -> list[Phase]:
        phases = []
        if self.config.learned_head:
            # the head's InfoNCE trains only the head: fakes are detached, VGG is frozen, only "head" steps
            phases.append(Phase("head", ("head",), self._head_loss))
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

    def release_parts(self) -> dict[str, nn.Module]:
        return {"": self.G}  # F-LSeSim's netG is CUT's generator

    # error maps -------------------------------------------------------------------------------------
    def loss_maps(self, weights: str = "") -> dict[str, LossMap]:
        """fsesim: the fixed VGG16 self-similarities with this run's options, every location a query; lsesim
        (learned head): the same through the trained head. The VGG16 must be loaded (pretrained_weights)."""
        c = self.config
        similarity = "cosine" if c.use_norm else "tanh(dot/10)"
        options = f"{similarity}, top {c.top_fraction:g}, {c.loss_mode}, window {c.patch_size}"
        maps = {"fsesim": LossMap(lambda x, y: self._layers_map(self._vgg_features(x), self._vgg_features(y)),
                                  f"VGG16 {'/'.join(self.layer_names)}, {options}")}
        if c.learned_head:
            head = "learned head" + (f" of {weights}" if weights else "")
            maps["lsesim"] = LossMap(lambda x, y: self._layers_map(self._features(x), self._features(y)),
                                     f"{head}, {options}")
        return maps

    def _vgg_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = self.vgg(x)
        return [feats[n] for n in self.layer_names]

    def _layers_map(self, feats_x: list[torch.Tensor], feats_y: list[torch.Tensor]) -> torch.Tensor:
        c = self.config
        return layers_map(feats_x, feats_y, c.patch_size, c.loss_mode, c.use_norm, c.top_fraction)

    @torch.no_grad()
    def translate(self, x: torch.Tensor, direction: str = "AtoB", **kwargs: Any) -> torch.Tensor:
        return self.G(x)


class LSeSim(FSeSim):
    name = "lsesim"
    config_class = LSeSimConfig
    loss_map_names = ("fsesim", "lsesim")
    summary = "FSeSim with a learned self-similarity head (its own InfoNCE with colour-jitter positives)"
