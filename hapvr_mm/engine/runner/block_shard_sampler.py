"""Sampler giving each rank a contiguous, block-aligned database shard.

Used by :class:`~hapvr_mm.engine.runner.VideoRetrievalTestLoop` for the
database videos: a database batch is always the same block of consecutive
videos whatever the number of ranks, which makes every score (and so every
metric) independent of the number of processes.
"""
import math
from typing import Iterator, Optional

from mmaction.registry import DATA_SAMPLERS
from mmengine.dist import get_dist_info
from torch.utils.data import Sampler

__all__ = ['shard_blocks', 'BlockShardSampler']


def shard_blocks(num_items: int, block_size: int, rank: int,
                 world_size: int) -> range:
    """Indices of rank ``rank``'s contiguous shard, aligned to blocks.

    The ``ceil(num_items / block_size)`` blocks of ``block_size``
    consecutive indices are split into ``world_size`` contiguous runs whose
    sizes differ by at most one block; rank ``r`` gets the blocks
    ``[floor(r * B / W), floor((r + 1) * B / W))``.

    Args:
        num_items (int): dataset length ``N >= 0``.
        block_size (int): items per block, ``>= 1``.
        rank (int): ``0 <= rank < world_size``.
        world_size (int): ``>= 1``.

    Returns:
        range: the item indices of the shard (possibly empty).
    """
    if block_size < 1 or world_size < 1 or not 0 <= rank < world_size \
            or num_items < 0:
        raise ValueError('expected num_items >= 0, block_size >= 1 and '
                         f'0 <= rank < world_size, got num_items={num_items},'
                         f' block_size={block_size}, rank={rank}, '
                         f'world_size={world_size}')
    blocks = math.ceil(num_items / block_size)
    first = rank * blocks // world_size
    last = (rank + 1) * blocks // world_size
    return range(first * block_size, min(last * block_size, num_items))


@DATA_SAMPLERS.register_module()
class BlockShardSampler(Sampler):
    """Deterministic sampler: contiguous, block-aligned, disjoint shards.

    Unlike mmengine's ``DefaultSampler`` (interleaved indices), each rank
    gets a contiguous run of whole blocks (see :func:`shard_blocks`), with no
    padding. With a dataloader ``batch_size`` equal to ``block_size`` every
    batch is the same block of videos whatever the number of ranks.

    Args:
        dataset: the dataset (only its length is used).
        block_size (int): items per block. Defaults to 1.
        shard (bool): split across ranks; False gives every rank all items.
            Defaults to True.
        seed (int, optional): unused (accepted from mmengine's dataloader
            builder).
    """

    def __init__(self,
                 dataset,
                 block_size: int = 1,
                 shard: bool = True,
                 seed: Optional[int] = None) -> None:
        if not isinstance(block_size, int) or block_size < 1:
            raise ValueError(f'block_size must be an int >= 1, got '
                             f'{block_size!r}')
        rank, world_size = get_dist_info()
        if not shard:
            rank, world_size = 0, 1
        self.indices = shard_blocks(len(dataset), block_size, rank, world_size)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)

    def set_epoch(self, epoch: int) -> None:
        """No-op (the order never changes)."""
