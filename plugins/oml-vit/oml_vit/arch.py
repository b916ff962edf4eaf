"""Vision Transformers of DINO and DINOv2 in plain torch, with the parameter names and shapes of the official
checkpoints (``facebookresearch/dino`` and ``facebookresearch/dinov2`` hub models), so that those load with
``strict=True`` unchanged.

Both families share one module; the differences are switches of ``ViTArch``:

- DINO v1 (``vits16``, ``vits8``, ``vitb16``, ``vitb8``): position embeddings for 224 px, no layer scale.
- DINOv2 (``vits14``, ``vitb14``, ``vitl14``): position embeddings for 518 px (37 x 37 patches + CLS), layer scale
  (``blocks.N.ls1.gamma``/``ls2.gamma``), a ``mask_token``; ``*_reg`` variants add 4 ``register_tokens`` and
  interpolate position embeddings with antialiasing and no offset, as the official hub models do.

The forward pass returns the normalised CLS token, as the hub models' ``forward`` does.
"""

from __future__ import annotations

import math
from typing import Literal

import attrs
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from oml_core.errors import OMLError


@attrs.frozen(kw_only=True)
class ViTArch:
    """Hyper-parameters of one architecture (what the published checkpoint was trained with)."""

    family: Literal["dino", "dinov2"]
    patch_size: int
    embed_dim: int
    depth: int
    num_heads: int
    img_size: int
    mlp_ratio: float = 4.0
    num_register_tokens: int = 0
    interpolate_offset: float = 0.1
    interpolate_antialias: bool = False

    @property
    def layer_scale(self) -> bool:
        return self.family == "dinov2"

    @property
    def mask_token(self) -> bool:
        return self.family == "dinov2"


_DINO = {"family": "dino", "img_size": 224}
_DINOV2 = {"family": "dinov2", "img_size": 518, "patch_size": 14}
_REG = {"num_register_tokens": 4, "interpolate_offset": 0.0, "interpolate_antialias": True}
_SMALL = {"embed_dim": 384, "depth": 12, "num_heads": 6}
_BASE = {"embed_dim": 768, "depth": 12, "num_heads": 12}
_LARGE = {"embed_dim": 1024, "depth": 24, "num_heads": 16}

#: Every architecture by the name ``ViTExtractor(arch=...)`` takes (OML's names).
ARCHS: dict[str, ViTArch] = {
    "vits16": ViTArch(**_DINO, **_SMALL, patch_size=16),  # type: ignore[arg-type]
    "vits8": ViTArch(**_DINO, **_SMALL, patch_size=8),  # type: ignore[arg-type]
    "vitb16": ViTArch(**_DINO, **_BASE, patch_size=16),  # type: ignore[arg-type]
    "vitb8": ViTArch(**_DINO, **_BASE, patch_size=8),  # type: ignore[arg-type]
    "vits14": ViTArch(**_DINOV2, **_SMALL),  # type: ignore[arg-type]
    "vitb14": ViTArch(**_DINOV2, **_BASE),  # type: ignore[arg-type]
    "vitl14": ViTArch(**_DINOV2, **_LARGE),  # type: ignore[arg-type]
    "vits14_reg": ViTArch(**_DINOV2, **_SMALL, **_REG),  # type: ignore[arg-type]
    "vitb14_reg": ViTArch(**_DINOV2, **_BASE, **_REG),  # type: ignore[arg-type]
    "vitl14_reg": ViTArch(**_DINOV2, **_LARGE, **_REG),  # type: ignore[arg-type]
}


class PatchEmbed(nn.Module):
    """Non-overlapping ``patch_size`` patches projected to ``embed_dim`` (keys ``proj.weight``, ``proj.bias``)."""

    def __init__(self, patch_size: int, embed_dim: int, in_chans: int = 3) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention with a fused ``qkv`` projection, computed by ``scaled_dot_product_attention``
    (the same maths as the reference ``softmax(q k^T / sqrt(d)) v``, with fused kernels where available)."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise OMLError(f"embed_dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        batch, tokens, dim = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, dim // self.num_heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, dim))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class LayerScale(nn.Module):
    """Per-channel scaling of a residual branch (DINOv2); key ``gamma``."""

    def __init__(self, dim: int, init_value: float = 1.0) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), init_value))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gamma


