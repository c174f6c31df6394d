"""All-gather of a training batch across ranks (``gather_features``)."""
from typing import Optional, Tuple

import torch
import torch.distributed as dist
from mmengine.dist import get_rank, get_world_size
from torch import Tensor

__all__ = ['GatherWithGrad', 'gather_batch', 'get_world_size']


class GatherWithGrad(torch.autograd.Function):
    """All-gather along dim 0 that back-propagates into the local slice.

    Forward concatenates every rank's tensor (equal shapes). Backward sums
    the incoming gradients over ranks and returns the local slice, so that
    after DDP's gradient averaging every parameter gets exactly the gradient
    of one process computing the loss on the whole global batch.
    """

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        parts = [torch.empty_like(x) for _ in range(get_world_size())]
        dist.all_gather(parts, x.contiguous())
        ctx.rank, ctx.n = get_rank(), x.shape[0]
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad)
        return grad[ctx.rank * ctx.n:(ctx.rank + 1) * ctx.n]


def _gather_plain(x: Tensor) -> Tensor:
    parts = [torch.empty_like(x) for _ in range(get_world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)


def gather_batch(
    features: Tensor, relevance: Tensor, masks: Tensor,
    embeddings: Optional[Tensor]
) -> Tuple[Tensor, Tensor, Tensor, Optional[Tensor]]:
    """Gather a training batch from every rank.

    Args:
        features (Tensor): local indexed features ``[N, T, R, D]`` (with
            gradient).
        relevance (Tensor): local relevance ``[N, N]``.
        masks (Tensor): bool frame masks ``[N, T]``.
        embeddings (Tensor, optional): teacher embeddings ``[N, T, C]``.

    Returns:
        tuple: global features ``[W*N, T, R, D]`` (gradient flows to the
        local slice), block-diagonal relevance ``[W*N, W*N]`` (videos of
        different ranks are unrelated), masks ``[W*N, T]`` and embeddings
        ``[W*N, T, C]`` (or None).
    """
    shape = torch.tensor(features.shape, device=features.device)
    shapes = [torch.empty_like(shape) for _ in range(get_world_size())]
    dist.all_gather(shapes, shape)
    if any(not torch.equal(s, shape) for s in shapes):
        raise ValueError(
            'gather_features needs equal batch shapes on every rank, got '
            f'{[tuple(s.tolist()) for s in shapes]}')
    feats = GatherWithGrad.apply(features)
    n = relevance.shape[0]
    rel = _gather_plain(relevance.float()).view(-1, n, n)
    rel = torch.block_diag(*rel.unbind(0)).to(relevance.dtype)
    masks = _gather_plain(masks.to(torch.uint8)).bool()
    if embeddings is not None:
        embeddings = _gather_plain(embeddings.detach().float())
    return feats, rel, masks, embeddings
