"""OpenAI CLIP (Radford et al. 2021), the ViT variant, as openai/CLIP clip/model.py builds it with
`clip.load(name, jit=False)`: same module tree and state-dict keys, so the released files load strictly.

What img2img-turbo uses it for: the CLIP-similarity loss of pix2pix-turbo (models/losses/clip_similarity.py)
and the frozen visual tower of the vision-aided discriminator (models/networks/vision_aided.py).

Numerics follow the official code in float32 / float64: QuickGELU, LayerNorm eps 1e-5, torch's
`nn.MultiheadAttention` (sequence-first, as the official), the text tower's causal mask (-inf above the
diagonal), the text feature taken at the highest token id (the end-of-text token), logits scaled by
exp(logit_scale). The official LayerNorm subclass upcasts float16 to float32; not kept: the released
float16 weights are loaded into float32 (what `clip.load` does on the CPU and what the training scripts get
after `.to(torch.float32)`), and autocast computes layer norms in float32 anyway.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

Tensor = torch.Tensor

# The mean and std CLIP's preprocessing normalises [0, 1] RGB images with (clip.py's _transform).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
# Integer entries of the released TorchScript files' state dicts (`build_model` deletes them before loading),
# and the causal mask a TorchScript archive of this module would carry (a buffer kept out of state dicts here).
_NON_WEIGHT_KEYS = ("input_resolution", "context_length", "vocab_size", "transformer.attn_mask")


@dataclass(frozen=True)
class ClipConfig:
    """Defaults: ViT-B/32 (the file `clip.load("ViT-B/32")` downloads). Heads are width // 64 as in the
    official `build_model`; tiny test configurations set them directly."""

    embed_dim: int = 512
    image_resolution: int = 224
    vision_layers: int = 12
    vision_width: int = 768
    vision_patch_size: int = 32
    vision_heads: int = 12
    context_length: int = 77
    vocab_size: int = 49408
    transformer_width: int = 512
    transformer_heads: int = 8
    transformer_layers: int = 12

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> ClipConfig:
        """The configuration of a ViT CLIP state dict, read as the official `build_model` reads it."""
        if "visual.proj" not in state:
            raise ValueError("not a ViT CLIP state dict (no 'visual.proj'; the ResNet CLIPs are not supported)")
        vision_width = state["visual.conv1.weight"].shape[0]
        patch = state["visual.conv1.weight"].shape[-1]
        grid = round((state["visual.positional_embedding"].shape[0] - 1) ** 0.5)
        text_width = state["ln_final.weight"].shape[0]
        return cls(
            embed_dim=state["text_projection"].shape[1],
            image_resolution=patch * grid,
            vision_layers=len([k for k in state if k.startswith("visual.") and k.endswith(".attn.in_proj_weight")]),
            vision_width=vision_width,
            vision_patch_size=patch,
            vision_heads=vision_width // 64,
            context_length=state["positional_embedding"].shape[0],
            vocab_size=state["token_embedding.weight"].shape[0],
            transformer_width=text_width,
            transformer_heads=text_width // 64,
            transformer_layers=len({k.split(".")[2] for k in state if k.startswith("transformer.resblocks")}),
        )


def weights_only(state: dict[str, Any]) -> dict[str, Tensor]:
    """The state dict without the released files' integer entries (input_resolution, context_length,
    vocab_size), as `build_model` drops them, nor a causal mask."""
    return {k: v for k, v in state.items() if k not in _NON_WEIGHT_KEYS}


class QuickGELU(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(1.702 * x)


class ResidualAttentionBlock(nn.Module):
    """Pre-norm block: x + attn(ln_1(x)), then x + mlp(ln_2(x)); x is (tokens, N, width)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads)
        self.ln_1 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(OrderedDict([("c_fc", nn.Linear(width, width * 4)), ("gelu", QuickGELU()),
                                              ("c_proj", nn.Linear(width * 4, width))]))
        self.ln_2 = nn.LayerNorm(width)

    def forward(self, x: Tensor, attn_mask: Tensor | None = None) -> Tensor:
        mask = attn_mask.to(dtype=x.dtype, device=x.device) if attn_mask is not None else None
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=mask)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    """`resblocks` in sequence; the text tower passes its causal mask (a non-persistent buffer, as the
    official keeps it out of the state dict)."""

    def __init__(self, width: int, layers: int, heads: int, context_length: int | None = None) -> None:
        super().__init__()
        self.width = width
        self.resblocks = nn.ModuleList(ResidualAttentionBlock(width, heads) for _ in range(layers))
        mask = None
        if context_length is not None:  # additive mask: -inf above the diagonal, each token sees its past
            mask = torch.full((context_length, context_length), float("-inf")).triu_(1)
        self.register_buffer("attn_mask", mask, persistent=False)

    def forward(self, x: Tensor, start: int = 0, end: int | None = None) -> Tensor:
        """Blocks [start:end] (Python slice semantics: the vision-aided features tap the tower in pieces)."""
        for block in self.resblocks[start:end]:
            x = block(x, self.attn_mask)
        return x


