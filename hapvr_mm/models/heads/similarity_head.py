"""The trainable similarity network of HAP-VR (docs/method.md section 3)."""
from itertools import repeat
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from mmaction.registry import MODELS
from mmengine.model import BaseModule
from torch import Tensor

from ..similarity.chamfer import aggregate, check_mode, frame_similarity

__all__ = [
    'SimilarityHead', 'EVAL_COMPARATOR_BUDGET', 'COMPARATOR_KEEP_BUDGET'
]

#: first-layer comparator activations per chunk without gradients
#: (8 M floats = 32 MB; e.g. 64 maps of 64 x 64 frames)
EVAL_COMPARATOR_BUDGET = 1 << 23
#: default of ``SimilarityHead(comparator_keep_budget=...)``: 128 MiB of
#: comparator activations kept for backward (N=64, T=16: 97 MB, kept;
#: N=128, T=28: 1.2 GB, checkpointed)
COMPARATOR_KEEP_BUDGET = 1 << 27


@MODELS.register_module()
class SimilarityHead(BaseModule):
    """Region attention, frame aggregation, comparator, video aggregation.

    Args:
        dims (int): feature dimension ``D``. Defaults to 512.
        attention (bool): use region attention. Defaults to True.
        f2f_mode (str): frame-to-frame aggregation over regions, one of
            ``'topk_chamfer'``, ``'chamfer'``, ``'max'``, ``'average'``.
            Defaults to ``'topk_chamfer'``.
        f2f_topk_rate (float): top-k rate over regions. Defaults to 0.1.
        v2v_mode (str): video-to-video aggregation over time (same choices).
            Defaults to ``'topk_chamfer'``.
        v2v_topk_rate (float): top-k rate over target time. Defaults to
            0.03.
        comparator (dict, optional): config of the video comparator; None
            aggregates the frame similarities directly. Defaults to
            ``dict(type='VideoComparator')``.
        symmetric (bool): average ``s(q, t)`` and ``s(t, q)`` (each computed
            in its own direction) in :meth:`forward`. Defaults to False.
        chunk_size (int, optional): videos per block of the region-level
            matrix products (bounds memory). Defaults to None (Chamfer modes:
            blocks of at most 1 M values; other modes: all at once).
        recompute (bool): Chamfer modes: keep nothing of the region-level
            blocks for backward and recompute them there (activation
            checkpointing; one more matrix product per block) instead of
            keeping ``uint8`` winner indices. Defaults to False.
        comparator_chunk (int, optional): when gradients are needed, run the
            comparator on chunks of this many similarity maps (bounds the
            forward and backward temporaries). Defaults to 256 (None: all
            maps at once, plain autograd).
        comparator_keep_budget (int, optional): most bytes of comparator
            activations kept for backward
            (``VideoComparator.activation_bytes`` times the number of
            maps); a larger batch runs each chunk under activation
            checkpointing (recomputed in backward: about a third more
            comparator time, nothing kept). Defaults to
            :data:`COMPARATOR_KEEP_BUDGET` (128 MiB); 0 always
            checkpoints, None never does.
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(
            self,
            dims: int = 512,
            attention: bool = True,
            f2f_mode: str = 'topk_chamfer',
            f2f_topk_rate: float = 0.1,
            v2v_mode: str = 'topk_chamfer',
            v2v_topk_rate: float = 0.03,
            comparator: Optional[dict] = dict(type='VideoComparator'),
            symmetric: bool = False,
            chunk_size: Optional[int] = None,
            recompute: bool = False,
            comparator_chunk: Optional[int] = 256,
            comparator_keep_budget: Optional[int] = COMPARATOR_KEEP_BUDGET,
            init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        check_mode(f2f_mode)
        check_mode(v2v_mode)
        self.dims = dims
        self.attention = MODELS.build(dict(type='RegionAttention',
                                           dims=dims)) if attention else None
        self.comparator = MODELS.build(comparator) if comparator else None
        self.f2f_mode = f2f_mode
        self.f2f_topk_rate = f2f_topk_rate
        self.v2v_mode = v2v_mode
        self.v2v_topk_rate = v2v_topk_rate
        self.symmetric = symmetric
        if chunk_size is not None and int(chunk_size) < 1:
            raise ValueError(f'chunk_size must be positive, got {chunk_size}')
        if comparator_chunk is not None and int(comparator_chunk) < 1:
            raise ValueError('comparator_chunk must be positive, got '
                             f'{comparator_chunk}')
        self.chunk_size = chunk_size
        self.recompute = recompute
        self.comparator_chunk = comparator_chunk
        if comparator_keep_budget is not None and \
                int(comparator_keep_budget) < 0:
            raise ValueError('comparator_keep_budget must be None or >= 0, '
                             f'got {comparator_keep_budget}')
        self.comparator_keep_budget = comparator_keep_budget

    @property
    def outputs(self) -> Dict[str, str]:
        """What this head gives the losses, by model output name.

        Returns:
            dict: model output name (see
            :data:`hapvr_mm.models.losses.base.MODEL_OUTPUTS`) -> key of the
            dict :meth:`forward` returns: ``similarity`` and
            ``frame_similarity`` always, ``raw_output`` / ``raw_mask`` (the
            comparator's output before hardtanh and its valid cells) only
            with a comparator.
        """
        out = dict(
            similarity='similarity', frame_similarity='frame_similarity')
        if self.comparator is not None:
            out.update(raw_output='raw', raw_mask='raw_mask')
        return out

    def missing_output_reason(self, name: str) -> Optional[str]:
        """Why this head does not give ``name`` (None when it does or when
        it never could).

        Args:
            name (str): a model output name.

        Returns:
            str | None: a hint for the error message.
        """
        if name in ('raw_output', 'raw_mask') and self.comparator is None:
            return 'the head has no comparator (head.comparator=None)'
        return None

    @property
    def min_frames(self) -> int:
        """Fewest frames a video needs (4 with the comparator, else 1)."""
        return 4 if self.comparator is not None else 1

    def index(self, features: Tensor) -> Tensor:
        """Apply region attention.

        Args:
            features (Tensor): ``[..., T, R, D]`` region features.

        Returns:
            Tensor: ``[..., T, R, D]`` indexed features.
        """
        if features.shape[-1] != self.dims:
            raise ValueError(f'expected features [..., T, R, {self.dims}], '
                             f'got {tuple(features.shape)}')
        return self.attention(features) if self.attention else features

    def frame_similarity(self, query: Tensor, target: Tensor) -> Tensor:
        """Frame-to-frame similarities of all pairs.

        Args:
            query (Tensor): ``[A, Tq, R, D]`` indexed features.
            target (Tensor): ``[B, Tt, R, D]`` indexed features.

        Returns:
            Tensor: ``[A, B, Tq, Tt]``. Passing the same tensor as query and
            target (a training batch against itself) halves the work.
        """
        return frame_similarity(query, target, self.f2f_mode,
                                self.f2f_topk_rate, self.chunk_size,
                                self.recompute)

    def video_scores(self,
                     frame_sim: Tensor,
                     query_mask: Optional[Tensor] = None,
                     target_mask: Optional[Tensor] = None,
                     train: bool = False) -> Dict[str, Tensor]:
        """Turn frame similarities into video similarities (one direction).

        Args:
            frame_sim (Tensor): ``[A, B, Tq, Tt]``.
            query_mask (Tensor, optional): bool ``[A, Tq]``.
            target_mask (Tensor, optional): bool ``[B, Tt]``.
            train (bool): training range [0, 1] instead of eval range
                [-1, 1]. Defaults to False.

        Returns:
            dict: ``similarity`` ``[A, B]``; ``raw`` (comparator output before
            hardtanh, ``[A, B, Tq', Tt']``) and ``raw_mask`` (bool, same shape
            or None) when a comparator is used.
        """
        return self._one_way(frame_sim, query_mask, target_mask, train)

    def _one_way(self, frame_sim: Tensor, query_mask: Optional[Tensor],
                 target_mask: Optional[Tensor],
                 train: bool) -> Dict[str, Tensor]:
        if frame_sim.dim() != 4:
            raise ValueError('expected frame similarities [A, B, Tq, Tt], '
                             f'got {tuple(frame_sim.shape)}')
        a, b, tq, tt = frame_sim.shape
        if query_mask is not None and query_mask.shape != (a, tq):
            raise ValueError(f'query mask must be [{a}, {tq}], got '
                             f'{tuple(query_mask.shape)}')
        if target_mask is not None and target_mask.shape != (b, tt):
            raise ValueError(f'target mask must be [{b}, {tt}], got '
                             f'{tuple(target_mask.shape)}')
        rows = cols = None
        if query_mask is not None or target_mask is not None:
            if query_mask is None:
                query_mask = frame_sim.new_ones(a, tq, dtype=torch.bool)
            if target_mask is None:
                target_mask = frame_sim.new_ones(b, tt, dtype=torch.bool)
            rows = query_mask[:, None, :].expand(a, b, tq).reshape(a * b, tq)
            cols = target_mask[None, :, :].expand(a, b, tt).reshape(a * b, tt)
        maps = frame_sim.reshape(a * b, tq, tt)
        out: Dict[str, Tensor] = {}
        if self.comparator is not None:
            maps, rows, cols = self._compare(maps, rows, cols)
            out['raw'] = maps.view(a, b, *maps.shape[-2:])
            if rows is not None:
                cell = rows.unsqueeze(-1) & cols.unsqueeze(-2)
                out['raw_mask'] = cell.view(a, b, *cell.shape[-2:])
        scores = F.hardtanh(maps)
        if train:
            scores = scores / 2 + 0.5
        sim = aggregate(scores, self.v2v_mode, self.v2v_topk_rate, rows, cols)
        out['similarity'] = sim.view(a, b)
        return out

    def _compare(self, maps: Tensor, rows: Optional[Tensor],
                 cols: Optional[Tensor]) -> tuple:
        """Run the comparator on chunks of similarity maps.

        With gradients, chunks of ``comparator_chunk`` maps; when the
        activations autograd would keep for all maps exceed
        ``comparator_keep_budget``, each chunk runs under activation
        checkpointing (recomputed in backward). Keeping them saves that
        recomputation (a checkpointed step at N=64, T=16 takes ~18 %
        longer, docs/benchmarks.md) for ``activation_bytes`` per map
        (23 KB at T=16). Without gradients
        (evaluation), chunks hold at most :data:`EVAL_COMPARATOR_BUDGET`
        first-layer activations, so long videos (FIVR: up to hundreds of
        frames) never need a multi-GB first-layer map.
        """
        grad = torch.is_grad_enabled()
        checkpointed = False
        if grad:
            chunk = self.comparator_chunk
            if not chunk:
                return self.comparator(maps, rows, cols)
            budget = self.comparator_keep_budget
            per_map = getattr(self.comparator, 'activation_bytes', None)
            checkpointed = budget is not None and (
                per_map is None
                or per_map(*maps.shape[-2:]) * maps.shape[0] > budget)
        else:
            width = getattr(
                getattr(self.comparator, 'conv1', None), 'out_channels', 32)
            chunk = max(
                EVAL_COMPARATOR_BUDGET //
                max(width * maps.shape[-2] * maps.shape[-1], 1), 1)
        if maps.shape[0] <= chunk and not checkpointed:
            return self.comparator(maps, rows, cols)
        from torch.utils.checkpoint import checkpoint
        outs, prow, pcol = [], [], []
        # split, not slices: one backward node that concatenates the chunk
        # gradients, where each slice's backward would write its chunk into
        # a zeroed tensor of the full size (N=128, T=28: 64 x 51 MB)
        parts = zip(
            maps.split(chunk),
            rows.split(chunk) if rows is not None else repeat(None),
            cols.split(chunk) if cols is not None else repeat(None))
        for part in parts:
            if checkpointed:
                o, r, c = checkpoint(
                    self.comparator, *part, use_reentrant=False)
            else:
                o, r, c = self.comparator(*part)
            outs.append(o)
            prow.append(r)
            pcol.append(c)
        rows = None if rows is None else torch.cat(prow)
        cols = None if cols is None else torch.cat(pcol)
        return torch.cat(outs), rows, cols

    def forward(self,
                query: Tensor,
                target: Tensor,
                query_mask: Optional[Tensor] = None,
                target_mask: Optional[Tensor] = None,
                train: bool = False) -> Dict[str, Tensor]:
        """Similarities of every query/target pair from indexed features.

        Args:
            query (Tensor): ``[A, Tq, R, D]`` indexed features.
            target (Tensor): ``[B, Tt, R, D]`` indexed features.
            query_mask (Tensor, optional): bool ``[A, Tq]``.
            target_mask (Tensor, optional): bool ``[B, Tt]``.
            train (bool): training range. Defaults to False.

        Returns:
            dict: ``frame_similarity`` ``[A, B, Tq, Tt]`` plus the entries of
            :meth:`video_scores`.
        """
        frame_sim = self.frame_similarity(query, target)
        out = self.video_scores(frame_sim, query_mask, target_mask, train)
        out['frame_similarity'] = frame_sim
        if self.symmetric:
            back = self.video_scores(
                self.frame_similarity(target, query), target_mask, query_mask,
                train)
            out['similarity'] = (out['similarity'] +
                                 back['similarity'].t()) / 2
        return out
