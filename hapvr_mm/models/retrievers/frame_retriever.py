"""A generic retriever: any mmaction2 2D backbone, a neck, a similarity."""
import inspect
import logging
from contextlib import nullcontext
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmaction.registry import MODELS
from mmengine.logging import print_log
from mmengine.structures import BaseDataElement
from torch import Tensor

from ..data_preprocessors.hapvr_preprocessor import pad_videos
from ..similarity.chamfer import aggregate, frame_similarity
from ..weight_init import pretrained_checkpoint_path
from .base import BaseRetriever

__all__ = ['FrameRetriever', 'double_frames', 'SIMILARITIES']

#: similarity names of :class:`FrameRetriever` (or a head config dict)
SIMILARITIES = ('cosine', 'chamfer')


def double_frames(features: Tensor, min_frames: int) -> Tensor:
    """Concatenate a short video with itself until it has ``min_frames``.

    docs/method.md section 5: a video with fewer frames than the comparator
    needs is doubled (1 -> 2 -> 4, 2 -> 4, 3 -> 6 frames for
    ``min_frames=4``), not looped to exactly ``min_frames``.

    Args:
        features (Tensor): ``[T, ...]`` with ``T >= 1``.
        min_frames (int): fewest frames wanted.

    Returns:
        Tensor: ``[T * 2^k, ...]`` with the smallest ``k >= 0`` that gives
        at least ``min_frames`` frames.
    """
    if features.shape[0] == 0:
        raise ValueError('a video with 0 frames cannot be indexed')
    while features.shape[0] < min_frames:
        features = torch.cat([features, features])
    return features


def _has_pretrained(module: torch.nn.Module) -> bool:
    if isinstance(getattr(module, 'pretrained', None), str):
        return True
    return pretrained_checkpoint_path(getattr(module, 'init_cfg',
                                              None)) is not None


