"""The HAP-VR retrieval model (an mmengine ``BaseModel``)."""
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Union

import torch
from mmaction.registry import MODELS
from torch import Tensor, nn

from ..losses.base import MODEL_OUTPUTS
from .frame_retriever import FrameRetriever
from .gather import gather_batch, get_world_size

__all__ = [
    'HAPVR', 'build_losses', 'BATCH_OUTPUTS', 'LABEL_OUTPUTS', 'PAIR_OUTPUTS'
]

#: outputs the batch itself gives the losses
BATCH_OUTPUTS = ('relevance', 'features', 'masks')
#: outputs the pseudo labeler makes from the teacher's frame embeddings
LABEL_OUTPUTS = ('frame_positives', 'frame_negatives')
#: head outputs ``[N, N, ...]`` that the losses get at the relevant pairs
PAIR_OUTPUTS = ('frame_similarity', )


def build_losses(
    losses: Optional[Union[Mapping[str, Optional[dict]], Sequence[dict]]]
) -> nn.ModuleDict:
    """Build the losses of a model from a dict or a list of configs.

    Args:
        losses (dict | list, optional): ``{name: cfg}`` (a None value drops
            an entry inherited from a base config) or ``[cfg, ...]``, where a
            list entry may carry ``loss_name``; otherwise the loss's
            ``default_name`` is used. Names must contain ``loss`` (mmengine
            sums exactly those keys) and be unique.

    Returns:
        nn.ModuleDict: the built losses by name, in config order.
    """
    if losses is None:
        return nn.ModuleDict()
    if isinstance(losses, Mapping):
        items = [(name, cfg) for name, cfg in losses.items()
                 if cfg is not None]
    elif isinstance(losses, (list, tuple)):
        items = []
        for cfg in losses:
            cfg = dict(cfg)
            items.append((cfg.pop('loss_name', None), cfg))
    else:
        raise TypeError('losses must be a dict {name: cfg} or a list of '
                        f'configs, got {type(losses).__name__}')
    built = nn.ModuleDict()
    for name, cfg in items:
        loss = MODELS.build(cfg)
        name = name or getattr(loss, 'default_name', None)
        if not name or 'loss' not in name:
            raise ValueError(
                f'loss {type(loss).__name__}: its name {name!r} must contain '
                "'loss' (set loss_name or use the dict form)")
        if name in built:
            raise ValueError(f'two losses are named {name!r}; give one a '
                             'different loss_name')
        unknown = [
            i for i in getattr(loss, 'inputs', ('similarity', 'relevance'))
            if i not in MODEL_OUTPUTS
        ]
        if unknown:
            raise ValueError(
                f'loss {name!r} ({type(loss).__name__}) consumes {unknown}, '
                f'which no model output provides; outputs: {MODEL_OUTPUTS}')
        built[name] = loss
    return built


