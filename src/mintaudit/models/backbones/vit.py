"""A Vision Transformer (ViT) for aMINT."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mintaudit.errors import ModelError
from mintaudit.models.backbones.layers import check_positive, image_hw

__all__ = ["ViT"]


class _Attention(nn.Module):
    """Multi-head self-attention: one qkv projection, scaled dot product, output projection."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(b, n, d)))


class _Mlp(nn.Module):
    """Linear -> GELU -> linear, with dropout after each."""

    def __init__(self, dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.drop1 = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, dim)
        self.drop2 = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop2(self.fc2(self.drop1(self.act(self.fc1(x)))))


class _Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x)); returns (B, N, D)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = _Attention(dim, heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = _Mlp(dim, max(1, int(dim * mlp_ratio)), dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    """A small Vision Transformer, as in the published aMINT code (patch 4, dim 64, depth 12, 8 heads).

    Modules: ``patch_embed`` (conv, kernel = stride = patch size), learnable ``cls_token``
    (1, 1, D) and ``pos_embed`` (1, 1 + N, D) with N = (H // patch) x (W // patch) (pixels past
    the last whole patch are ignored), ``pos_drop``, ``blocks`` (``blocks.0`` ..
    ``blocks.{depth-1}``, each returning tokens (B, 1 + N, D)), ``norm`` (final LayerNorm,
    tokens (B, 1 + N, D)) and ``head`` (linear on the cls token).

    Args:
        in_channels: input channels.
        num_classes: number of classes.
        image_size: input height/width in pixels; sizes the position embedding, so inputs
            must have this size.
        patch_size: patch side in pixels.
        dim: token width D.
        depth: number of transformer blocks.
        heads: attention heads; must divide ``dim``.
        mlp_ratio: hidden width of each block's MLP, as a multiple of ``dim``.
        dropout: dropout of tokens, attention and MLPs (0 as published).

    Example:
        >>> ViT(1, 10, 28, dim=16, depth=4, heads=2)(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        image_size: int | tuple[int, int],
        patch_size: int = 4,
        dim: int = 64,
        depth: int = 12,
        heads: int = 8,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        check_positive(
            "ViT",
            patch_size=patch_size,
            dim=dim,
            depth=depth,
            heads=heads,
            mlp_ratio=mlp_ratio,
            in_channels=in_channels,
            num_classes=num_classes,
        )
        if dim % heads:
            raise ModelError(f"ViT: heads ({heads}) must divide dim ({dim}); e.g. dim={heads * max(1, dim // heads)}")
        if not 0 <= dropout < 1:
            raise ModelError(f"ViT: dropout must be in [0, 1), got {dropout!r}")
        h, w = image_hw(image_size, "ViT")
        if min(h, w) < patch_size:
            raise ModelError(
                f"ViT: image_size {h}x{w} is smaller than one {patch_size}x{patch_size} patch; lower patch_size"
            )
        self.image_size = (h, w)
        num_patches = (h // patch_size) * (w // patch_size)
        self.patch_embed = nn.Conv2d(in_channels, dim, patch_size, patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + num_patches, dim))
        self.pos_drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(_Block(dim, heads, mlp_ratio, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, num_classes) of float images (B, C, H, W) of the size given at construction."""
        if tuple(x.shape[-2:]) != self.image_size:
            raise ModelError(
                f"ViT was built for {self.image_size[0]}x{self.image_size[1]} inputs, got "
                f"{x.shape[-2]}x{x.shape[-1]}; rebuild it with image_size={tuple(x.shape[-2:])}"
            )
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        tokens = self.pos_drop(tokens + self.pos_embed)
        for block in self.blocks:
            tokens = block(tokens)
        return self.head(self.norm(tokens)[:, 0])
