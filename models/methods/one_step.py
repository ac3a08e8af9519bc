"""What pix2pix-Turbo and CycleGAN-Turbo share: the base model's parts turned into one-step generators, caption
embeddings, the posterior draws, the frozen loss networks (LPIPS-VGG, CLIP, the vision-aided discriminators'
CLIP backbone) and saving only what is trained (the rest is the base model's, rebuilt from its reference)."""

from __future__ import annotations

import copy
from abc import abstractmethod
from typing import Any

import torch
from torch import nn

from i2i_cli.models.base import DiffusionBase, MethodConfig, OptimizerSpec, TranslationMethod
from i2i_cli.models.draws import draw
from i2i_cli.models.losses.lpips_loss import LpipsLoss
from i2i_cli.models.networks.turbo import (
    OneStepScheduler,
    OneStepTranslator,
    encode_captions,
    latent_noise_shape,
    merge_lora,
    trained_state_keys,
)

Tensor = torch.Tensor
CLIP_WEIGHTS = "clip_vit_b32"  # OpenAI CLIP ViT-B/32: the CLIP similarity loss and the discriminators' backbone


def constant_schedule(step: int, total: int) -> float:
    """The official lr schedule ("constant")."""
    return 1.0


class OneStepDiffusionMethod(TranslationMethod, DiffusionBase):
    """Base of the img2img-turbo methods. Subclasses build their generators in attach_base_model (with
    `_generator`) and list them in `generators()`; `discriminators` names the vision-aided discriminators."""

    takes_caption = True
    onnx_tracer = "torchscript"  # torch.export traces diffusers' UNet + VAE 20x slower, to the same graph

    def __init__(self, config: MethodConfig, domains: list[str] | None, lpips: bool, clip: bool,
                 discriminators: list[str], gan_loss: str) -> None:
        super().__init__(config, domains)
        self.discriminator_names = list(discriminators)
        self.lpips = LpipsLoss("vgg") if lpips else None
        self.clip = _clip_loss() if clip else None
        # the discriminators share one frozen CLIP backbone (the official builds one per discriminator: equal
        # outputs, as neither is trained)
        self.vagan_backbone = _clip_backbone() if discriminators else None
        for name in self.discriminator_names:
            setattr(self, name, _discriminator(gan_loss, self.vagan_backbone, name))
        self.text_encoder: nn.Module | None = None
        self.tokenizer: Any = None
        self._captions: dict[str, Tensor] = {}

    # --- the base model -----------------------------------------------------------------------------------
    def base_model_reference(self) -> str:
        return self.config.base_model

    @abstractmethod
    def generators(self) -> dict[str, nn.Module]:
        """{attribute: module} of the trained generator parts (what saved_state_dict keeps, with the Ds' heads)."""

    def _take_text_encoder(self, parts: Any) -> None:
        self.text_encoder = parts.text_encoder.requires_grad_(False).eval()
        self.tokenizer = parts.tokenizer

    @staticmethod
    def _generator(unet: nn.Module, vae: nn.Module, parts: Any) -> OneStepTranslator:
        unet.requires_grad_(False)
        vae.requires_grad_(False)
        return OneStepTranslator(unet, vae, OneStepScheduler.from_config(parts.scheduler_config))

    # --- captions -------------------------------------------------------------------------------------------
    def caption_embedding(self, caption: str) -> Tensor:
        """(1, L, D) text-encoder states of one caption, computed once."""
        device = next(self.text_encoder.parameters()).device
        if caption not in self._captions or self._captions[caption].device != device:
            self._captions[caption] = encode_captions(self.text_encoder, self.tokenizer, [caption])[1]
        return self._captions[caption]

    def batch_captions(self, batch: dict[str, Any], default: str) -> list[str]:
        """The batch's per-image captions (a dataset with prompts), else `default` for every image."""
        captions = batch.get("caption")
        return list(captions) if captions is not None else [default] * len(next(iter(batch.values())))

    def caption_tokens(self, captions: list[str]) -> Tensor:
        return encode_captions(self.text_encoder, self.tokenizer, captions)[0]

    def embeddings(self, captions: list[str]) -> Tensor:
        return torch.cat([self.caption_embedding(c) for c in captions])

    # --- forward passes and losses ----------------------------------------------------------------------------
    def run(self, generator: OneStepTranslator, x: Tensor, embedding: Tensor, cache: dict[str, Any],
            draw_name: str) -> Tensor:
        """A training forward: the posterior sample's noise is drawn (replayable) under `draw_name`."""
        shape = latent_noise_shape(generator.vae, x)
        noise = draw(cache, draw_name, lambda: torch.randn(shape, device=x.device, dtype=x.dtype))
        return generator(x, embedding.to(x.dtype), noise=noise)

    def discriminate(self, name: str, x: Tensor, target: str, cache: dict[str, Any], tag: str) -> Tensor:
        """Per-image losses of discriminator `name` on x for target G | real | fake; its augmentation's random
        draws go under `tag` in the iteration's draws."""
        return getattr(self, name)(x, target, cache=cache, tag=tag)

    def clip_similarity(self, images: Tensor, captions: list[str]) -> Tensor:
        """1 - mean(CLIP logits) / 100 over the batch's image x caption matrix (as the official)."""
        return self.clip(images, self.caption_tokens(captions))

    def trained_discriminator_parameters(self) -> list[nn.Parameter]:
        return [p for name in self.discriminator_names for p in getattr(self, name).parameters() if p.requires_grad]

    # --- inference ------------------------------------------------------------------------------------------
    @abstractmethod
    def unet_and_vae(self) -> tuple[nn.Module, nn.Module]:
        """The (a2b) generator's UNet and VAE: what sizes depend on."""

    @abstractmethod
    def official_generator_parameters(self) -> list[nn.Parameter]:
        """The generator optimizer's list as the official code builds it (duplicates included)."""

    def optimizers(self) -> list[OptimizerSpec]:
        """AdamW for the generator parts and, with a GAN, the discriminators' heads, each clipped before its steps;
        `official_param_lists` false lists each generator weight once."""
        c = self.config
        g_params = self.official_generator_parameters()
        if not c.official_param_lists:
            g_params = list(dict.fromkeys(g_params))
        groups = {"G": g_params}
        if c.lambda_gan > 0:
            groups["D"] = self.trained_discriminator_parameters()
        return [OptimizerSpec(name, [{"params": params}], c.lr, (c.beta1, c.beta2), c.weight_decay, "adamw",
                              schedule=constant_schedule, eps=c.adam_eps, max_grad_norm=c.max_grad_norm)
                for name, params in groups.items()]

    @property
    def size_multiple(self) -> int:
        """The VAE's downsampling (8 for sd-turbo); the UNet takes any latent size in PyTorch."""
        return 2 ** (len(self.unet_and_vae()[1].config.block_out_channels) - 1)

    @property
    def min_size(self) -> int:
        return self.size_multiple

    @property
    def export_size_multiple(self) -> int:
        """The UNet halves the latent at each of its levels but the last; at an odd size diffusers resizes the
        skips in Python, a branch a traced graph cannot follow: exported graphs take multiples of the whole
        factor (64 for sd-turbo)."""
        unet = self.unet_and_vae()[0]
        return self.size_multiple * 2 ** (len(unet.config.block_out_channels) - 1)

    @staticmethod
    def export_generator(generator: OneStepTranslator, embedding: Tensor, unit_range_input: bool) -> nn.Module:
        """A copy with LoRA merged, its caption fixed: (N, 3, H, W) in [-1, 1] -> (N, 3, H, W) in [-1, 1]."""
        return CaptionedGenerator(merge_lora(copy.deepcopy(generator)).eval(), embedding, unit_range_input)

    # --- saving ---------------------------------------------------------------------------------------------
    def frozen_modules(self) -> list[str]:
        names = ("lpips", "clip", "text_encoder", "vagan_backbone")
        return [name for name in names if getattr(self, name, None) is not None]

    def pretrained_weights(self) -> dict[str, str]:
        weights = {"vagan_backbone": CLIP_WEIGHTS} if self.vagan_backbone is not None else {}
        if self.lpips is not None:
            weights["lpips"] = self.lpips.weights_name
        if self.clip is not None:
            weights["clip"] = CLIP_WEIGHTS
        return weights

    def _saved_keys(self) -> list[str]:
        keys = [k for prefix, module in self.generators().items() for k in trained_state_keys(prefix + ".", module)]
        for name in self.discriminator_names:  # the heads (and their spectral-norm state), not the CLIP backbone
            keys += [f"{name}.{k}" for k in getattr(self, name).state_dict() if not k.startswith("backbone.")]
        return keys

    def saved_state_dict(self) -> dict[str, Tensor]:
        state = self.state_dict()
        return {k: state[k] for k in self._saved_keys()}

    def load_saved_state_dict(self, state: dict[str, Tensor]) -> None:
        expected = set(self._saved_keys())
        missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
        if missing or unexpected:
            raise KeyError(f"missing keys {missing[:5]}, unexpected keys {unexpected[:5]}")
        self.load_state_dict(state, strict=False)


class CaptionedGenerator(nn.Module):
    """A one-step generator with a fixed caption: a pure image -> image module (ONNX export)."""

    def __init__(self, generator: OneStepTranslator, embedding: Tensor, unit_range_input: bool) -> None:
        super().__init__()
        self.generator = generator
        self.register_buffer("embedding", embedding.detach().clone())
        self.unit_range_input = unit_range_input

    def forward(self, x: Tensor) -> Tensor:
        condition = x * 0.5 + 0.5 if self.unit_range_input else x
        return self.generator(condition, self.embedding.expand(x.shape[0], -1, -1).to(x.dtype))


def _clip_loss() -> nn.Module:
    from i2i_cli.models.losses.clip_similarity import ClipSimilarityLoss

    return ClipSimilarityLoss()


def _clip_backbone() -> nn.Module:
    from i2i_cli.models.networks.vision_aided import ClipVisionBackbone

    return ClipVisionBackbone()


def _discriminator(gan_loss: str, backbone: nn.Module, name: str) -> nn.Module:
    from i2i_cli.models.networks.vision_aided import VisionAidedDiscriminator

    return VisionAidedDiscriminator(gan_loss, backbone=backbone, name=name)
