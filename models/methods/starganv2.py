"""StarGAN v2 (Choi, Uh, Yoo, Ha, CVPR 2020): one generator for many domains, styles from references or noise.

Written from the paper and the reference's facts (its code is CC BY-NC: read for facts only).

One iteration, in the reference's order: D against latent-guided fakes, D against reference-guided fakes
(non-saturating loss, R1 on the real images), G + mapping network + style encoder with latent codes, G alone
with references. Batches: {"x" sources, "y" their domains, "ref"/"ref2" two references of "y_ref"}.

w_hpf > 0 (the reference's CelebA-HQ setting) adds the FAN face-landmark network (frozen, loaded from the
released wing.ckpt through the weights registry, never trained nor saved with the run): its masks of the source
images drive the generator's high-pass skips for every fake, and the masks of the fake drive the cycle
reconstruction, as the reference's compute_g_loss does.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from i2i_cli.models.base import (
    DataSpec,
    InitType,
    LossDict,
    MethodConfig,
    OfficialRelease,
    OptimizerSpec,
    Phase,
    Progress,
    StyleSource,
    TranslationMethod,
)
from i2i_cli.models.losses.adversarial import gan_loss
from i2i_cli.models.losses.precision import upcast
from i2i_cli.models.networks.common import init_weights
from i2i_cli.models.networks.fan import FAN
from i2i_cli.models.networks.stargan_v2 import (
    Discriminator,
    Generator,
    MappingNetwork,
    MaskedGenerator,
    StyleEncoder,
)


def r1_penalty(logits: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """0.5 * E[ ||d D(x) / d x||^2 ] on real images (Mescheder et al. 2018); `real` must require grad."""
    (grad,) = torch.autograd.grad(upcast(logits).sum(), real, create_graph=True)
    return 0.5 * upcast(grad).pow(2).flatten(1).sum(1).mean()


@dataclass
class StarGANv2Config(MethodConfig):
    size: int = 256
    load_size: int = 0  # images are resized to `size`; the random resized crop does the augmentation
    batch_size: int = 8
    epochs: int = 0  # 0: run `total_iters` iterations (the reference counts iterations, not epochs)
    decay_epochs: int = 0  # constant learning rate
    total_iters: int = 100_000  # training iterations (the schedule when epochs is 0)
    lr: float = 1e-4
    f_lr: float = 1e-6  # the mapping network's learning rate
    beta1: float = 0.0
    beta2: float = 0.99
    weight_decay: float = 1e-4  # Adam weight decay
    init_type: InitType = "kaiming"
    init_gain: float = 0.02
    style_dim: int = 64  # style code size
    latent_dim: int = 16  # latent code size (the mapping network's input)
    max_conv_dim: int = 512  # widest convolution of G, E and D
    dim_in: int = 0  # first convolution's width; 0: 2**14 // size, as the reference (64 at 256 px)
    mapping_dim: int = 512  # hidden width of the mapping network
    lambda_reg: float = 1.0  # R1
    lambda_sty: float = 1.0  # style reconstruction weight
    lambda_ds: float = 1.0  # diversity-sensitive, decayed linearly to 0 over ds_iter iterations
    ds_iter: int = 100_000  # iterations over which lambda_ds decays to 0
    lambda_cyc: float = 1.0  # cycle-consistency weight
    ema_beta: float = 0.999  # decay of the moving average of G, F and E (the evaluated nets)
    random_resized_crop: float = 0.5  # probability of a random resized crop (scale 0.8-1, ratio 0.9-1.1)
    # High-pass skip weight: 0 for AFHQ; 1 for the reference's CelebA-HQ model, whose skips are masked by the
    # FAN face-landmark network (weights 'wing', StarGAN v2's wing.ckpt).
    w_hpf: float = 0.0
    fan_width: int = 256  # the FAN's width: 256 in the release (smaller only for tests' stand-ins)

    def data_spec(self) -> DataSpec:
        return DataSpec(random_resized_crop=self.random_resized_crop)

    def total_iterations(self) -> int:
        return self.total_iters

    def ema_decay(self) -> float:
        return self.ema_beta



class StarGANv2(TranslationMethod, StyleSource, OfficialRelease):
    name = "starganv2"
    config_class = StarGANv2Config
    summary = "Multi-domain, multi-modal: AdaIN generator, mapping network, style encoder, multi-head D, R1"
    paper = "Choi, Uh, Yoo, Ha. StarGAN v2: Diverse Image Synthesis for Multiple Domains. CVPR 2020"
    code = "https://github.com/clovaai/stargan-v2 (CC BY-NC; facts only)"
    accepts = ("domains",)
    evaluation = "multidomain"
    multi_domain = True
    takes_style_reference = True

    def __init__(self, config: StarGANv2Config, domains: list[str] | None = None) -> None:
        super().__init__(config, domains)
        c, n = config, len(self.domains)
        dim_in = c.dim_in or None
        self.G = Generator(c.size, c.style_dim, c.max_conv_dim, dim_in, c.w_hpf)
        self.F = MappingNetwork(c.latent_dim, c.style_dim, n, c.mapping_dim)
        self.E = StyleEncoder(c.size, c.style_dim, n, c.max_conv_dim, dim_in)
        self.D = Discriminator(c.size, n, c.max_conv_dim, dim_in)
        for net in (self.G, self.F, self.E, self.D):
            # "kaiming" is the reference's He initialisation (fan_in, gain sqrt 2) with zero biases.
            init_weights(net, c.init_type, c.init_gain)
        if c.w_hpf > 0:
            self.fan = FAN(c.fan_width)  # weights from wing.ckpt (pretrained_weights); frozen, not saved

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    @property
    def style_dim(self) -> int:
        return self.config.style_dim

    @property
    def style_size(self) -> int:
        return self.config.size

    def ema_networks(self) -> list[str]:
        return ["G", "F", "E"]

    def pretrained_weights(self) -> dict[str, str]:
        return {"fan": "wing"} if self.config.w_hpf > 0 else {}

    def inference_weights(self) -> dict[str, str]:
        return self.pretrained_weights()

    def frozen_modules(self) -> list[str]:
        return ["fan"] if self.config.w_hpf > 0 else []

    def face_masks(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The FAN's two masks of images x (w_hpf > 0), else None (no high-pass skips)."""
        return self.fan.face_masks(x) if self.config.w_hpf > 0 else None

    def _source_masks(self, batch: dict[str, torch.Tensor], cache: dict[str, Any]
                      ) -> tuple[torch.Tensor, torch.Tensor] | None:
        if self.config.w_hpf <= 0:
            return None
        if "masks" not in cache:  # once per iteration, as the reference
            cache["masks"] = self.face_masks(batch["x"])
        return cache["masks"]

    def optimizers(self) -> list[OptimizerSpec]:
        c = self.config
        betas, wd = (c.beta1, c.beta2), c.weight_decay
        return [OptimizerSpec("G", [{"params": list(self.G.parameters())}], c.lr, betas, wd),
                OptimizerSpec("F", [{"params": list(self.F.parameters())}], c.f_lr, betas, wd),
                OptimizerSpec("E", [{"params": list(self.E.parameters())}], c.lr, betas, wd),
                OptimizerSpec("D", [{"params": list(self.D.parameters())}], c.lr, betas, wd)]

    # styles -----------------------------------------------------------------------------------------------
    def _latents(self, batch: dict[str, torch.Tensor], cache: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        if "z" not in cache:
            n, device = batch["x"].shape[0], batch["x"].device
            cache["z"] = torch.randn(n, self.config.latent_dim, device=device)
            cache["z2"] = torch.randn(n, self.config.latent_dim, device=device)
        return cache["z"], cache["z2"]

    def _target_style(self, batch: dict[str, torch.Tensor], cache: dict[str, Any], guide: str, second: bool
                      ) -> torch.Tensor:
        """Style of the target domain from the first (or second) latent code or reference."""
        y = batch["y_ref"]
        if guide == "latent":
            z, z2 = self._latents(batch, cache)
            return self.F(z2 if second else z, y)
        return self.E(batch["ref2" if second else "ref"], y)

    # losses -----------------------------------------------------------------------------------------------
    def _d_loss(self, batch: dict[str, torch.Tensor], cache: dict[str, Any], guide: str) -> LossDict:
        c = self.config
        x = batch["x"].detach().requires_grad_(True)
        out = self.D(x, batch["y"])
        loss_real = gan_loss(upcast(out), True, "nonsaturating")
        loss_reg = r1_penalty(out, x)
        with torch.no_grad():
            fake = self.G(batch["x"], self._target_style(batch, cache, guide, second=False),
                          self._source_masks(batch, cache))
        loss_fake = gan_loss(upcast(self.D(fake, batch["y_ref"])), False, "nonsaturating")
        return {f"D_real_{guide}": loss_real, f"D_fake_{guide}": loss_fake, f"R1_{guide}": c.lambda_reg * loss_reg}

    def lambda_ds_at(self, progress: Progress) -> float:
        """lambda_ds decayed linearly to 0 over ds_iter of total_iters, scaled to the run's length."""
        c = self.config
        fraction = c.ds_iter / c.total_iters if c.total_iters else 1.0
        return c.lambda_ds * max(0.0, 1.0 - progress.step / max(1.0, fraction * progress.total_steps))

    def _g_loss(self, batch: dict[str, torch.Tensor], cache: dict[str, Any], guide: str, lambda_ds: float) -> LossDict:
        c = self.config
        x, y, y_trg = batch["x"], batch["y"], batch["y_ref"]
        masks = self._source_masks(batch, cache)
        s_trg = self._target_style(batch, cache, guide, second=False)
        fake = self.G(x, s_trg, masks)
        loss_adv = gan_loss(upcast(self.D(fake, y_trg)), True, "nonsaturating")
        loss_sty = (self.E(fake, y_trg) - s_trg).abs().mean()
        with torch.no_grad():  # the reference detaches the second output: no gradient reaches it
            fake2 = self.G(x, self._target_style(batch, cache, guide, second=True), masks)
        loss_ds = upcast((fake - fake2).abs()).mean()
        s_org = self.E(x, y)
        loss_cyc = upcast((self.G(fake, s_org, self.face_masks(fake)) - x).abs()).mean()
        return {f"G_adv_{guide}": loss_adv, f"G_sty_{guide}": c.lambda_sty * loss_sty,
                f"G_ds_{guide}": -lambda_ds * loss_ds, f"G_cyc_{guide}": c.lambda_cyc * loss_cyc}

    def phases(self, progress: Progress) -> list[Phase]:
        lambda_ds = self.lambda_ds_at(progress)
        # G_ref steps G only: freezing E and F there skips weight gradients nobody uses (the reference
        # computes and then discards them), without changing what G receives through E.
        return [
            Phase("D_latent", ("D",), lambda b, c: self._d_loss(b, c, "latent")),
            Phase("D_ref", ("D",), lambda b, c: self._d_loss(b, c, "ref")),
            Phase("G_latent", ("G", "F", "E"), lambda b, c: self._g_loss(b, c, "latent", lambda_ds), frozen=("D",)),
            Phase("G_ref", ("G",), lambda b, c: self._g_loss(b, c, "ref", lambda_ds), frozen=("D", "E", "F")),
        ]

    # inference -------------------------------------------------------------------------------------------
    @property
    def size_multiple(self) -> int:
        return 2**self.G.n_down

    def style_from_reference(self, ref: torch.Tensor, domain: torch.Tensor) -> torch.Tensor:
        """Style codes of reference images (resized to the training size, as the encoder needs) in `domain`."""
        size = self.config.size
        if ref.shape[-2:] != (size, size):
            ref = F.interpolate(ref, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        return self.E(ref, domain)

    def style_from_latent(self, z: torch.Tensor, domain: torch.Tensor) -> torch.Tensor:
        return self.F(z, domain)

    @torch.no_grad()
    def translate(self, x: torch.Tensor, direction: str = "AtoB", *, style: torch.Tensor | None = None,
                  masks: tuple[torch.Tensor, torch.Tensor] | None = None, **kwargs: Any) -> torch.Tensor:
        """x (N, 3, H, W) in [-1, 1], H and W multiples of size_multiple; style (N or 1, style_dim).

        w_hpf > 0: the FAN's face masks of x drive the high-pass skips (given `masks` replace them) and images
        of another size are resized to the training size and back (MaskedGenerator).
        """
        if style is None:
            raise ValueError("StarGAN v2 translates with a style code: style_from_reference or style_from_latent")
        if style.shape[0] == 1 and x.shape[0] > 1:
            style = style.expand(x.shape[0], -1)
        if self.config.w_hpf > 0 and masks is None:
            return self.styled_generator()(x, style)
        return self.G(x, style, masks)

    def styled_generator(self) -> nn.Module:
        """(image, style) -> image: the generator, with the FAN's masks computed inside when w_hpf > 0."""
        return MaskedGenerator(self.G, self.fan) if self.config.w_hpf > 0 else self.G

    EXPORT_KINDS = ("generator", "style_encoder", "mapping")

    def export_module(self, direction: str = "AtoB", kind: str = "generator", **kwargs: Any) -> nn.Module:
        """A copy of one network in eval mode: generator (x, style; with the FAN and its masks inside when
        w_hpf > 0), style_encoder (ref, domain index), mapping (z, domain index)."""
        networks = {"generator": self.styled_generator(), "style_encoder": self.E, "mapping": self.F}
        if kind not in networks:
            raise ValueError(f"starganv2 export kind '{kind}': choose one of {', '.join(self.EXPORT_KINDS)}")
        return copy.deepcopy(networks[kind]).eval()

    def style_networks(self) -> dict[str, nn.Module]:
        return {kind: self.export_module(kind=kind) for kind in ("style_encoder", "mapping")}

    # the reference's *_nets_ema.ckpt ('fan' is the separate wing.ckpt)
    release_hint = "check --domains (one name per domain of the release, in order) and --set (size, w_hpf)"

    def release_parts(self) -> dict[str, nn.Module]:
        return {"generator": self.G, "mapping_network": self.F, "style_encoder": self.E}

    def sample_rows(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x, y_ref = batch["x"], batch["y_ref"]
        z = torch.randn(x.shape[0], self.config.latent_dim, device=x.device, generator=None)
        masks = self.face_masks(x)
        return {"source": x, "reference": batch["ref"],
                "reference-guided": self.G(x, self.style_from_reference(batch["ref"], y_ref), masks),
                "latent-guided": self.G(x, self.style_from_latent(z, y_ref), masks)}
