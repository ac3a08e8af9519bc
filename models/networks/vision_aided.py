"""The vision-aided discriminator with a CLIP backbone (Kumari et al. 2022, "Ensembling Off-the-shelf Models for
GAN Training"; nupurkmr9/vision-aided-gan, package vision_aided_loss), as img2img-turbo builds it:
`vision_aided_loss.Discriminator(cv_type='clip', loss_type=...)`, output type 'conv_multi_level'.

- `ClipVisionBackbone`: the frozen CLIP ViT-B/32 image tower (models/networks/clip.py). Images in [-1, 1]
  -> x * 0.5 + 0.5 -> `F.interpolate(size=224, mode='area')` -> CLIP's mean / std -> three features: the
  patch tokens after block 4 and after block 8 as (N, width, 7, 7) maps (class token dropped), and the
  projected embedding (ln_post of the class token after the last block @ proj), (N, embed_dim). Always in
  eval mode and without gradients of its own (the official `train()` keeps it in eval); gradients flow
  through it to the images (the generator's loss).
- `MultiLevelHeads`: the trained part (official `MultiLevelDViT(level=3, in_ch1=768, in_ch2=512, out_ch=256)`,
  same state-dict keys as the official discriminator's `decoder.0`): for each map, spectral-norm conv 3x3
  (width -> 256) -> LeakyReLU(0.2) -> zero-padded 4x4 binomial blur (stride 1) -> spectral-norm conv 1x1
  stride 2 (256 -> 1), 7x7 -> 3x3 logits; for the embedding, spectral-norm Linear(512, 256) -> LeakyReLU(0.2)
  -> spectral-norm Linear(256, 1). Spectral norm is torch's `nn.utils.spectral_norm` (one power iteration
  per forward in train mode: the buffers weight_u / weight_v change on every call, G's included).
- `VisionAidedDiscriminator`: DiffAugment (policy color, translation, cutout: models/networks/diff_augment.py)
  -> backbone -> heads -> the per-image loss of models/losses/vision_aided.py.

The official training scripts set `module.fused_attn = False` on modules whose name contains "attn": that is
timm's switch for its fused attention kernel. Here it changes nothing: the discriminator's named modules are its
heads only (vision_aided_loss keeps the CLIP model in a plain Python list, not a registered submodule), none is
named "attn", and CLIP's `nn.MultiheadAttention` has no such attribute (tests/golden/record_vision_aided.py
records the names it matches: none).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

from i2i_cli.models.losses.vision_aided import REAL_LABELS, LossType, Target, multilevel_sigmoid_loss
from i2i_cli.models.networks.antialias import blur_kernel
from i2i_cli.models.networks.clip import CLIP_MEAN, CLIP_STD, ClipConfig, VisionTransformer, weights_only
from i2i_cli.models.networks.diff_augment import POLICY, diff_augment

Tensor = torch.Tensor
TAPS = (4, 8)  # the official feat_points [0, 4, 8, len(resblocks)]: features after block 4, 8 and the last


class ClipVisionBackbone(nn.Module):
    """CLIP's frozen image tower, keys `visual.*` as in the released file (whose text tower it ignores)."""

    def __init__(self, config: ClipConfig | None = None, size: int = 224) -> None:
        super().__init__()
        c = config or ClipConfig()
        self.size = size
        self.visual = VisionTransformer(c.image_resolution, c.vision_patch_size, c.vision_width, c.vision_layers,
                                        c.vision_heads, c.embed_dim)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> ClipVisionBackbone:  # noqa: ARG002 - always eval, as the official
        return super().train(False)

    def load_pretrained_state_dict(self, state: dict[str, Any]) -> None:
        """A whole CLIP state dict (the released ViT-B-32.pt) or its `visual.*` part; strict on those keys."""
        visual = {k: v for k, v in weights_only(state).items() if k.startswith("visual.")}
        self.load_state_dict(visual, strict=True)

    def normalise(self, x: Tensor) -> Tensor:
        """[-1, 1] images of any size -> 224 px (area), CLIP-normalised, in the tower's dtype."""
        x = F.interpolate(x * 0.5 + 0.5, size=(self.size, self.size), mode="area")
        # the constants in x's dtype (a float32 buffer cast to float64 would differ from the official in float64)
        mean = torch.tensor(CLIP_MEAN, dtype=x.dtype, device=x.device).view(3, 1, 1)
        x = (x - mean) / torch.tensor(CLIP_STD, dtype=x.dtype, device=x.device).view(3, 1, 1)
        return x.to(self.visual.conv1.weight.dtype)

    def forward(self, x: Tensor) -> list[Tensor]:
        """[-1, 1] images (N, 3, H, W) -> [(N, width, g, g) after block 4, the same after block 8,
        (N, embed_dim)], g = 224 / patch (7 for ViT-B/32)."""
        tower = self.visual
        tokens = tower.embed_tokens(self.normalise(x))
        features = []
        for start, end in zip((0, *TAPS), (*TAPS, len(tower.transformer.resblocks))):
            tokens = tower.transformer(tokens, start, end)
            features.append(tokens.permute(1, 0, 2))
        maps = [f[:, 1:, :].permute(0, 2, 1).reshape(-1, tower.width, tower.grid, tower.grid) for f in features[:2]]
        return [*maps, tower.project(tokens)]