@MODELS.register_module()
class HAPVR(FrameRetriever):
    """HAP-VR: a frame backbone + neck and a trainable similarity network.

    A :class:`FrameRetriever` whose similarity is the HAP-VR head, trained
    with a configurable set of losses on self-supervised batches
    (docs/method.md sections 1-4).

    Args:
        head (dict): config of the similarity network
            (``SimilarityHead``).
        backbone (dict, optional): frame backbone, e.g. mmaction2's
            ``ResNet`` with ``out_indices=(0, 1, 2, 3)``. None when the
            model only sees pre-extracted ``[T, R, D]`` features.
        neck (dict, optional): turns the backbone's maps into region tokens
            ``[T, R, D]`` (``RegionPoolingNeck``, with its optional PCA
            whitening or projection). Defaults to None.
        losses (dict | list, optional): the losses, by name
            (``dict(loss_nce=dict(type='InfoNCELoss'), ...)``) or as a list
            of configs (see :func:`build_losses`). Each loss declares the
            model outputs it consumes (``inputs``, see
            :mod:`hapvr_mm.models.losses.base`); the model builds those
            outputs and routes them. Defaults to None (no training).
        pseudo_labeler (dict, optional): turns teacher frame embeddings into
            frame positive/negative masks. Defaults to
            ``dict(type='FramePseudoLabeler')``.
        frozen_backbone (bool): see :class:`FrameRetriever`. Defaults to
            True (the paper's frozen ResNet-50).
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
                 neck: Optional[dict] = None,
                 losses: Optional[Union[Mapping[str, Optional[dict]],
                                        Sequence[dict]]] = None,
                 pseudo_labeler: Optional[dict] = dict(
                     type='FramePseudoLabeler'),
                 frozen_backbone: bool = True,
                 frame_chunk: Optional[int] = 64,
                 gather_features: bool = False,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(
            backbone=backbone,
            neck=neck,
            similarity=head,
            frozen_backbone=frozen_backbone,
            frame_chunk=frame_chunk,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
        self.losses = build_losses(losses)
        self.pseudo_labeler = MODELS.build(
            pseudo_labeler) if pseudo_labeler else None
        self.gather_features = gather_features
        self.__dict__['_teacher'] = None
        self._check_loss_inputs()

    # ------------------------------------------------------------------ #
    # outputs
    @property
    def output_providers(self) -> Dict[str, str]:
        """Every output this model can give the losses, and who makes it.

        ``'batch'`` (:data:`BATCH_OUTPUTS`: the batch itself), ``'head'``
        (what the head declares in its ``outputs``; ``frame_similarity`` is
        kept at the batch's relevant pairs) or ``'pseudo_labeler'``
        (:data:`LABEL_OUTPUTS`, from the teacher's frame embeddings, when
        the model has a pseudo labeler and the head gives frame
        similarities).

        Returns:
            dict: output name -> provider.
        """
        out = {name: 'batch' for name in BATCH_OUTPUTS}
        out.update({name: 'head' for name in self.head.outputs})
        if self.pseudo_labeler is not None and \
                'frame_similarity' in self.head.outputs:
            out.update({name: 'pseudo_labeler' for name in LABEL_OUTPUTS})
        return out

    def _check_loss_inputs(self) -> None:
        """Refuse, at build time, a loss that consumes an output this model
        does not provide (naming the loss and the output)."""
        providers = self.output_providers
        for name, loss in self.losses.items():
            for key in getattr(loss, 'inputs', ('similarity', 'relevance')):
                if key in providers:
                    continue
                hint = None
                reason = getattr(self.head, 'missing_output_reason', None)
                if reason is not None:
                    hint = reason(key)
                if hint is None and key in LABEL_OUTPUTS:
                    hint = ('the model has no pseudo_labeler'
                            if self.pseudo_labeler is None else
                            'the head gives no frame_similarity')
                raise ValueError(
                    f'loss {name!r} ({type(loss).__name__}) consumes '
                    f'{key!r}, which this {type(self).__name__} does not '
                    f'provide' + (f': {hint}' if hint else '') +
                    f'; it provides {sorted(providers)} (the head '
                    f'{type(self.head).__name__} declares '
                    f'{sorted(self.head.outputs)})')

    # ------------------------------------------------------------------ #
    # teacher
    def _active_losses(self) -> Dict[str, nn.Module]:
        """Losses to compute: those needing the teacher only if weighted."""
        return {
            name: loss
            for name, loss in self.losses.items()
            if not (getattr(loss, 'needs_teacher', False)
                    and float(getattr(loss, 'loss_weight', 1.0)) == 0.0)
        }

    @property
    def needs_teacher(self) -> bool:
        """Whether training needs teacher embeddings (a frame-label loss)."""
        return any(
            getattr(loss, 'needs_teacher', False)
            for loss in self._active_losses().values())

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
    # training
    def forward(self,
                inputs: Tensor,
                data_samples: Optional[List] = None,
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
        return super().forward(inputs, data_samples, mode, masks)

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
        active = self._active_losses()
        if not active:
            raise RuntimeError('this HAPVR model has no losses: set '
                               'model.losses in the config to train it')
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
        outputs = _Outputs(self, out, feats, relevance, masks, embeddings)
        losses: Dict[str, Tensor] = {}
        for name, loss in active.items():
            args = [
                outputs.get(key, name)
                for key in getattr(loss, 'inputs', ('similarity', 'relevance'))
            ]
            value = loss(*args)
            if isinstance(value, Mapping):
                clash = set(value) & set(losses)
                if clash:
                    raise ValueError(f'loss {name!r} returned terms '
                                     f'{sorted(clash)} that already exist')
                losses.update(value)
            else:
                losses[name] = value
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
                'model.set_teacher(...), or remove the frame-label loss '
                '(e.g. model.losses.loss_frame_ap=None)')
        with torch.no_grad():
            flat = inputs.flatten(0, 1)
            return self.teacher(flat).view(*inputs.shape[:2], -1)


class _Outputs:
    """The model outputs of one batch, each computed once, on demand, by
    the provider :attr:`HAPVR.output_providers` names."""

    def __init__(self, model: HAPVR, head_out: Dict[str, Tensor],
                 feats: Tensor, relevance: Tensor, masks: Optional[Tensor],
                 embeddings: Optional[Tensor]) -> None:
        self.model = model
        self.head_out = head_out
        self.embeddings = embeddings
        self.providers = model.output_providers
        self.cache: Dict[str, Optional[Tensor]] = dict(
            relevance=relevance, features=feats, masks=masks)
        self.pairs: Optional[Tensor] = None

    def get(self, name: str, consumer: str) -> Optional[Tensor]:
        """Output ``name`` for the loss ``consumer``.

        Raises:
            ValueError: this model cannot produce ``name``.
        """
        if name in self.cache:
            return self.cache[name]
        provider = self.providers.get(name)
        if provider == 'head':
            self.cache[name] = self._from_head(name)
        elif provider == 'pseudo_labeler':
            self._from_pseudo_labeler(name, consumer)
        else:
            raise ValueError(f'loss {consumer!r} consumes {name!r}, which '
                             f'this model does not provide; it provides '
                             f'{sorted(self.providers)}')
        return self.cache[name]

    def _relevant_pairs(self) -> Tensor:
        if self.pairs is None:
            self.pairs = self.cache['relevance'].nonzero()
        return self.pairs

    def _from_head(self, name: str) -> Optional[Tensor]:
        value = self.head_out.get(self.model.head.outputs[name])
        if name in PAIR_OUTPUTS:  # [N, N, ...] -> the relevant pairs
            pairs = self._relevant_pairs()
            value = value[pairs[:, 0], pairs[:, 1]]
        return value

    def _from_pseudo_labeler(self, name: str, consumer: str) -> None:
        model = self.model
        if self.embeddings is None:
            raise ValueError(
                f'loss {consumer!r} consumes {name!r} (teacher pseudo '
                'labels) but the model has no teacher embeddings')
        pos, neg = model.pseudo_labeler(
            self.embeddings.float(),
            mask=self.cache['masks'],
            pairs=self._relevant_pairs())
        self.cache['frame_positives'] = pos
        self.cache['frame_negatives'] = neg
