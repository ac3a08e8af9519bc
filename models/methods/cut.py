"""CUT and FastCUT (Park, Efros, Zhang, Zhu, ECCV 2020): one-sided translation with PatchNCE."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

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
from i2i_cli.models.draws import draw
from i2i_cli.models.losses.adversarial import GANLoss
from i2i_cli.models.losses.location_maps import patchnce_map
from i2i_cli.models.losses.patchnce import patch_nce
from i2i_cli.models.networks.common import init_weights
from i2i_cli.models.networks.patch_sampler import PatchSampleMLP
from i2i_cli.models.networks.patchgan import PatchDiscriminator
from i2i_cli.models.networks.resnet import ResnetGenerator


@dataclass
class CUTConfig(MethodConfig):
    epochs: int = 400  # 200 constant + 200 decay (the reference's CUT defaults)
    decay_epochs: int = 200
    init_type: InitType = "xavier"
    ngf: int = 64  # generator width (filters of its first layer)
    ndf: int = 64  # discriminator width (filters of its first layer)
    n_blocks: int = 9  # residual blocks in the generator
    n_layers_D: int = 3  # PatchGAN depth: 3 = 70x70 patches
    norm: Norm = "instance"  # normalisation layers: batch, instance or none
    antialias: bool = True  # blur Downsample in G's encoder and in D (the reference's default)
    antialias_up: bool = True  # blur Upsample + conv in G's decoder instead of transposed convolutions
    gan_mode: GanMode = "lsgan"  # adversarial loss (lsgan: least squares)
    lambda_GAN: float = 1.0  # adversarial loss weight
    lambda_NCE: float = 1.0  # PatchNCE loss weight
    nce_idt: bool = True  # PatchNCE also between real B and G(real B)
    nce_layers: str = "0,4,8,12,16"  # indices of the encoder layers whose features PatchNCE compares
    nce_T: float = 0.07  # temperature of PatchNCE's softmax
    num_patches: int = 256  # locations sampled per layer for PatchNCE
    netF_nc: int = 256  # output width of the MLP projection heads
    flip_equivariance: bool = False  # flip a batch at random and expect flipped features (FastCUT)


@dataclass
class FastCUTConfig(CUTConfig):
    epochs: int = 200  # 150 constant + 50 decay
    decay_epochs: int = 50
    lambda_NCE: float = 10.0  # PatchNCE loss weight
    nce_idt: bool = False
    flip_equivariance: bool = True  # flip a batch at random and expect flipped features (FastCUT)


class CUT(TranslationMethod, LossMaps, OfficialRelease):
    """Random draws of an iteration (models.draws, replayable through the phase cache): "flip" (FastCUT's
    flip-equivariance coin, bool), "patch_ids/NCE" and "patch_ids/NCE_Y" (per NCE layer, the sampled
    locations, LongTensor ids into H * W shared by the batch's images)."""

    name = "cut"
    config_class = CUTConfig
    summary = "Unpaired, one-sided: ResNet-9 G, PatchGAN, PatchNCE on 5 encoder layers, identity NCE"
    paper = ("Park, Efros, Zhang, Zhu. Contrastive Learning for Unpaired Image-to-Image Translation. "
             "ECCV 2020")
    code = "https://github.com/taesungp/contrastive-unpaired-translation"
    accepts = ("unaligned", "aligned")
    loss_map_names = ("patchnce",)

    def __init__(self, config: CUTConfig, domains: list[str] | None = None) -> None:
        super().__init__(config, domains)
        c = config
        self.layers = [int(i) for i in c.nce_layers.split(",")]
        self.G = ResnetGenerator(3, 3, c.ngf, c.n_blocks, c.norm, antialias=c.antialias,
                                 antialias_up=c.antialias_up)
        self.D = PatchDiscriminator(3, c.ndf, c.n_layers_D, c.norm, antialias=c.antialias)
        with torch.no_grad():
            channels = [f.shape[1] for f in self.G.encode(torch.zeros(1, 3, 32, 32), self.layers)]
        self.F = PatchSampleMLP(channels, c.netF_nc)
        for net in (self.G, self.D, self.F):
            init_weights(net, c.init_type, c.init_gain)
        self.gan = GANLoss(c.gan_mode)

    def optimizers(self) -> list[OptimizerSpec]:
        c = self.config
        betas = (c.beta1, c.beta2)
        return [OptimizerSpec("G", [{"params": list(self.G.parameters())}], c.lr, betas),
                OptimizerSpec("F", [{"params": list(self.F.parameters())}], c.lr, betas),
                OptimizerSpec("D", [{"params": list(self.D.parameters())}], c.lr, betas)]

    def _forward(self, batch: dict[str, torch.Tensor], cache: dict[str, Any]) -> None:
        if "fake_B" in cache:
            return
        c = self.config
        real_a = batch["A"]
        real = torch.cat([real_a, batch["B"]]) if c.nce_idt else real_a
        cache["flipped"] = bool(c.flip_equivariance and draw(cache, "flip", lambda: torch.rand(()).item() < 0.5))
        if cache["flipped"]:
            real = torch.flip(real, [3])
            fake = self.G(real)
        else:
            # PatchNCE's keys are the encoder's features of the real images, which this pass computes anyway (G
            # does not change before the G phase; the keys are detached): kept instead of a second encoder pass
            fake, feats = self.G.forward_with_features(real, self.layers)
            cache["keys/NCE"] = [f[: real_a.shape[0]] for f in feats]
            if c.nce_idt:
                cache["keys/NCE_Y"] = [f[real_a.shape[0] :] for f in feats]
        cache["fake_B"] = fake[: real_a.shape[0]]
        if c.nce_idt:
            cache["idt_B"] = fake[real_a.shape[0] :]

    def _nce(self, source: torch.Tensor, output: torch.Tensor, cache: dict[str, Any], term: str) -> torch.Tensor:
        c = self.config
        feat_q = self.G.encode(output, self.layers)
        if cache["flipped"]:
            feat_q = [torch.flip(f, [3]) for f in feat_q]
        feat_k = cache.get(f"keys/{term}") or self.G.encode(source, self.layers)
        ids = draw(cache, f"patch_ids/{term}", lambda: self.F.sample_ids(feat_k, c.num_patches))
        k_pool, _ = self.F(feat_k, c.num_patches, ids)
        q_pool, _ = self.F(feat_q, c.num_patches, ids)
        losses = [patch_nce(q, k, self._nce_groups(source.shape[0]), c.nce_T).mean() * c.lambda_NCE for q, k in zip(q_pool, k_pool)]
        return torch.stack(losses).mean()

    def _nce_groups(self, batch_size: int) -> int:
        """Groups whose patches are each other's negatives: each image alone (CUT), or the whole batch (SinCUT's
        nce_includes_all_negatives_from_minibatch)."""
        return batch_size

    def _d_loss(self, batch: dict[str, torch.Tensor], cache: dict[str, Any]) -> LossDict:
        self._forward(batch, cache)
        fake = self.gan(self.D(cache["fake_B"].detach()), False)
        real = self.gan(self.D(batch["B"]), True)
        return {"D_fake": 0.5 * fake, "D_real": 0.5 * real}

    def _g_loss(self, batch: dict[str, torch.Tensor], cache: dict[str, Any]) -> LossDict:
        c = self.config
        terms: LossDict = {}
        if c.lambda_GAN > 0:
            terms["G_GAN"] = self.gan(self.D(cache["fake_B"]), True) * c.lambda_GAN
        if c.lambda_NCE > 0:
            nce = self._nce(batch["A"], cache["fake_B"], cache, "NCE")
            if c.nce_idt:  # the reference averages the two PatchNCE terms
                terms["NCE"] = 0.5 * nce
                terms["NCE_Y"] = 0.5 * self._nce(batch["B"], cache["idt_B"], cache, "NCE_Y")
            else:
                terms["NCE"] = nce
        return terms

    def phases(self, progress: Progress) -> list[Phase]:
        # Reference order: forward, update D, then G and F together with D frozen.
        return [Phase("D", ("D",), self._d_loss), Phase("G", ("G", "F"), self._g_loss, frozen=("D",))]

    def sample_rows(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        rows = {"real A": batch["A"], "A->B": self.G(batch["A"])}
        if self.config.nce_idt:
            rows.update({"real B": batch["B"], "idt B": self.G(batch["B"])})
        return rows

    def export_module(self, direction: str = "AtoB", **kwargs: Any) -> nn.Module:
        return copy.deepcopy(self.G).eval()

    def release_parts(self) -> dict[str, nn.Module]:
        return {"": self.G}  # CUT's ResnetGenerator with anti-aliased down/up-sampling (`filt` buffers included)

    def loss_maps(self, weights: str = "") -> dict[str, LossMap]:
        """PatchNCE at every location with this run's encoder layers and MLP heads (queries from y, keys from x)."""
        return {"patchnce": LossMap(self._patchnce_map, "encoder + MLP" + (f" of {weights}" if weights else ""))}

    def _project(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        """Every location of each layer through its MLP head (the patches the loss samples, all of them)."""
        out = []
        for i, f in enumerate(feats):
            n, c, h, w = f.shape
            mlp = getattr(self.F, f"mlp_{i}")
            out.append(mlp(f.permute(0, 2, 3, 1).reshape(-1, c)).reshape(n, h, w, -1).permute(0, 3, 1, 2))
        return out

    def _patchnce_map(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        keys, queries = self._project(self.G.encode(x, self.layers)), self._project(self.G.encode(y, self.layers))
        size = max((k.shape[-2:] for k in keys), key=lambda s: s[0] * s[1])
        maps = [F.interpolate(patchnce_map(q, k, self.config.nce_T)[None, None], size=size, mode="bilinear",
                              align_corners=False)[0, 0] for q, k in zip(queries, keys)]
        return torch.stack(maps).mean(0)

    @torch.no_grad()
    def translate(self, x: torch.Tensor, direction: str = "AtoB", **kwargs: Any) -> torch.Tensor:
        return self.G(x)


class FastCUT(CUT):
    name = "fastcut"
    config_class = FastCUTConfig
    summary = "CUT's faster variant: lambda_NCE 10, no identity NCE, flip-equivariance augmentation"