class VisionTransformer(nn.Module):
    """CLIP's image tower: (N, 3, R, R) normalised images -> (N, output_dim) embeddings."""

    def __init__(self, input_resolution: int, patch_size: int, width: int, layers: int, heads: int,
                 output_dim: int) -> None:
        super().__init__()
        self.input_resolution = input_resolution
        self.patch_size = patch_size
        self.width = width
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size, bias=False)
        self.class_embedding = nn.Parameter(torch.zeros(width))
        self.positional_embedding = nn.Parameter(torch.zeros((input_resolution // patch_size) ** 2 + 1, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = Transformer(width, layers, heads)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(torch.zeros(width, output_dim))

    @property
    def grid(self) -> int:
        return self.input_resolution // self.patch_size

    def embed_tokens(self, x: Tensor) -> Tensor:
        """Patch tokens after ln_pre, class token first: (tokens, N, width), the transformer's layout."""
        x = self.conv1(x.to(self.conv1.weight.dtype))
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
        cls = self.class_embedding.to(x.dtype) + torch.zeros(x.shape[0], 1, x.shape[-1], dtype=x.dtype, device=x.device)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)
        return self.ln_pre(x).permute(1, 0, 2)

    def project(self, tokens: Tensor) -> Tensor:
        """The embedding from the last block's tokens (tokens, N, width): ln_post of the class token @ proj."""
        return self.ln_post(tokens[0]) @ self.proj

    def forward(self, x: Tensor) -> Tensor:
        return self.project(self.transformer(self.embed_tokens(x)))


class Clip(nn.Module):
    """CLIP with the official state-dict keys. `Clip()` is ViT-B/32; `Clip.from_state_dict(state)` sizes itself
    from a released file's weights."""

    def __init__(self, config: ClipConfig | None = None) -> None:
        super().__init__()
        c = config or ClipConfig()
        self.config = c
        self.visual = VisionTransformer(c.image_resolution, c.vision_patch_size, c.vision_width, c.vision_layers,
                                        c.vision_heads, c.embed_dim)
        self.transformer = Transformer(c.transformer_width, c.transformer_layers, c.transformer_heads,
                                       context_length=c.context_length)
        self.token_embedding = nn.Embedding(c.vocab_size, c.transformer_width)
        self.positional_embedding = nn.Parameter(torch.zeros(c.context_length, c.transformer_width))
        self.ln_final = nn.LayerNorm(c.transformer_width)
        self.text_projection = nn.Parameter(torch.zeros(c.transformer_width, c.embed_dim))
        self.logit_scale = nn.Parameter(torch.tensor(4.605170185988092))  # ln 100, the released value

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> Clip:
        model = cls(ClipConfig.from_state_dict(state))
        model.load_pretrained_state_dict(state)
        return model

    def load_pretrained_state_dict(self, state: dict[str, Any]) -> None:
        """The released file's state dict (float16 in the file; copied into this model's dtype), strict."""
        self.load_state_dict(weights_only(state), strict=True)

    def encode_image(self, image: Tensor) -> Tensor:
        """(N, 3, R, R) CLIP-normalised images -> (N, embed_dim), not normalised."""
        return self.visual(image)

    def encode_text(self, tokens: Tensor) -> Tensor:
        """(N, context_length) token ids (start, text, end-of-text, zero padding: clip.tokenize's layout) ->
        (N, embed_dim), taken at each row's highest id (the end-of-text token)."""
        x = self.token_embedding(tokens) + self.positional_embedding.to(self.token_embedding.weight.dtype)
        x = self.transformer(x.permute(1, 0, 2)).permute(1, 0, 2)
        x = self.ln_final(x)
        return x[torch.arange(x.shape[0], device=x.device), tokens.argmax(dim=-1)] @ self.text_projection

    def forward(self, image: Tensor, tokens: Tensor) -> tuple[Tensor, Tensor]:
        """(logits_per_image (N_images, N_texts), logits_per_text (N_texts, N_images)): exp(logit_scale) times
        the cosine similarities."""
        image_features = self.encode_image(image)
        text_features = self.encode_text(tokens)
        image_features = image_features / image_features.norm(dim=1, keepdim=True)
        text_features = text_features / text_features.norm(dim=1, keepdim=True)
        logits_per_image = self.logit_scale.exp() * image_features @ text_features.t()
        return logits_per_image, logits_per_image.t()
