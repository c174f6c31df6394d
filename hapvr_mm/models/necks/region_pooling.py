"""Region tokens from backbone feature maps (docs/method.md section 2).

Any 2D backbone of mmaction2 (``ResNet``, ``MobileNetV2``, ...) returns one
feature map or a tuple of them per frame. :class:`RegionPoolingNeck` turns
them into ``R`` L2-normalised region vectors per frame by R-MAC-style
pooling on a grid, optionally followed by PCA whitening and/or a learned
projection. The paper's features are the special case of mmaction2's
``ResNet`` (depth 50, all four stages as outputs) at 224 x 224 with a 3 x 3
grid, which gives the kernels ``(28, 14, 6, 3)``.

The pooling maths is the plain function :func:`region_pooling`.
"""
import math
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmaction.registry import MODELS
from mmengine.model import BaseModule
from torch import Tensor

__all__ = ['RegionPoolingNeck', 'region_pooling', 'grid_kernel_size']


def grid_kernel_size(size: int, grid: int) -> int:
    """Largest max-pooling kernel that still gives ``grid`` regions.

    The kernel ``s`` slides with stride ``ceil(s / 2)`` (regions overlap by
    about half), so a side of ``size`` pixels holds
    ``floor((size - s) / ceil(s / 2)) + 1`` regions. For ResNet-50 at
    224 x 224 and a 3 x 3 grid this gives the paper's kernels 28, 14, 6 and 3
    for the sides 56, 28, 14 and 7.

    Args:
        size (int): Side of the feature map, in cells.
        grid (int): Regions wanted along that side.

    Returns:
        int: The kernel ``s >= 1`` (1 when ``size < grid``: every cell is a
        region and the adaptive pooling of :func:`region_pooling` fills the
        grid).
    """
    if size < 1 or grid < 1:
        raise ValueError(f'expected size >= 1 and grid >= 1, got size={size}'
                         f', grid={grid}')
    best = 1
    for s in range(1, size + 1):
        if (size - s) // int(math.ceil(s / 2)) + 1 >= grid:
            best = s
    return best


def region_pooling(stage_outputs: Sequence[Tensor],
                   kernel_sizes: Sequence[int]) -> Tensor:
    """Pool feature maps into L2-normalised region vectors.

    Each map is max-pooled with kernel ``s`` and stride ``ceil(s / 2)``,
    L2-normalised over channels, adaptively max-pooled to the last map's
    region grid and L2-normalised again; the maps are then concatenated over
    channels, the grid is flattened row-major into ``R`` regions and every
    region vector is L2-normalised.

    Args:
        stage_outputs (Sequence[Tensor]): Feature maps, each
            ``[B, C_k, H_k, W_k]`` (same ``B``); for ResNet-50 at 224 x 224:
            ``[B, 256, 56, 56]``, ``[B, 512, 28, 28]``, ``[B, 1024, 14, 14]``
            and ``[B, 2048, 7, 7]``.
        kernel_sizes (Sequence[int]): Max-pooling kernel ``s`` per map.

    Returns:
        Tensor: Region vectors ``[B, R, sum_k C_k]``; ``R = 9`` and
        ``sum_k C_k = 3840`` for ResNet-50 at 224 x 224 with the kernels
        ``(28, 14, 6, 3)``.
    """
    if len(stage_outputs) == 0:
        raise ValueError('region_pooling expects at least one feature map, '
                         'got none')
    if len(kernel_sizes) != len(stage_outputs):
        raise ValueError(
            f'region_pooling expects one kernel size per feature map: '
            f'{len(stage_outputs)} maps but kernel_sizes='
            f'{tuple(kernel_sizes)}')
    batch = stage_outputs[0].shape[0]
    pooled: List[Tensor] = []
    for idx, (feat, size) in enumerate(zip(stage_outputs, kernel_sizes)):
        if feat.dim() != 4 or feat.shape[0] != batch:
            raise ValueError(
                f'feature map {idx} must be [B={batch}, C, H, W], got '
                f'{tuple(feat.shape)}')
        if feat.shape[-2] < size or feat.shape[-1] < size:
            raise ValueError(
                f'feature map {idx} of spatial size {tuple(feat.shape[-2:])} '
                f'is smaller than its pooling kernel {size}; expected at '
                f'least ({size}, {size}) (use larger frames or smaller '
                'kernel_sizes)')
        regions = F.max_pool2d(feat, size, int(math.ceil(size / 2)))
        pooled.append(F.normalize(regions, p=2, dim=1))
    grid = pooled[-1].shape[-2:]
    pooled = [
        F.normalize(F.adaptive_max_pool2d(p, grid), p=2, dim=1) for p in pooled
    ]
    x = torch.cat(pooled, dim=1)  # [B, C, h, w]
    x = x.flatten(2).transpose(1, 2)  # [B, h * w, C], row-major regions
    return F.normalize(x, p=2, dim=-1)


