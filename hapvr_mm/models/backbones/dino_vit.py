"""Frozen DINO ViT-S/16 teacher for frame pseudo labels (docs/method.md s. 4).

A plain-torch Vision Transformer whose parameter names follow the public
DINO checkpoints (``cls_token``, ``pos_embed``, ``patch_embed.proj.*``,
``blocks.{i}.norm1.*``, ``blocks.{i}.attn.qkv.*``, ``blocks.{i}.attn.proj.*``,
``blocks.{i}.norm2.*``, ``blocks.{i}.mlp.fc1.*``, ``blocks.{i}.mlp.fc2.*``,
``norm.*``). It returns the final-norm CLS token of the last block. Weights
come through ``init_cfg=dict(type='Pretrained', checkpoint=PATH)``; see
``docs/weights.md``.
"""
from typing import List, Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmaction.registry import MODELS
from mmengine.model import BaseModule

from ..weight_init import (check_state_dict_keys, load_state_dict_file,
                           pretrained_checkpoint_path)

__all__ = ['DINOViT', 'interpolate_pos_embed']


def interpolate_pos_embed(pos_embed: torch.Tensor, grid: Tuple[int, int],
                          new_grid: Tuple[int, int]) -> torch.Tensor:
    """Bicubically resize the patch part of a ViT position embedding.

    The CLS entry is kept; the ``grid`` patch entries are reshaped to an
    image ``[1, C, gh, gw]``, resized to ``new_grid`` with bicubic
    interpolation (``align_corners=False``) and flattened back row-major.

    Args:
        pos_embed (torch.Tensor): ``[1, 1 + gh * gw, C]``.
        grid (tuple[int, int]): Patch grid ``(gh, gw)`` of ``pos_embed``.
        new_grid (tuple[int, int]): Target patch grid ``(nh, nw)``.

    Returns:
        torch.Tensor: ``[1, 1 + nh * nw, C]``.
    """
    gh, gw = grid
    if pos_embed.dim() != 3 or pos_embed.shape[1] != 1 + gh * gw:
        raise ValueError(f'pos_embed must be [1, 1 + {gh}*{gw}, C], got '
                         f'{tuple(pos_embed.shape)}')
    cls_pos, patch_pos = pos_embed[:, :1], pos_embed[:, 1:]
    dim = pos_embed.shape[-1]
    img = patch_pos.reshape(1, gh, gw, dim).permute(0, 3, 1, 2)
    img = F.interpolate(
        img.float(), size=tuple(new_grid), mode='bicubic',
        align_corners=False).to(pos_embed.dtype)
    patch_pos = img.permute(0, 2, 3, 1).reshape(1, -1, dim)
    return torch.cat([cls_pos, patch_pos], dim=1)


