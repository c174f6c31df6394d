"""The retrieval interface: what a model needs to be evaluated.

``VideoRetrievalTestLoop`` / ``VideoRetrievalValLoop`` and
``RetrievalAPMetric`` work with any model that implements this small
interface (documented in ``docs/mixing.md``):

``test_step(batch)`` / ``forward(inputs, data_samples, mode='predict')``
    Indexes every video of a batch and returns one data sample per video
    whose ``features`` field is the video's indexed representation (any
    tensor whose first dimension is time, e.g. ``[T, R, D]``; padding
    removed). The loop reads the video id from ``metainfo['video_id']``.
``index_video(features) -> Tensor``
    Turns the output of :meth:`extract_feat` (``[T, R, D]`` or
    ``[N, T, R, D]``) into the indexed form that ``video_similarity``
    compares (identity is fine).
``video_similarity(query, target, query_mask=None, target_mask=None,
indexed=False) -> Tensor``
    Scores ``[Nq, Nt]`` of every query/target pair, higher = more similar;
    ``query`` / ``target`` are lists of per-video tensors (or padded
    ``[N, T, ...]`` tensors with bool ``[N, T]`` masks); ``indexed=True``
    says they already went through ``index_video``.

Search (``hapvr_mm.search``: indexing, search, pair explanations) uses
the same interface, plus three members with defaults here:

``feature_dims -> int``
    Size ``D`` of the last dimension of the indexed features (default: one
    probe video through :meth:`test_step`).
``global_descriptor(features, mask=None) -> Tensor``
    ``[D]`` unit vector of an indexed video that ranks the index for a
    shortlist (default: L2-normalised mean of all its tokens).
``explain_similarity(query, target, indexed=True) -> dict``
    The frame-level view of one pair's score: ``frame_similarity``
    ``[Tq', Tt']``, ``comparator_map`` (or None) and ``score`` (default: a
    cosine of per-frame mean tokens next to the score of
    :meth:`video_similarity`; models whose score is built from frame
    similarities return the ones the score used).

A data sample given to the model carries ``metainfo['video_id']`` (and,
for a video that could not be read, ``metainfo['skip_reason']``; such
videos never reach the model).

:class:`BaseRetriever` is the abstract base that names these methods;
:func:`check_retriever` is what the loops call before they start, so a
model without the interface fails with one error naming what is missing.
"""
from abc import abstractmethod
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from mmengine.structures import BaseDataElement
from torch import Tensor

__all__ = [
    'BaseRetriever', 'check_retriever', 'RETRIEVER_METHODS', 'SEARCH_METHODS',
    'mean_token_descriptor'
]

#: methods the retrieval loop calls on the (unwrapped) model
RETRIEVER_METHODS = ('index_video', 'video_similarity', 'test_step')
#: what search needs on top (defaults in :class:`BaseRetriever`)
SEARCH_METHODS = ('global_descriptor', 'explain_similarity')


