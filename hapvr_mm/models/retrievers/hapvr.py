"""The HAP-VR retrieval model (an mmengine ``BaseModel``)."""
import logging
from typing import Callable, Dict, List, Optional, Sequence, Union

import torch
from mmaction.registry import MODELS
from mmengine.logging import print_log
from mmengine.model import BaseModel
from mmengine.structures import BaseDataElement
from torch import Tensor

from ..backbones.region_resnet import pretrained_checkpoint_path
from .gather import gather_batch, get_world_size

__all__ = ['HAPVR', 'loop_frames']

LOSS_SLOTS = ('loss_nce', 'loss_video_ap', 'loss_frame_ap',
              'loss_hard_negative', 'loss_self', 'loss_reg')


def loop_frames(features: Tensor, min_frames: int) -> Tensor:
    """Repeat a short video cyclically up to ``min_frames`` frames.

    Args:
        features (Tensor): ``[T, ...]`` with ``T >= 1``.
        min_frames (int): fewest frames wanted.

    Returns:
        Tensor: ``[max(T, min_frames), ...]``.
    """
    t = features.shape[0]
    if t == 0:
        raise ValueError('a video with 0 frames cannot be indexed')
    if t >= min_frames:
        return features
    idx = torch.arange(min_frames, device=features.device) % t
    return features[idx]