class _Attention(nn.Module):
    """Multi-head self-attention with a fused ``qkv`` projection."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads)**-0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads,
                                  c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # [B, heads, N, head_dim]
        attn = (q @ k.transpose(-2, -1)) * self.scale
        x = attn.softmax(dim=-1) @ v
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


class _Mlp(nn.Module):
    """Two-layer GELU MLP."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class _Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float,
                 qkv_bias: bool, norm_eps: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = _Attention(dim, num_heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = _Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class _PatchEmbed(nn.Module):
    """Non-overlapping patch projection (a strided convolution)."""

    def __init__(self, patch_size: int, in_channels: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(
            in_channels, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


@MODELS.register_module()
class DINOViT(BaseModule):
    """Frozen DINO Vision Transformer returning the CLS embedding.

    Defaults are ViT-S/16 (patch 16, dim 384, depth 12, 6 heads, MLP ratio
    4, qkv bias, LayerNorm eps 1e-6, position embedding for 224 x 224).
    Every parameter is frozen, ``train()`` keeps eval mode and ``forward``
    runs under ``torch.no_grad()``. Inputs whose patch grid differs from
    ``img_size // patch_size`` use a bicubically interpolated position
    embedding; spatial sizes that are not multiples of ``patch_size`` drop
    the remainder (as the strided patch convolution does).

    Args:
        img_size (int): Side of the images the position embedding is for.
            Defaults to 224.
        patch_size (int): Patch side. Defaults to 16.
        in_channels (int): Input channels. Defaults to 3.
        embed_dim (int): Token dimension. Defaults to 384.
        depth (int): Number of blocks. Defaults to 12.
        num_heads (int): Attention heads. Defaults to 6.
        mlp_ratio (float): MLP hidden size over ``embed_dim``. Defaults to 4.
        qkv_bias (bool): Bias in the qkv projection. Defaults to True.
        norm_eps (float): LayerNorm epsilon. Defaults to 1e-6.
        frame_chunk (int, optional): Images per forward pass (bounds
            memory); None runs all at once. Defaults to None.
        init_cfg (dict | list[dict], optional): Use
            ``dict(type='Pretrained', checkpoint=PATH)`` with a local DINO
            checkpoint; the state dict may be nested under ``teacher``,
            ``state_dict`` or ``model``, ``module.`` / ``backbone.``
            prefixes are stripped, ``head.*`` is ignored and the remaining
            keys must match exactly. Defaults to None (random init).
    """

    def __init__(self,
                 img_size: int = 224,
                 patch_size: int = 16,
                 in_channels: int = 3,
                 embed_dim: int = 384,
                 depth: int = 12,
                 num_heads: int = 6,
                 mlp_ratio: float = 4.,
                 qkv_bias: bool = True,
                 norm_eps: float = 1e-6,
                 frame_chunk: Optional[int] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if embed_dim % num_heads != 0:
            raise ValueError(f'embed_dim ({embed_dim}) must be divisible by '
                             f'num_heads ({num_heads})')
        if img_size < patch_size or img_size % patch_size != 0:
            raise ValueError(f'img_size ({img_size}) must be a positive '
                             f'multiple of patch_size ({patch_size})')
        if frame_chunk is not None and (not isinstance(frame_chunk, int)
                                        or frame_chunk < 1):
            raise ValueError(f'frame_chunk must be a positive int or None, '
                             f'got {frame_chunk!r}')
        self.patch_size = patch_size
        self.in_channels = in_channels
        self.embed_dim = embed_dim
        self.frame_chunk = frame_chunk
        self.grid = (img_size // patch_size, img_size // patch_size)
        self.patch_embed = _PatchEmbed(patch_size, in_channels, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(
            torch.zeros(1, 1 + self.grid[0] * self.grid[1], embed_dim))
        self.blocks = nn.ModuleList([
            _Block(embed_dim, num_heads, mlp_ratio, qkv_bias, norm_eps)
            for _ in range(depth)
        ])
        self.norm = nn.LayerNorm(embed_dim, eps=norm_eps)
        self._random_init()
        for param in self.parameters():
            param.requires_grad = False
        self.train(False)

    def _random_init(self) -> None:
        nn.init.trunc_normal_(self.pos_embed, std=.02)
        nn.init.trunc_normal_(self.cls_token, std=.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def init_weights(self) -> None:
        """Load the ``Pretrained`` DINO checkpoint of init_cfg, if any.

        Without one the random initialisation of the constructor is kept.
        """
        path = pretrained_checkpoint_path(self.init_cfg)
        if path is not None:
            state = load_state_dict_file(
                path, nesting_keys=('teacher', 'state_dict', 'model'))
            state = {
                k: v
                for k, v in state.items() if not k.startswith('head.')
            }
            check_state_dict_keys(self, state, path, optional_suffixes=())
            self.load_state_dict(state, strict=True)
        self._is_init = True

    def train(self, mode: bool = True) -> 'DINOViT':
        """Keep the frozen teacher in eval mode whatever ``mode`` is.

        Args:
            mode (bool): Ignored. Defaults to True.

        Returns:
            DINOViT: self.
        """
        return nn.Module.train(self, False)

    def _pos_embed_for(self, grid: Tuple[int, int]) -> torch.Tensor:
        if tuple(grid) == self.grid:
            return self.pos_embed
        return interpolate_pos_embed(self.pos_embed, self.grid, grid)

    def _forward_chunk(self, x: torch.Tensor) -> torch.Tensor:
        grid = (x.shape[-2] // self.patch_size, x.shape[-1] // self.patch_size)
        tokens = self.patch_embed(x)
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)
        tokens = torch.cat([cls, tokens], dim=1) + self._pos_embed_for(grid)
        for block in self.blocks:
            tokens = block(tokens)
        return self.norm(tokens)[:, 0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Embed images with the CLS token of the last block.

        Args:
            x (torch.Tensor): Normalised images ``[B, 3, H, W]`` or frames
                ``[N, T, 3, H, W]``, ``H, W >= patch_size``.

        Returns:
            torch.Tensor: Final-norm CLS tokens ``[B, embed_dim]`` (or
            ``[N, T, embed_dim]``).
        """
        if (x.dim() not in (4, 5) or x.shape[-3] != self.in_channels
                or x.shape[-2] < self.patch_size
                or x.shape[-1] < self.patch_size):
            raise ValueError(
                f'DINOViT expects [B, {self.in_channels}, H, W] or '
                f'[N, T, {self.in_channels}, H, W] with H, W >= '
                f'{self.patch_size}, got {tuple(x.shape)}')
        lead = x.shape[:-3]
        images = x.reshape(-1, *x.shape[-3:])
        if images.shape[0] == 0:
            raise ValueError(f'DINOViT got no images: {tuple(x.shape)}')
        chunk = self.frame_chunk or images.shape[0]
        with torch.no_grad():
            out = torch.cat([
                self._forward_chunk(images[i:i + chunk])
                for i in range(0, images.shape[0], chunk)
            ])
        return out.reshape(*lead, self.embed_dim)
