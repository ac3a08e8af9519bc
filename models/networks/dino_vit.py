"""DINO's Vision Transformer (Caron et al. 2021, facebookresearch/dino vision_transformer.py), key-compatible
with the released checkpoints (dino_vitbase8_pretrain.pth loads with strict=True).

Only what the DINO-Struct distance needs is exposed besides the plain forward: the keys of one block's
self-attention (`keys(x, layer)`), computed the way the official `qkv` Linear lays them out.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

Tensor = torch.Tensor


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        batch, tokens, dim = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, dim // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(batch, tokens, dim))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, patch_size: int, embed_dim: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(3, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class DinoViT(nn.Module):
    """DINO's ViT without a classifier head. ViT-B/8: `DinoViT(patch_size=8)` (embed 768, depth 12, 12 heads)."""

    def __init__(self, patch_size: int = 8, embed_dim: int = 768, depth: int = 12, num_heads: int = 12,
                 mlp_ratio: float = 4.0, img_size: int = 224) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.patch_embed = PatchEmbed(patch_size, embed_dim)
        grid = img_size // patch_size
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid + 1, embed_dim))
        self.blocks = nn.ModuleList(Block(embed_dim, num_heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)

    def load_pretrained_state_dict(self, state_dict: dict[str, Tensor]) -> None:
        self.load_state_dict(state_dict, strict=True)

    def _position_encoding(self, tokens: int, height: int, width: int) -> Tensor:
        """The learnt 224 px position grid, resized bicubically to this input's patch grid as DINO does: the
        scale factor is (patches + 0.1) / grid (its fix for a floor off by one) and interpolate uses that
        factor itself, not the ratio of sizes."""
        grid_tokens = self.pos_embed.shape[1] - 1
        if tokens - 1 == grid_tokens and height == width:
            return self.pos_embed
        dim = self.pos_embed.shape[-1]
        side = int(math.sqrt(grid_tokens))
        rows = height // self.patch_embed.patch_size + 0.1
        cols = width // self.patch_embed.patch_size + 0.1
        grid = self.pos_embed[:, 1:].reshape(1, side, side, dim).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, scale_factor=(rows / math.sqrt(grid_tokens), cols / math.sqrt(grid_tokens)),
                             mode="bicubic")
        if grid.shape[-2:] != (int(rows), int(cols)):
            raise ValueError(f"position grid {tuple(grid.shape[-2:])} != patches {(int(rows), int(cols))}")
        return torch.cat((self.pos_embed[:, :1], grid.permute(0, 2, 3, 1).reshape(1, -1, dim)), dim=1)

    def tokens(self, x: Tensor) -> Tensor:
        """(N, 3, H, W) normalised images -> (N, 1 + patches, dim): CLS token first, positions added."""
        patches = self.patch_embed(x)
        tokens = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), patches), dim=1)
        return tokens + self._position_encoding(tokens.shape[1], x.shape[-2], x.shape[-1])

    def keys(self, x: Tensor, layer: int) -> Tensor:
        """The self-attention keys of block `layer` (0-based): (N, heads, tokens, head_dim)."""
        hidden = self.tokens(x)
        for block in self.blocks[:layer]:
            hidden = block(hidden)
        block = self.blocks[layer]
        batch, tokens, dim = hidden.shape
        qkv = block.attn.qkv(block.norm1(hidden)).reshape(batch, tokens, 3, self.num_heads, dim // self.num_heads)
        return qkv[:, :, 1].transpose(1, 2)

    def forward(self, x: Tensor) -> Tensor:
        """The CLS embedding after the final norm (DINO's features)."""
        hidden = self.tokens(x)
        for block in self.blocks:
            hidden = block(hidden)
        return self.norm(hidden)[:, 0]


def key_self_similarity(keys: Tensor, eps: float = 1e-8) -> Tensor:
    """(N, heads, T, d) keys -> (N, T, T) cosine similarities between tokens, each token's heads concatenated
    (Splice's / img2img-turbo's structure descriptor; the norm product is clamped at eps, not each norm)."""
    batch, heads, tokens, head_dim = keys.shape
    flat = keys.transpose(1, 2).reshape(batch, tokens, heads * head_dim)
    norms = flat.norm(dim=2, keepdim=True)
    return (flat @ flat.transpose(1, 2)) / torch.clamp(norms @ norms.transpose(1, 2), min=eps)
