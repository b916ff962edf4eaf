"""The visual towers of CLIP (OpenAI's layout, also used by ruCLIP) and of Unicom, in plain torch.

Parameter names and shapes are those of the published checkpoints, so they load with ``strict=True``:
CLIP: ``conv1.weight``, ``class_embedding``, ``positional_embedding``, ``ln_pre``, ``transformer.resblocks.N.{attn.
in_proj_weight, attn.in_proj_bias, attn.out_proj, ln_1, mlp.c_fc, mlp.c_proj, ln_2}``, ``ln_post``, ``proj``.
Unicom: ``patch_embed.proj``, ``pos_embed``, ``blocks.N.{norm1, attn.qkv (no bias), attn.proj, norm2, mlp.fc1,
mlp.fc2}``, ``norm``, ``feature.{0..3}`` (Linear, BatchNorm1d, Linear, BatchNorm1d over the flattened tokens).

Example:
    >>> build_clip_visual("vitb32_224").output_dim
    512
"""

from __future__ import annotations

from collections import OrderedDict

import attrs
import torch
import torch.nn.functional as F
from torch import Tensor, nn


@attrs.frozen
class TowerArch:
    """The hyper-parameters of one published tower."""

    image_size: int
    patch_size: int
    width: int
    layers: int
    heads: int
    output_dim: int


CLIP_ARCHS: dict[str, TowerArch] = {
    "vitb16_224": TowerArch(224, 16, 768, 12, 12, 512),
    "vitb32_224": TowerArch(224, 32, 768, 12, 12, 512),
    "vitl14_224": TowerArch(224, 14, 1024, 24, 16, 768),
    "vitl14_336": TowerArch(336, 14, 1024, 24, 16, 768),
}

UNICOM_ARCHS: dict[str, TowerArch] = {
    "vitb32_unicom": TowerArch(224, 32, 768, 12, 12, 512),
    "vitb16_unicom": TowerArch(224, 16, 768, 12, 12, 768),
    "vitl14_unicom": TowerArch(224, 14, 1024, 24, 16, 768),
    "vitl14_336px_unicom": TowerArch(336, 14, 1024, 24, 16, 768),
}


# ================================================================================================ CLIP
class QuickGELU(nn.Module):
    """CLIP's activation: ``x * sigmoid(1.702 x)``."""

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(1.702 * x)


class PackedAttention(nn.Module):
    """Multi-head self-attention with the parameter layout of ``nn.MultiheadAttention`` (``in_proj_weight``,
    ``in_proj_bias``, ``out_proj``), computed with ``scaled_dot_product_attention`` on ``(B, L, D)`` tokens."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = nn.Linear(width, width)
        nn.init.xavier_uniform_(self.in_proj_weight)

    def forward(self, x: Tensor) -> Tensor:
        batch, length, width = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)
        qkv = qkv.reshape(batch, length, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.out_proj(out.transpose(1, 2).reshape(batch, length, width))


class ClipBlock(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.attn = PackedAttention(width, heads)
        self.ln_1 = nn.LayerNorm(width)
        hidden = width * 4
        self.mlp = nn.Sequential(
            OrderedDict([("c_fc", nn.Linear(width, hidden)), ("gelu", QuickGELU()), ("c_proj", nn.Linear(hidden, width))])
        )
        self.ln_2 = nn.LayerNorm(width)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class ClipTransformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int) -> None:
        super().__init__()
        self.resblocks = nn.Sequential(*[ClipBlock(width, heads) for _ in range(layers)])

    def forward(self, x: Tensor) -> Tensor:
        return self.resblocks(x)


class ClipVisual(nn.Module):
    """CLIP's image tower: patches + class token + learned positions -> transformer -> ``ln_post(cls) @ proj``.

    The position table has a fixed size: images must be ``image_size x image_size``.
    """

    def __init__(self, arch: TowerArch) -> None:
        super().__init__()
        self.image_size = arch.image_size
        self.output_dim = arch.output_dim
        width = arch.width
        scale = width**-0.5
        self.conv1 = nn.Conv2d(3, width, kernel_size=arch.patch_size, stride=arch.patch_size, bias=False)
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        grid = arch.image_size // arch.patch_size
        self.positional_embedding = nn.Parameter(scale * torch.randn(grid * grid + 1, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = ClipTransformer(width, arch.layers, arch.heads)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(scale * torch.randn(width, arch.output_dim))

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv1(x).flatten(2).transpose(1, 2)
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)
        x = self.transformer(self.ln_pre(x))
        return self.ln_post(x[:, 0, :]) @ self.proj


def build_clip_visual(arch: str) -> ClipVisual:
    """A randomly initialised CLIP visual tower (``vitb16_224``, ``vitb32_224``, ``vitl14_224``, ``vitl14_336``)."""
    return ClipVisual(CLIP_ARCHS[arch])


# ================================================================================================ Unicom
class UnicomAttention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        batch, length, dim = x.shape
        qkv = self.qkv(x).reshape(batch, length, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.proj(out.transpose(1, 2).reshape(batch, length, dim))


class UnicomMlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.ReLU6()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class UnicomBlock(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.attn = UnicomAttention(dim, heads)
        self.mlp = UnicomMlp(dim, dim * 4)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class UnicomPatchEmbed(nn.Module):
    def __init__(self, image_size: int, patch_size: int, dim: int) -> None:
        super().__init__()
        self.num_patches = (image_size // patch_size) ** 2
        self.proj = nn.Conv2d(3, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class UnicomVisual(nn.Module):
    """Unicom's ViT: patch tokens (no class token) -> blocks -> LayerNorm -> all tokens flattened -> Linear + BN ->
    Linear + BN (the embedding)."""

    def __init__(self, arch: TowerArch) -> None:
        super().__init__()
        dim = arch.width
        self.image_size = arch.image_size
        self.output_dim = arch.output_dim
        self.patch_embed = UnicomPatchEmbed(arch.image_size, arch.patch_size, dim)
        patches = self.patch_embed.num_patches
        self.pos_embed = nn.Parameter(torch.zeros(1, patches, dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.blocks = nn.ModuleList([UnicomBlock(dim, arch.heads) for _ in range(arch.layers)])
        self.norm = nn.LayerNorm(dim)
        self.feature = nn.Sequential(
            nn.Linear(dim * patches, dim, bias=False),
            nn.BatchNorm1d(dim, eps=2e-5),
            nn.Linear(dim, arch.output_dim, bias=False),
            nn.BatchNorm1d(arch.output_dim, eps=2e-5),
        )

    def forward(self, x: Tensor) -> Tensor:
        x = self.patch_embed(x) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        x = self.norm(x.float())
        return self.feature(x.reshape(x.shape[0], -1))


def build_unicom_visual(arch: str) -> UnicomVisual:
    """A randomly initialised Unicom tower (``vitb32_unicom``, ``vitb16_unicom``, ``vitl14_unicom``,
    ``vitl14_336px_unicom``)."""
    return UnicomVisual(UNICOM_ARCHS[arch])


__all__ = [
    "CLIP_ARCHS",
    "UNICOM_ARCHS",
    "ClipVisual",
    "TowerArch",
    "UnicomVisual",
    "build_clip_visual",
    "build_unicom_visual",
]