class BaseRetriever(BaseModel):
    """Abstract base of models that the retrieval loop can evaluate.

    Subclasses implement :meth:`index_video` and :meth:`video_similarity`
    and a ``predict`` mode that puts the indexed features of each video in
    its data sample's ``features`` field (see the module docstring). The
    search members (:attr:`feature_dims`, :meth:`global_descriptor`,
    :meth:`explain_similarity`) have defaults that work for any such model;
    a subclass overrides them when it knows better.
    """

    #: frame size of the probe video of the default :attr:`feature_dims`
    probe_size: int = 224

    @abstractmethod
    def index_video(self, features: Tensor) -> Tensor:
        """Index a video (``[T, ...]``) or a batch (``[N, T, ...]``).

        Args:
            features (Tensor): Frame features from ``extract_feat``.

        Returns:
            Tensor: The indexed features (same leading dimensions).
        """

    @abstractmethod
    def video_similarity(self,
                         query_features: Union[Tensor, Sequence[Tensor]],
                         target_features: Union[Tensor, Sequence[Tensor]],
                         query_mask: Optional[Tensor] = None,
                         target_mask: Optional[Tensor] = None,
                         indexed: bool = False) -> Tensor:
        """Scores ``[Nq, Nt]`` of every query/target pair.

        Args:
            query_features: ``[Nq, T, ...]`` tensor (with ``query_mask``) or
                a list of ``[T_i, ...]`` tensors.
            target_features: same for the targets.
            query_mask (Tensor, optional): bool ``[Nq, T]``.
            target_mask (Tensor, optional): bool ``[Nt, T']``.
            indexed (bool): the features already went through
                :meth:`index_video`.

        Returns:
            Tensor: ``[Nq, Nt]`` scores.
        """

    # ------------------------------------------------------------------ #
    # search
    @property
    def feature_dims(self) -> int:
        """Size ``D`` of the last dimension of the indexed features.

        The default indexes one black probe video (2 frames of
        ``probe_size`` x ``probe_size`` uint8 pixels) with
        :meth:`test_step` and reads its size once; subclasses that know it
        without running the model override this.

        Returns:
            int: ``D``.
        """
        dims = self.__dict__.get('_probed_dims')
        if dims is None:
            size = int(self.probe_size)
            frames = torch.zeros(2, 3, size, size, dtype=torch.uint8)
            sample = BaseDataElement(metainfo=dict(video_id='probe'))
            was_training = self.training
            self.eval()
            try:
                with torch.no_grad():
                    out = self.test_step(
                        dict(inputs=[frames], data_samples=[sample]))
            finally:
                self.train(was_training)
            dims = int(out[0].features.shape[-1])
            self.__dict__['_probed_dims'] = dims
        return dims

    def global_descriptor(self,
                          features: Tensor,
                          mask: Optional[Tensor] = None) -> Tensor:
        """Global descriptor of one indexed video, for shortlists.

        The default is :func:`mean_token_descriptor`: the L2-normalised
        mean of all tokens (for HAP-VR's indexed features this is the
        attention-weighted mean of the raw region features, since region
        attention scales each region by its positive weight).

        Args:
            features (Tensor): indexed features ``[T, ..., D]`` (the
                ``features`` field of :meth:`test_step`'s samples).
            mask (Tensor, optional): bool ``[T]`` valid frames.

        Returns:
            Tensor: float32 ``[D]`` unit vector.
        """
        return mean_token_descriptor(features, mask)

    @torch.no_grad()
    def explain_similarity(self,
                           query: Tensor,
                           target: Tensor,
                           indexed: bool = True
                           ) -> Dict[str, Optional[Tensor]]:
        """Frame-level view of the score of one query/target pair.

        The default (for models whose score is not built from frame
        similarities) shows the cosine of the per-frame mean tokens next to
        the score of :meth:`video_similarity`; a model whose score uses
        frame similarities overrides it to return the ones the score used.

        Args:
            query (Tensor): features ``[Tq, ...]`` of one video.
            target (Tensor): features ``[Tt, ...]`` of one video.
            indexed (bool): the features went through :meth:`index_video`.
                Defaults to True.

        Returns:
            dict: ``frame_similarity`` ``[Tq', Tt']``, ``comparator_map``
            (``[Hq, Ht]`` in [-1, 1], or None) and ``score`` (0-dim
            tensor, the ``video_similarity`` score of the pair).
        """
        score = self.video_similarity([query], [target], indexed=indexed)[0, 0]
        if not indexed:
            query, target = self.index_video(query), self.index_video(target)
        q, t = (
            F.normalize(
                x.float().reshape(x.shape[0], -1, x.shape[-1]).mean(1), dim=-1)
            for x in (query, target))
        return dict(
            frame_similarity=q @ t.t(), comparator_map=None, score=score)


def mean_token_descriptor(features: Tensor,
                          mask: Optional[Tensor] = None) -> Tensor:
    """L2-normalised mean of all tokens of a video.

    Args:
        features (Tensor): ``[T, D]`` or ``[T, R, D]`` (any token axes
            between time and ``D``).
        mask (Tensor, optional): bool ``[T]`` valid frames.

    Returns:
        Tensor: float32 ``[D]`` unit vector.
    """
    if features.dim() < 2 or features.shape[0] == 0:
        raise ValueError('expected features [T, ..., D] with T >= 1, got '
                         f'{tuple(features.shape)}')
    feats = features.float()
    if mask is not None:
        if tuple(mask.shape) != (feats.shape[0], ):
            raise ValueError(f'mask must be [{feats.shape[0]}] for features '
                             f'{tuple(features.shape)}, got '
                             f'{tuple(mask.shape)}')
        feats = feats[mask.bool()]
    return F.normalize(feats.reshape(-1, feats.shape[-1]).mean(0), dim=0)


def check_retriever(model, consumer: str = 'the retrieval loop') -> None:
    """Raise one clear error when ``model`` lacks the retrieval interface.

    Args:
        model: The model (unwrapped from DDP).
        consumer (str): Who needs the interface, for the message.

    Raises:
        TypeError: Naming the model's class and every missing method.
    """
    missing: List[str] = [
        name for name in RETRIEVER_METHODS
        if not callable(getattr(model, name, None))
    ]
    if missing:
        raise TypeError(
            f'{type(model).__name__} cannot be evaluated by {consumer}: it '
            f'has no {", ".join(missing)} (the retrieval interface of '
            'hapvr_mm.models.retrievers.BaseRetriever, see docs/mixing.md). '
            "Wrap its backbone in dict(type='FrameRetriever', backbone=..., "
            "similarity='cosine') or implement those methods.")