class Block(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, layer_scale: bool) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.ls1: nn.Module = LayerScale(dim) if layer_scale else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.ls2: nn.Module = LayerScale(dim) if layer_scale else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class VisionTransformer(nn.Module):
    """The backbone; ``forward(images (B, 3, H, W)) -> CLS embeddings (B, embed_dim)`` at any image size (position
    embeddings are interpolated when the patch grid differs from the one they were trained for).

    Example:
        >>> vit = VisionTransformer(ViTArch(family="dinov2", patch_size=14, embed_dim=32, depth=1, num_heads=2, img_size=28))
        >>> vit(torch.rand(2, 3, 42, 28)).shape
        torch.Size([2, 32])
    """

    def __init__(self, arch: ViTArch) -> None:
        super().__init__()
        self.arch = arch
        self.patch_size = arch.patch_size
        self.embed_dim = arch.embed_dim
        grid = arch.img_size // arch.patch_size
        device = torch.get_default_device()
        # built on "meta" and initialised once by reset_parameters: torch's default init of every layer, which
        # reset_parameters overwrites anyway, would take most of the construction time
        with torch.device("meta"):
            self.cls_token = nn.Parameter(torch.zeros(1, 1, arch.embed_dim))
            self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid + 1, arch.embed_dim))
            self.register_tokens = (
                nn.Parameter(torch.zeros(1, arch.num_register_tokens, arch.embed_dim)) if arch.num_register_tokens else None
            )
            self.mask_token = nn.Parameter(torch.zeros(1, arch.embed_dim)) if arch.mask_token else None
            self.patch_embed = PatchEmbed(arch.patch_size, arch.embed_dim)
            self.blocks = nn.ModuleList(
                Block(arch.embed_dim, arch.num_heads, arch.mlp_ratio, arch.layer_scale) for _ in range(arch.depth)
            )
            self.norm = nn.LayerNorm(arch.embed_dim, eps=1e-6)
        if device.type != "meta":
            self.to_empty(device=device)
            self.reset_parameters()

    def reset_parameters(self) -> None:
        """Random initialisation as in the reference code: truncated normal (std 0.02) weights and position
        embeddings, zero biases, unit LayerNorms and layer scales, zero mask token."""
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        if self.arch.family == "dinov2":
            nn.init.normal_(self.cls_token, std=1e-6)
            if self.register_tokens is not None:
                nn.init.normal_(self.register_tokens, std=1e-6)
        else:
            nn.init.trunc_normal_(self.cls_token, std=0.02)
        if self.mask_token is not None:
            nn.init.zeros_(self.mask_token)
        self.patch_embed.proj.reset_parameters()
        for module in self.modules():
            if isinstance(module, LayerScale):
                nn.init.ones_(module.gamma)
            elif isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def interpolate_pos_encoding(self, n_patches: int, height: int, width: int) -> Tensor:
        """Position embeddings for an image of ``height x width`` pixels (``n_patches`` patch tokens): the trained
        ones as they are when the grid matches, bicubic-interpolated (as the reference code does) otherwise."""
        pos_embed = self.pos_embed
        frozen = self.__dict__.get("_frozen_pos_embed")
        if frozen is not None:  # set by freeze_input_size for export: no interpolation in the exported graph
            return frozen.to(pos_embed.dtype)
        trained = pos_embed.shape[1] - 1
        if n_patches == trained and height == width:
            return pos_embed
        side = int(math.sqrt(trained))
        if side * side != trained:
            raise OMLError(f"pos_embed holds {trained} patch positions, which is not a square grid")
        # plain ints: an exported graph (ONNX, TorchScript) keeps the spatial size it was exported with
        rows, cols = int(height) // self.patch_size, int(width) // self.patch_size
        offset = self.arch.interpolate_offset
        if offset:
            # the reference code scales by (n + 0.1) / side; kept so that pretrained features match it exactly
            resize: dict[str, object] = {"scale_factor": ((rows + offset) / side, (cols + offset) / side)}
        else:
            resize = {"size": (rows, cols)}
        grid = pos_embed[:, 1:].float().reshape(1, side, side, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, mode="bicubic", antialias=self.arch.interpolate_antialias, **resize)  # type: ignore[arg-type]
        grid = grid.permute(0, 2, 3, 1).reshape(1, rows * cols, -1)
        return torch.cat((pos_embed[:, :1].float(), grid), dim=1).to(pos_embed.dtype)

    def freeze_input_size(self, height: int, width: int) -> None:
        """Compute the position embeddings for ``height x width`` images once and use them from now on (an exported
        graph then holds a constant instead of an interpolation that ONNX cannot express, e.g. antialiased bicubic)."""
        with torch.no_grad():
            n_patches = (height // self.patch_size) * (width // self.patch_size)
            self.__dict__["_frozen_pos_embed"] = self.interpolate_pos_encoding(n_patches, height, width).detach().clone()

    def prepare_tokens(self, images: Tensor) -> Tensor:
        """Patch tokens with the CLS token and position embeddings, then the register tokens (if any) after CLS."""
        height, width = images.shape[-2:]
        if int(height) < self.patch_size or int(width) < self.patch_size:
            raise OMLError(f"images of {height}x{width} px are smaller than one {self.patch_size}x{self.patch_size} patch")
        x = self.patch_embed(images)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        x = x + self.interpolate_pos_encoding(x.shape[1] - 1, height, width)
        if self.register_tokens is not None:
            x = torch.cat((x[:, :1], self.register_tokens.expand(x.shape[0], -1, -1), x[:, 1:]), dim=1)
        return x

    def forward_features(self, images: Tensor) -> Tensor:
        """All output tokens after the final norm: ``(B, 1 + registers + patches, embed_dim)``."""
        x = self.prepare_tokens(images)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def forward(self, images: Tensor) -> Tensor:
        return self.forward_features(images)[:, 0]

    def adopt_pos_embed_shape(self, pos_embed: Tensor) -> None:
        """Resize the ``pos_embed`` parameter to the shape of a checkpoint's (e.g. one fine-tuned at another image
        size), so that it loads strictly; forward interpolates for any image size anyway."""
        fits = pos_embed.ndim == 3 and pos_embed.shape[-1] == self.embed_dim
        if fits and tuple(pos_embed.shape) != tuple(self.pos_embed.shape):
            self.pos_embed = nn.Parameter(torch.zeros_like(pos_embed, device=self.pos_embed.device, dtype=self.pos_embed.dtype))


def build_vit(arch: str) -> VisionTransformer:
    """A randomly initialised backbone of architecture ``arch`` (a key of ``ARCHS``).

    Example:
        >>> with torch.device("meta"):
        ...     build_vit("vitl14").pos_embed.shape
        torch.Size([1, 1370, 1024])
    """
    if arch not in ARCHS:
        raise OMLError(f"unknown ViT arch {arch!r}; available: {', '.join(ARCHS)}")
    return VisionTransformer(ARCHS[arch])