@MODELS.register_module()
class RegionPoolingNeck(BaseModule):
    """Backbone feature maps -> region tokens ``[B, R, C]`` per frame.

    Args:
        in_indices (Sequence[int], optional): Which of the backbone's outputs
            to pool (indices into its tuple of maps). None uses all of them.
            Defaults to None.
        grid (int): Regions per side when ``kernel_sizes`` is None: each map
            gets the kernel :func:`grid_kernel_size` of its own size, so any
            backbone and frame size give about ``grid x grid`` regions.
            Defaults to 3.
        kernel_sizes (Sequence[int], optional): Explicit max-pooling kernel
            per pooled map (overrides ``grid``). Defaults to None.
        whitening (dict, optional): Config of a frozen
            :class:`~hapvr_mm.models.layers.PCAWhitening` applied to the
            region vectors (``[..., C] -> [..., D]``). Defaults to None.
        projection (int, optional): Output size of a trainable linear
            projection applied last, followed by L2 normalisation.
            Defaults to None.
        in_channels (int, optional): Size of the pooled region vectors
            (sum of the pooled maps' channels); needed only with
            ``projection`` and no ``whitening``. Defaults to None.
        init_cfg (dict, optional): mmengine init config.

    Shapes:
        input: a tensor ``[B, C, H, W]`` or a tuple of them (one per stage);
        output: ``[B, R, C']`` with ``C'`` the pooled channels, the
        whitening's ``dims`` or ``projection``.
    """

    def __init__(self,
                 in_indices: Optional[Sequence[int]] = None,
                 grid: int = 3,
                 kernel_sizes: Optional[Sequence[int]] = None,
                 whitening: Optional[dict] = None,
                 projection: Optional[int] = None,
                 in_channels: Optional[int] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if int(grid) < 1:
            raise ValueError(f'grid must be >= 1, got {grid}')
        self.in_indices = None if in_indices is None else tuple(
            int(i) for i in in_indices)
        self.grid = int(grid)
        self.kernel_sizes = None if kernel_sizes is None else tuple(
            int(s) for s in kernel_sizes)
        if self.kernel_sizes is not None and self.in_indices is not None \
                and len(self.kernel_sizes) != len(self.in_indices):
            raise ValueError(
                f'kernel_sizes {self.kernel_sizes} needs one size per index '
                f'of in_indices {self.in_indices}')
        self.whitening = MODELS.build(whitening) if whitening else None
        self.projection = None
        if projection is not None:
            width = self.whitening.dims if self.whitening else in_channels
            if width is None:
                raise ValueError('RegionPoolingNeck(projection=...) needs '
                                 'in_channels (the pooled region size) when '
                                 'there is no whitening')
            self.projection = nn.Linear(int(width), int(projection))
        self.in_channels = None if in_channels is None else int(in_channels)

    @property
    def out_channels(self) -> Optional[int]:
        """Size of the region tokens, when known without the backbone.

        Returns:
            int | None: ``projection``, else the whitening's ``dims``, else
            ``in_channels``; None when it depends on the backbone's channels
            (see :meth:`channels_for`).
        """
        if self.projection is not None:
            return int(self.projection.out_features)
        if self.whitening is not None:
            return int(self.whitening.out_channels)
        return self.in_channels

    def channels_for(self, stage_channels: Sequence[int]) -> int:
        """Size of the region tokens for a backbone's output channels.

        Args:
            stage_channels (Sequence[int]): channels of every map the
                backbone returns, in order.

        Returns:
            int: the token size ``C'`` (the pooled channels, the whitening's
            ``dims`` or ``projection``).

        Raises:
            ValueError: the pooled size differs from ``in_channels`` or from
                the whitening's input size (both numbers named).
        """
        maps = list(stage_channels)
        picked = maps if self.in_indices is None else [
            maps[i] for i in self.select_indices(len(maps))
        ]
        pooled = int(sum(picked))
        expected = self.whitening.in_channels if self.whitening is not None \
            else self.in_channels
        if expected is not None and int(expected) != pooled:
            what = 'whitening.in_channels' if self.whitening is not None \
                else 'in_channels'
            raise ValueError(
                f'RegionPoolingNeck: the pooled maps have {pooled} channels '
                f'({" + ".join(str(c) for c in picked)}) but {what} is '
                f'{expected}')
        out = self.out_channels
        return pooled if out is None else out

    def select_indices(self, n_maps: int) -> List[int]:
        """Indices of the maps this neck pools among ``n_maps`` outputs.

        Args:
            n_maps (int): number of maps the backbone returns.

        Returns:
            list[int]: the indices (all when ``in_indices`` is None).

        Raises:
            ValueError: an index outside the backbone's outputs.
        """
        if self.in_indices is None:
            return list(range(n_maps))
        bad = [i for i in self.in_indices if not -n_maps <= i < n_maps]
        if bad:
            raise ValueError(
                f'RegionPoolingNeck in_indices {self.in_indices} name '
                f'outputs {bad} but the backbone returned {n_maps} maps; '
                "set the backbone's out_indices to return them")
        return list(self.in_indices)

    def select(self, feats: Union[Tensor, Sequence[Tensor]]) -> List[Tensor]:
        """The feature maps this neck pools, in order.

        Args:
            feats (Tensor | Sequence[Tensor]): Backbone output.

        Returns:
            list[Tensor]: The maps named by ``in_indices``.
        """
        maps = [feats] if isinstance(feats, Tensor) else list(feats)
        if self.in_indices is None:
            return maps
        bad = [i for i in self.in_indices if not -len(maps) <= i < len(maps)]
        if bad:
            raise ValueError(
                f'RegionPoolingNeck in_indices {self.in_indices} name '
                f'outputs {bad} but the backbone returned {len(maps)} maps; '
                "set the backbone's out_indices to return them")
        return [maps[i] for i in self.in_indices]

    def kernels_for(self, maps: Sequence[Tensor]) -> Tuple[int, ...]:
        """Pooling kernel per map (explicit, or from the grid rule).

        Args:
            maps (Sequence[Tensor]): The selected ``[B, C, H, W]`` maps.

        Returns:
            tuple[int, ...]: One kernel per map.
        """
        if self.kernel_sizes is not None:
            if len(self.kernel_sizes) != len(maps):
                raise ValueError(
                    f'RegionPoolingNeck has kernel_sizes {self.kernel_sizes}'
                    f' for {len(self.kernel_sizes)} maps, but got '
                    f'{len(maps)} feature maps')
            return self.kernel_sizes
        return tuple(
            grid_kernel_size(min(m.shape[-2:]), self.grid) for m in maps)

    def forward(self, feats: Union[Tensor, Sequence[Tensor]]) -> Tensor:
        """Pool, then whiten and/or project.

        Args:
            feats (Tensor | Sequence[Tensor]): ``[B, C, H, W]`` or a tuple of
                such maps (same ``B``).

        Returns:
            Tensor: Region tokens ``[B, R, C']``.
        """
        maps = self.select(feats)
        x = region_pooling(maps, self.kernels_for(maps))
        if self.whitening is not None:
            x = self.whitening(x)
        if self.projection is not None:
            x = F.normalize(self.projection(x), p=2, dim=-1)
        return x