class ZeroPadBlur(nn.Module):
    """vision_aided_loss's BlurPool(channels, pad_type='zero', filt_size=4, stride=1): zero padding of 1 + pad_off
    on each side, depthwise [1, 3, 3, 1] x [1, 3, 3, 1] / 64 filter, so H -> H - 1 + 2 * pad_off."""

    def __init__(self, channels: int, pad_off: int = 0) -> None:
        super().__init__()
        self.pad = 1 + pad_off
        self.register_buffer("filt", blur_kernel(4)[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(F.pad(x, [self.pad] * 4), self.filt.to(x.dtype), groups=x.shape[1])


def _map_head(width: int, channels: int, activation: nn.Module) -> nn.Sequential:
    # index 0 is the official `nn.Identity()` (its BlurPool only when down > 1): keeps the key numbering
    return nn.Sequential(nn.Identity(), spectral_norm(nn.Conv2d(width, channels, kernel_size=3, stride=1, padding=1)),
                         activation, ZeroPadBlur(channels),
                         spectral_norm(nn.Conv2d(channels, 1, kernel_size=1, stride=2)))


class MultiLevelHeads(nn.Module):
    """The trained heads: [(N, width, g, g), (N, width, g, g), (N, embed_dim)] -> logits [(N, g', g'),
    (N, g', g'), (N, 1)], g' = ceil((g - 1) / 2) (3 for g = 7)."""

    def __init__(self, width: int = 768, embed_dim: int = 512, channels: int = 256) -> None:
        super().__init__()
        activation = nn.LeakyReLU(0.2)  # one module shared by all heads, as the official (stateless)
        self.decoder = nn.ModuleList([_map_head(width, channels, activation), _map_head(width, channels, activation),
                                      nn.Sequential(spectral_norm(nn.Linear(embed_dim, channels)), activation)])
        self.out = spectral_norm(nn.Linear(channels, 1))

    def forward(self, features: list[Tensor]) -> list[Tensor]:
        maps = [head(x).squeeze(1) for head, x in zip(self.decoder[:-1], features[:-1])]
        return [*maps, self.out(self.decoder[-1](features[-1]))]


class VisionAidedDiscriminator(nn.Module):
    """`forward(x, target, cache)` -> the per-image loss (N,); its `.mean()` is the official
    `net_disc(x, for_G=True).mean()` (target "G"), `for_real=True` ("real") or `for_real=False` ("fake").

    `backbone` may be shared between discriminators (it is frozen); `name` prefixes this discriminator's draws:
    `{name}.{tag}.{draw}` with tag the target unless given and draw one of models/networks/diff_augment.py's
    (brightness, saturation, contrast, translation_x, translation_y, cutout_x, cutout_y).
    """

    def __init__(self, loss_type: LossType = "multilevel_sigmoid_s", backbone: ClipVisionBackbone | None = None,
                 name: str = "vision_aided", diffaug: bool = True, channels: int = 256) -> None:
        super().__init__()
        if loss_type not in REAL_LABELS:
            raise ValueError(f"loss_type must be one of {sorted(REAL_LABELS)}, not {loss_type!r}")
        self.loss_type = loss_type
        self.name = name
        self.policy = POLICY if diffaug else ()
        self.backbone = backbone if backbone is not None else ClipVisionBackbone()
        tower = self.backbone.visual
        self.heads = MultiLevelHeads(tower.width, tower.proj.shape[1], channels)

    def predictions(self, x: Tensor, cache: dict[str, Any], tag: str) -> list[Tensor]:
        """The heads' logits of the augmented images (see MultiLevelHeads)."""
        augmented = diff_augment(x, cache, f"{self.name}.{tag}", self.policy)
        return self.heads(self.backbone(augmented))

    def forward(self, x: Tensor, target: Target, cache: dict[str, Any] | None = None,
                tag: str | None = None) -> Tensor:
        predictions = self.predictions(x, {} if cache is None else cache, tag or target)
        return multilevel_sigmoid_loss(predictions, target, REAL_LABELS[self.loss_type])