@MODELS.register_module()
class HAPVR(BaseModel):
    """HAP-VR: a frozen region backbone and a trainable similarity network.

    Args:
        head (dict): config of the similarity network
            (``SimilarityHead``).
        backbone (dict, optional): frozen frame backbone
            (``RegionResNet``), ``[T, 3, H, W] -> [T, R, C]``. None when the
            model only sees pre-extracted features.
        whitening (dict, optional): frozen ``PCAWhitening``
            ``[..., C] -> [..., D]``.
        loss_nce, loss_video_ap, loss_frame_ap, loss_hard_negative,
        loss_self, loss_reg (dict, optional): loss configs (METHOD section 4);
            None disables a term.
        pseudo_labeler (dict, optional): turns teacher frame embeddings into
            frame positive/negative masks. Defaults to
            ``dict(type='FramePseudoLabeler')``.
        frame_chunk (int, optional): frames per backbone forward. Defaults
            to 64.
        gather_features (bool): in distributed training, all-gather the
            indexed features (with gradient for the local slice), the
            relevance, masks and teacher embeddings, so that every loss ranks
            over the global batch (gradients then equal those of one process
            holding the whole batch). Defaults to False: each rank computes
            the batch-level losses on its own batch.
        data_preprocessor (dict, optional): defaults to
            ``dict(type='HAPVRDataPreprocessor')``.
        init_cfg (dict, optional): mmengine init config.

    The frame-level loss needs teacher embeddings of the training frames:
    either passed to ``forward`` as ``teacher_embeddings`` or computed by a
    teacher given to :meth:`set_teacher` (``PseudoLabelHook`` does this). The
    teacher is kept outside the module tree, so it is never trained, never
    wrapped by DDP and never saved in checkpoints.
    """

    def __init__(self,
                 head: dict,
                 backbone: Optional[dict] = None,
                 whitening: Optional[dict] = None,
                 loss_nce: Optional[dict] = None,
                 loss_video_ap: Optional[dict] = None,
                 loss_frame_ap: Optional[dict] = None,
                 loss_hard_negative: Optional[dict] = None,
                 loss_self: Optional[dict] = None,
                 loss_reg: Optional[dict] = None,
                 pseudo_labeler: Optional[dict] = dict(
                     type='FramePseudoLabeler'),
                 frame_chunk: int = 64,
                 gather_features: bool = False,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg=None) -> None:
        if data_preprocessor is None:
            data_preprocessor = dict(type='HAPVRDataPreprocessor')
        if isinstance(data_preprocessor, dict):
            # build from mmaction's registry whatever the default scope is
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone) if backbone else None
        self.whitening = MODELS.build(whitening) if whitening else None
        self.head = MODELS.build(head)
        cfgs = dict(
            loss_nce=loss_nce,
            loss_video_ap=loss_video_ap,
            loss_frame_ap=loss_frame_ap,
            loss_hard_negative=loss_hard_negative,
            loss_self=loss_self,
            loss_reg=loss_reg)
        for name in LOSS_SLOTS:
            setattr(self, name,
                    MODELS.build(cfgs[name]) if cfgs[name] else None)
        self.pseudo_labeler = MODELS.build(
            pseudo_labeler) if pseudo_labeler else None
        self.frame_chunk = frame_chunk
        self.gather_features = gather_features
        self.__dict__['_teacher'] = None

    def init_weights(self) -> None:
        """Initialise weights; warn loudly about missing pretrained files.

        A backbone without a ``Pretrained`` ``init_cfg`` keeps random
        weights, and a whitening layer without a PCA file gets a random
        orthonormal projection (instead of all-zero statistics), so that a
        config can still run, e.g. on the demo data; both are announced with
        a loud warning because retrieval numbers are then meaningless.
        """
        super().init_weights()
        missing = []
        if self.backbone is not None and pretrained_checkpoint_path(
                getattr(self.backbone, 'init_cfg', None)) is None:
            missing.append(f'{type(self.backbone).__name__} has no '
                           'pretrained checkpoint (random weights)')
        wht = self.whitening
        if wht is not None and not bool(wht.eigenvectors.any()):
            gen = torch.Generator().manual_seed(0)
            rand = torch.randn(wht.in_channels, wht.dims, generator=gen)
            basis = torch.linalg.qr(rand).Q.to(wht.eigenvectors)
            wht.eigenvectors.copy_(basis)
            wht.eigenvalues.fill_(1.0)
            wht.mean.zero_()
            missing.append('PCAWhitening has no PCA file (random orthonormal '
                           'projection)')
        if missing:
            print_log(
                '!' * 70 + '\nWARNING: ' + '; '.join(missing) +
                '. Set the weight files of docs/weights.md for real '
                'features.\n' + '!' * 70,
                logger='current',
                level=logging.WARNING)

    # ------------------------------------------------------------------ #
    # teacher
    @property
    def needs_teacher(self) -> bool:
        """Whether training needs teacher embeddings (frame loss active)."""
        loss = self.loss_frame_ap
        return loss is not None and float(getattr(loss, 'loss_weight',
                                                  1.0)) != 0.0

    def set_teacher(self, teacher: Optional[Callable[[Tensor],
                                                     Tensor]]) -> None:
        """Give the model a frozen teacher ``[M, 3, H, W] -> [M, C]``.

        The teacher is stored outside the module tree (not a parameter, not
        in ``state_dict``, not wrapped by DDP).
        """
        self.__dict__['_teacher'] = teacher

    @property
    def teacher(self) -> Optional[Callable[[Tensor], Tensor]]:
        """The teacher given to :meth:`set_teacher`, or None."""
        return self.__dict__['_teacher']

    # ------------------------------------------------------------------ #
    # features
    def extract_feat(self, frames: Tensor) -> Tensor:
        """Frozen region features of normalised frames.

        Args:
            frames (Tensor): ``[T, 3, H, W]`` or ``[N, T, 3, H, W]``.

        Returns:
            Tensor: ``[T, R, D]`` or ``[N, T, R, D]`` (whitened when a
            whitening layer is configured).
        """
        if self.backbone is None:
            raise RuntimeError('this HAPVR model has no backbone: feed '
                               'pre-extracted [T, R, D] features instead')
        if frames.dim() not in (4, 5) or frames.shape[-3] != 3:
            raise ValueError('expected frames [T, 3, H, W] or '
                             f'[N, T, 3, H, W], got {tuple(frames.shape)}')
        lead = frames.shape[:-3]
        flat = frames.reshape(-1, *frames.shape[-3:])
        chunk = self.frame_chunk or flat.shape[0]
        with torch.no_grad():
            feats = torch.cat([
                self._frame_features(flat[i:i + chunk])
                for i in range(0, flat.shape[0], chunk)
            ])
        return feats.view(*lead, *feats.shape[1:])

    def _frame_features(self, frames: Tensor) -> Tensor:
        feats = self.backbone(frames)
        if self.whitening is not None:
            feats = self.whitening(feats)
        return feats

    def index_video(self, features: Tensor) -> Tensor:
        """Index a video (or a batch): region attention on its features.

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
        return self.head.index(features)

    def _as_batch(self, videos: Union[Tensor, Sequence[Tensor]],
                  mask: Optional[Tensor]) -> tuple:
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
                if videos.shape[1] >= self.head.min_frames:
                    # a full batch: no per-video copy and re-padding
                    return videos, full
                mask = full
            videos = [v[m] for v, m in zip(videos, mask)]
        from ..data_preprocessors.hapvr_preprocessor import pad_videos
        min_frames = self.head.min_frames
        return pad_videos([loop_frames(v, min_frames) for v in videos])

    @torch.no_grad()
    def video_similarity(self,
                         query_features: Union[Tensor, Sequence[Tensor]],
                         target_features: Union[Tensor, Sequence[Tensor]],
                         query_mask: Optional[Tensor] = None,
                         target_mask: Optional[Tensor] = None,
                         indexed: bool = False) -> Tensor:
        """Similarity of every query/target video pair in eval range.

        Args:
            query_features: ``[Nq, T, R, D]`` tensor (with ``query_mask``) or
                a list of ``[T_i, R, D]`` tensors.
            target_features: same for the targets.
            query_mask (Tensor, optional): bool ``[Nq, T]``.
            target_mask (Tensor, optional): bool ``[Nt, T']``.
            indexed (bool): the features already went through
                :meth:`index_video`. Defaults to False.

        Returns:
            Tensor: ``[Nq, Nt]`` scores in [-1, 1] (computed without
            gradient; training uses :meth:`loss`).
        """
        q, q_mask = self._as_batch(query_features, query_mask)
        t, t_mask = self._as_batch(target_features, target_mask)
        if not indexed:
            q, t = self.index_video(q), self.index_video(t)
        full_q, full_t = bool(q_mask.all()), bool(t_mask.all())
        out = self.head(
            q,
            t,
            None if full_q and full_t else q_mask,
            None if full_q and full_t else t_mask,
            train=False)
        return out['similarity']

    # ------------------------------------------------------------------ #
    # forward
    def forward(self,
                inputs: Tensor,
                data_samples: Optional[List[BaseDataElement]] = None,
                mode: str = 'tensor',
                masks: Optional[Tensor] = None,
                relevance: Optional[Tensor] = None,
                teacher_embeddings: Optional[Tensor] = None,
                **kwargs) -> Union[Dict[str, Tensor], list, Tensor]:
        """Run in ``tensor``, ``loss`` or ``predict`` mode.

        Args:
            inputs (Tensor): normalised frames ``[N, T, 3, H, W]`` or
                features ``[N, T, R, D]``.
            data_samples (list, optional): one data sample per video.
            mode (str): ``'tensor'`` (indexed features), ``'loss'`` (dict of
                losses) or ``'predict'`` (data samples with ``features``).
            masks (Tensor, optional): bool ``[N, T]`` frame masks.
            relevance (Tensor, optional): ``[N, N]`` 0/1 relevance (loss).
            teacher_embeddings (Tensor, optional): ``[N, T, C]`` teacher
                frame embeddings for the frame-level loss.

        Returns:
            Tensor, dict or list depending on ``mode``.
        """
        if mode == 'loss':
            return self.loss(inputs, relevance, masks, teacher_embeddings)
        if mode == 'tensor':
            return self.index_video(self._features(inputs))
        if mode == 'predict':
            return self.predict(inputs, data_samples, masks)
        raise RuntimeError(f'Invalid mode "{mode}". Only supports loss, '
                           'predict and tensor mode')

    def _features(self, inputs: Tensor) -> Tensor:
        if inputs.dim() == 5:
            return self.extract_feat(inputs)
        if inputs.dim() == 4:
            return inputs
        raise ValueError('inputs must be frames [N, T, 3, H, W] or '
                         f'features [N, T, R, D], got {tuple(inputs.shape)}')

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

    def loss(self,
             inputs: Tensor,
             relevance: Optional[Tensor],
             masks: Optional[Tensor] = None,
             teacher_embeddings: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """All configured losses of one self-supervised batch.

        Args:
            inputs (Tensor): frames ``[N, T, 3, H, W]`` or features
                ``[N, T, R, D]``.
            relevance (Tensor): ``[N, N]`` 0/1 relevance.
            masks (Tensor, optional): bool ``[N, T]``.
            teacher_embeddings (Tensor, optional): ``[N, T, C]``.

        Returns:
            dict[str, Tensor]: weighted scalar losses by name.
        """
        if relevance is None:
            raise ValueError('loss mode needs the [N, N] relevance matrix')
        n = inputs.shape[0]
        if relevance.shape != (n, n):
            raise ValueError(f'relevance must be [{n}, {n}], got '
                             f'{tuple(relevance.shape)}')
        feats = self.index_video(self._features(inputs))
        embeddings = None
        if self.needs_teacher:
            embeddings = self._teacher_embeddings(inputs, teacher_embeddings)
        if masks is None:
            masks = feats.new_ones(feats.shape[:2], dtype=torch.bool)
        if self.gather_features and get_world_size() > 1:
            feats, relevance, masks, embeddings = gather_batch(
                feats, relevance, masks, embeddings)
        if bool(masks.all()):
            masks = None
        out = self.head(feats, feats, masks, masks, train=True)
        sim = out['similarity']
        losses: Dict[str, Tensor] = {}
        if self.loss_nce is not None:
            losses['loss_nce'] = self.loss_nce(sim, relevance)
        if self.loss_video_ap is not None:
            losses['loss_video_ap'] = self.loss_video_ap(sim, relevance)
        if self.loss_hard_negative is not None:
            losses['loss_hard_negative'] = self.loss_hard_negative(
                sim, relevance)
        if self.loss_self is not None:
            losses['loss_self'] = self.loss_self(sim, relevance)
        if self.loss_reg is not None and 'raw' in out:
            losses['loss_reg'] = self.loss_reg(out['raw'], out.get('raw_mask'))
        if embeddings is not None:
            pairs = relevance.nonzero()
            pos, neg = self.pseudo_labeler(
                embeddings.float(), mask=masks, pairs=pairs)
            sel = out['frame_similarity'][pairs[:, 0], pairs[:, 1]]
            losses['loss_frame_ap'] = self.loss_frame_ap(sel, pos, neg)
        return losses

    def _teacher_embeddings(self, inputs: Tensor,
                            embeddings: Optional[Tensor]) -> Tensor:
        """Teacher frame embeddings ``[N, T, C]`` of the batch."""
        if embeddings is not None:
            return embeddings
        if self.teacher is None or inputs.dim() != 5:
            raise RuntimeError(
                'the frame-level AP loss needs teacher embeddings: add '
                'PseudoLabelHook to custom_hooks, call '
                'model.set_teacher(...), or set loss_frame_ap=None')
        with torch.no_grad():
            flat = inputs.flatten(0, 1)
            return self.teacher(flat).view(*inputs.shape[:2], -1)