@MODELS.register_module()
class FrameRetriever(BaseRetriever):
    """Embed frames with any 2D backbone and compare videos.

    Frames ``[T, 3, H, W]`` go through ``backbone`` (any mmaction2 2D
    backbone: ``ResNet``, ``MobileNetV2``, ...), then ``neck`` (e.g.
    ``RegionPoolingNeck``) into region tokens ``[T, R, D]``; without a neck
    the last feature map is global-average-pooled into one token per frame
    (``R = 1``). Videos are then compared by ``similarity``:

    * ``'cosine'``: cosine of the L2-normalised mean of all tokens of each
      video (a pooled-embedding baseline), in [-1, 1];
    * ``'chamfer'``: Chamfer similarity (max over target, mean over query)
      over regions, then over frames, in [-1, 1];
    * a dict: the config of a similarity head (``SimilarityHead``, the
      HAP-VR network), applied with its own indexing (region attention).

    Args:
        backbone (dict, optional): backbone config; None when the model is
            fed pre-extracted features ``[T, R, D]``.
        neck (dict, optional): neck config. Defaults to None.
        similarity (str | dict): see above. Defaults to ``'cosine'``.
        frozen_backbone (bool): keep the backbone frozen: no gradients
            (``requires_grad=False``, forward under ``no_grad``) and always
            in eval mode. False lets it train. Defaults to True.
        frame_chunk (int, optional): frames per backbone forward (bounds
            memory). Defaults to 64.
        data_preprocessor (dict, optional): defaults to
            ``dict(type='HAPVRDataPreprocessor')`` (uint8 frames -> ImageNet
            normalisation, padding and frame masks).
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self,
                 backbone: Optional[dict] = None,
                 neck: Optional[dict] = None,
                 similarity: Union[str, dict] = 'cosine',
                 frozen_backbone: bool = True,
                 frame_chunk: Optional[int] = 64,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if data_preprocessor is None:
            data_preprocessor = dict(type='HAPVRDataPreprocessor')
        if isinstance(data_preprocessor, dict):
            # build from mmaction's registry whatever the default scope is
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone) if backbone else None
        self.neck = MODELS.build(neck) if neck else None
        if isinstance(similarity, dict):
            self.head = MODELS.build(self._head_config(similarity))
            self.similarity = 'head'
        elif similarity in SIMILARITIES:
            self.head = None
            self.similarity = similarity
        else:
            raise ValueError(f'similarity must be one of {SIMILARITIES} or '
                             f'a head config dict, got {similarity!r}')
        if frame_chunk is not None and int(frame_chunk) < 1:
            raise ValueError(
                f'frame_chunk must be positive or None, got {frame_chunk}')
        self.frame_chunk = frame_chunk
        self.frozen_backbone = bool(frozen_backbone)
        if self.backbone is not None and self.frozen_backbone:
            for param in self.backbone.parameters():
                param.requires_grad = False
            self.backbone.eval()

    # ------------------------------------------------------------------ #
    def init_weights(self) -> None:
        """Initialise weights; warn loudly when the backbone is random."""
        super().init_weights()
        if self.backbone is not None and not _has_pretrained(self.backbone):
            print_log(
                '!' * 70 + f'\nWARNING: {type(self.backbone).__name__} has '
                'no pretrained checkpoint (random weights). Set its init_cfg '
                "(dict(type='StrictPretrained', checkpoint=...), see "
                'docs/weights.md) for real features.\n' + '!' * 70,
                logger='current',
                level=logging.WARNING)

    def train(self, mode: bool = True) -> 'FrameRetriever':
        """Set train/eval mode; a frozen backbone always stays in eval mode.

        Args:
            mode (bool): training mode. Defaults to True.

        Returns:
            FrameRetriever: self.
        """
        super().train(mode)
        if self.backbone is not None and self.frozen_backbone:
            self.backbone.eval()
        return self

    @property
    def min_frames(self) -> int:
        """Fewest frames a video needs (the head's, else 1)."""
        return self.head.min_frames if self.head is not None else 1

    # ------------------------------------------------------------------ #
    # sizes
    def _head_config(self, cfg: dict) -> dict:
        """The head config with ``dims`` filled in or checked.

        A head whose class takes ``dims`` gets the size of the region
        tokens (:meth:`token_dims`) when the config gives none; a given
        value must equal it.
        """
        cfg = dict(cfg)
        head_cls = MODELS.get(cfg.get('type', ''))
        if head_cls is None or 'dims' not in inspect.signature(
                head_cls.__init__).parameters:
            return cfg
        given = cfg.get('dims')
        known = self.token_dims()
        if given is None:
            if known is not None:
                cfg['dims'] = known
            else:  # features in: the head's own default applies
                cfg.pop('dims', None)
        elif known is not None and int(given) != known:
            raise ValueError(
                f'head.dims={given} but the '
                f'{type(self.neck or self.backbone).__name__} gives '
                f'{known}-d region tokens; drop head.dims to infer it, or '
                'fix the backbone/neck')
        return cfg

    def _stage_channels(self) -> List[int]:
        """Channels of every map the backbone returns (one probe frame)."""
        size = int(self.probe_size)
        frames = torch.zeros(1, 3, size, size)
        training = self.backbone.training
        self.backbone.eval()
        try:
            with torch.no_grad():
                maps = self.backbone(frames)
        finally:
            self.backbone.train(training)
        maps = [maps] if isinstance(maps, Tensor) else list(maps)
        return [int(m.shape[1] if m.dim() == 4 else m.shape[-1]) for m in maps]

    def token_dims(self) -> Optional[int]:
        """Size ``D`` of the region tokens of :meth:`extract_feat`.

        From the neck's ``out_channels`` when it knows it; otherwise from
        the backbone's channels (one probe frame of ``probe_size`` pixels,
        in eval mode, without gradients) through the neck's
        ``channels_for``, or the last map's channels without a neck.

        Returns:
            int | None: ``D``; None for a model without backbone whose neck
            (if any) cannot say.
        """
        if self.neck is not None:
            known = getattr(self.neck, 'out_channels', None)
            if known is not None:
                return int(known)
        if self.backbone is None:
            return None
        channels = self._stage_channels()
        if self.neck is None:
            return channels[-1]
        if not hasattr(self.neck, 'channels_for'):
            return None
        return int(self.neck.channels_for(channels))

    @property
    def feature_dims(self) -> int:
        """Size ``D`` of the indexed features (the head's ``dims``, else
        the token size, else the default probe video)."""
        if self.head is not None and getattr(self.head, 'dims', None):
            return int(self.head.dims)
        dims = self.__dict__.get('_token_dims')
        if dims is None:
            dims = self.token_dims()
            if dims is None:
                return super().feature_dims
            self.__dict__['_token_dims'] = dims
        return dims

    # ------------------------------------------------------------------ #
    # features
    def extract_feat(self, frames: Tensor) -> Tensor:
        """Region tokens of normalised frames (backbone, then neck).

        Args:
            frames (Tensor): ``[T, 3, H, W]`` or ``[N, T, 3, H, W]``.

        Returns:
            Tensor: ``[T, R, D]`` or ``[N, T, R, D]``.
        """
        if self.backbone is None:
            raise RuntimeError(f'this {type(self).__name__} has no backbone: '
                               'feed pre-extracted [T, R, D] features')
        if frames.dim() not in (4, 5) or frames.shape[-3] != 3:
            raise ValueError('expected frames [T, 3, H, W] or '
                             f'[N, T, 3, H, W], got {tuple(frames.shape)}')
        lead = frames.shape[:-3]
        flat = frames.reshape(-1, *frames.shape[-3:])
        chunk = self.frame_chunk or max(flat.shape[0], 1)
        feats = torch.cat([
            self._frame_tokens(flat[i:i + chunk])
            for i in range(0, flat.shape[0], chunk)
        ])
        return feats.view(*lead, *feats.shape[1:])

    def _frame_tokens(self, frames: Tensor) -> Tensor:
        frozen = self.frozen_backbone
        with torch.no_grad() if frozen else nullcontext():
            maps = self.backbone(frames)
        if self.neck is not None:
            return self.neck(maps)
        last = maps if isinstance(maps, Tensor) else maps[-1]
        if last.dim() == 3:  # already tokens [B, R, C]
            return last
        if last.dim() != 4:
            raise ValueError(
                f'{type(self.backbone).__name__} returned '
                f'{tuple(last.shape)}; expected feature maps [B, C, H, W] '
                '(add a neck for other outputs)')
        return F.normalize(last.mean((-2, -1)), dim=-1).unsqueeze(1)

    def _features(self, inputs: Tensor) -> Tensor:
        if inputs.dim() == 5:
            return self.extract_feat(inputs)
        if inputs.dim() == 4:
            return inputs
        raise ValueError('inputs must be frames [N, T, 3, H, W] or '
                         f'features [N, T, R, D], got {tuple(inputs.shape)}')

    def index_video(self, features: Tensor) -> Tensor:
        """Index a video (or a batch) for :meth:`video_similarity`.

        With a head, its indexing (region attention); otherwise the tokens
        are L2-normalised.

        Args:
            features (Tensor): ``[T, R, D]``, ``[T, D]`` or ``[N, T, R, D]``.

        Returns:
            Tensor: indexed features of the same shape (``[T, 1, D]`` for a
            ``[T, D]`` input).
        """
        if features.dim() == 2:
            features = features.unsqueeze(1)
        if features.dim() not in (3, 4):
            raise ValueError('expected features [T, R, D] or [N, T, R, D], '
                             f'got {tuple(features.shape)}')
        if self.head is not None:
            return self.head.index(features)
        return F.normalize(features, p=2, dim=-1)

    # ------------------------------------------------------------------ #
    # similarity
    def _as_batch(self, videos: Union[Tensor, Sequence[Tensor]],
                  mask: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
        if isinstance(videos, Tensor):
            if videos.dim() == 3:
                videos = videos.unsqueeze(0)
            if videos.dim() != 4:
                raise ValueError('expected [N, T, R, D] or [T, R, D] '
                                 f'features, got {tuple(videos.shape)}')
            if mask is not None and tuple(mask.shape) != tuple(
                    videos.shape[:2]):
                raise ValueError(f'mask must be {tuple(videos.shape[:2])} '
                                 f'for features {tuple(videos.shape)}, got '
                                 f'{tuple(mask.shape)}')
            full = videos.new_ones(videos.shape[:2], dtype=torch.bool)
            if mask is None or bool(mask.all()):
                if videos.shape[1] >= self.min_frames:
                    # a full batch: no per-video copy and re-padding
                    return videos, full
                mask = full
            videos = [v[m] for v, m in zip(videos, mask)]
        videos = [v.unsqueeze(1) if v.dim() == 2 else v for v in videos]
        return pad_videos([double_frames(v, self.min_frames) for v in videos])

    @torch.no_grad()
    def video_similarity(
        self,
        query_features: Union[Tensor, Sequence[Tensor]],
        target_features: Union[Tensor, Sequence[Tensor]],
        query_mask: Optional[Tensor] = None,
        target_mask: Optional[Tensor] = None,
        indexed: bool = False,
        return_intermediates: bool = False
    ) -> Union[Tensor, Dict[str, Optional[Tensor]]]:
        """Similarity of every query/target video pair in eval range.

        Videos shorter than :attr:`min_frames` are doubled
        (:func:`double_frames`) before they are compared.

        Args:
            query_features: ``[Nq, T, R, D]`` tensor (with ``query_mask``) or
                a list of ``[T_i, R, D]`` tensors.
            target_features: same for the targets.
            query_mask (Tensor, optional): bool ``[Nq, T]``.
            target_mask (Tensor, optional): bool ``[Nt, T']``.
            indexed (bool): the features already went through
                :meth:`index_video`. Defaults to False.
            return_intermediates (bool): also return what the score was
                computed from. Defaults to False.

        Returns:
            Tensor | dict: ``[Nq, Nt]`` scores in [-1, 1] (computed without
            gradient); with ``return_intermediates`` a dict of
            ``similarity`` (those scores), ``frame_similarity``
            (``[Nq, Nt, Tq', Tt']`` over the doubled, padded frames, or
            None for ``'cosine'``), ``comparator_map`` (the head's
            comparator output after hardtanh, ``[Nq, Nt, Hq, Ht]``, or
            None), ``query_mask`` / ``target_mask`` (bool ``[N, T']`` valid
            frames of the compared batches).
        """
        q, q_mask = self._as_batch(query_features, query_mask)
        t, t_mask = self._as_batch(target_features, target_mask)
        if not indexed:
            q, t = self.index_video(q), self.index_video(t)
        full = bool(q_mask.all()) and bool(t_mask.all())
        out = self._compare(q, t, None if full else q_mask,
                            None if full else t_mask)
        if not return_intermediates:
            return out['similarity']
        return dict(out, query_mask=q_mask, target_mask=t_mask)

    def compare(self, query: Tensor, target: Tensor,
                query_mask: Optional[Tensor],
                target_mask: Optional[Tensor]) -> Tensor:
        """Scores of padded, indexed batches.

        Args:
            query (Tensor): ``[A, Tq, R, D]``.
            target (Tensor): ``[B, Tt, R, D]``.
            query_mask (Tensor, optional): bool ``[A, Tq]``.
            target_mask (Tensor, optional): bool ``[B, Tt]``.

        Returns:
            Tensor: ``[A, B]``.
        """
        return self._compare(query, target, query_mask,
                             target_mask)['similarity']

    def _compare(self, query: Tensor, target: Tensor,
                 query_mask: Optional[Tensor],
                 target_mask: Optional[Tensor]) -> Dict[str, Optional[Tensor]]:
        """Scores of padded, indexed batches and what they came from.

        Returns:
            dict: ``similarity`` ``[A, B]``, ``frame_similarity``
            ``[A, B, Tq, Tt]`` (None for ``'cosine'``) and
            ``comparator_map`` (None without a comparator).
        """
        if self.similarity == 'head':
            out = self.head(
                query, target, query_mask, target_mask, train=False)
            raw = out.get('raw')
            return dict(
                similarity=out['similarity'],
                frame_similarity=out.get('frame_similarity'),
                comparator_map=None if raw is None else F.hardtanh(raw))
        if self.similarity == 'cosine':
            return dict(
                similarity=self._pooled(query, query_mask) @ self._pooled(
                    target, target_mask).t(),
                frame_similarity=None,
                comparator_map=None)
        frame_sim = frame_similarity(query, target, 'chamfer')
        a, b, tq, tt = frame_sim.shape
        rows = cols = None
        if query_mask is not None or target_mask is not None:
            qm = query_mask if query_mask is not None else query.new_ones(
                a, tq, dtype=torch.bool)
            tm = target_mask if target_mask is not None else target.new_ones(
                b, tt, dtype=torch.bool)
            rows = qm[:, None].expand(a, b, tq).reshape(a * b, tq)
            cols = tm[None].expand(a, b, tt).reshape(a * b, tt)
        sim = aggregate(
            frame_sim.reshape(a * b, tq, tt),
            'chamfer',
            row_mask=rows,
            col_mask=cols)
        return dict(
            similarity=sim.view(a, b),
            frame_similarity=frame_sim,
            comparator_map=None)

    @torch.no_grad()
    def explain_similarity(self,
                           query: Tensor,
                           target: Tensor,
                           indexed: bool = True
                           ) -> Dict[str, Optional[Tensor]]:
        """What the score of one pair was computed from.

        One call of :meth:`video_similarity` with ``return_intermediates``:
        the frame similarities and comparator map are the very tensors the
        score came from (over the doubled frames of a video shorter than
        :attr:`min_frames`: a 3-frame video is compared as 6 frames). With
        ``similarity='cosine'`` the score uses no frame similarities; the
        matrix shown is then the cosine of the per-frame mean tokens.

        Args:
            query (Tensor): ``[Tq, R, D]`` features of one video.
            target (Tensor): ``[Tt, R, D]`` features of one video.
            indexed (bool): they went through :meth:`index_video`.
                Defaults to True.

        Returns:
            dict: ``frame_similarity`` ``[Tq', Tt']``, ``comparator_map``
            ``[Hq, Ht]`` in [-1, 1] or None, ``score`` (0-dim tensor).
        """
        out = self.video_similarity([query], [target],
                                    indexed=indexed,
                                    return_intermediates=True)
        frame_sim = out['frame_similarity']
        if frame_sim is None:
            view = super().explain_similarity(query, target, indexed)
            frame_sim = view['frame_similarity']
        else:
            frame_sim = frame_sim[0, 0]
        comp = out['comparator_map']
        return dict(
            frame_similarity=frame_sim,
            comparator_map=None if comp is None else comp[0, 0],
            score=out['similarity'][0, 0])

    @staticmethod
    def _pooled(feats: Tensor, mask: Optional[Tensor]) -> Tensor:
        """L2-normalised mean of a video's tokens ``[N, T, R, D] -> [N, D]``.
        """
        if mask is None:
            mean = feats.mean((1, 2))
        else:
            weight = mask.to(feats.dtype)[..., None, None]
            mean = (feats * weight).sum((1, 2)) / (weight.sum(
                (1, 2)) * feats.shape[2]).clamp_min(1)
        return F.normalize(mean, p=2, dim=-1)

    # ------------------------------------------------------------------ #
    # forward
    def forward(self,
                inputs: Tensor,
                data_samples: Optional[List[BaseDataElement]] = None,
                mode: str = 'tensor',
                masks: Optional[Tensor] = None,
                **kwargs) -> Union[Dict[str, Tensor], list, Tensor]:
        """Run in ``tensor``, ``predict`` or ``loss`` mode.

        Args:
            inputs (Tensor): normalised frames ``[N, T, 3, H, W]`` or
                features ``[N, T, R, D]``.
            data_samples (list, optional): one data sample per video.
            mode (str): ``'tensor'`` (indexed features), ``'predict'``
                (data samples with ``features``) or ``'loss'``.
            masks (Tensor, optional): bool ``[N, T]`` frame masks.
            **kwargs: passed to :meth:`loss` (``relevance``,
                ``teacher_embeddings``).

        Returns:
            Tensor, dict or list depending on ``mode``.
        """
        if mode == 'loss':
            return self.loss(inputs, masks=masks, **kwargs)
        if mode == 'tensor':
            return self.index_video(self._features(inputs))
        if mode == 'predict':
            return self.predict(inputs, data_samples, masks)
        raise RuntimeError(f'Invalid mode "{mode}". Only supports loss, '
                           'predict and tensor mode')

    def predict(self,
                inputs: Tensor,
                data_samples: Optional[List[BaseDataElement]] = None,
                masks: Optional[Tensor] = None) -> List[BaseDataElement]:
        """Index every video of a batch.

        Returns:
            list: data samples whose ``features`` field holds the indexed
            ``[T_i, R, D]`` features of each video (padding removed).
        """
        feats = self.index_video(self._features(inputs))
        if data_samples is None:
            data_samples = [BaseDataElement() for _ in range(len(feats))]
        if masks is None:
            masks = feats.new_ones(feats.shape[:2], dtype=torch.bool)
        for sample, f, m in zip(data_samples, feats, masks):
            sample.features = f[m]
        return data_samples

    def loss(self, inputs: Tensor, **kwargs) -> Dict[str, Tensor]:
        """FrameRetriever is for evaluation; train with ``HAPVR``.

        Raises:
            RuntimeError: always.
        """
        raise RuntimeError(
            'FrameRetriever has no losses (it evaluates a backbone); train '
            "with dict(type='HAPVR', backbone=..., neck=..., head=..., "
            'losses=...) instead')
