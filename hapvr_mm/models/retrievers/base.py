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

A data sample given to the model carries ``metainfo['video_id']`` (and,
for a video that could not be read, ``metainfo['skip_reason']``; such
videos never reach the model).

:class:`BaseRetriever` is the abstract base that names these methods;
:func:`check_retriever` is what the loops call before they start, so a
model without the interface fails with one error naming what is missing.
"""
from abc import abstractmethod
from typing import List, Optional, Sequence, Union

from mmengine.model import BaseModel
from torch import Tensor

__all__ = ['BaseRetriever', 'check_retriever', 'RETRIEVER_METHODS']

#: methods the retrieval loop calls on the (unwrapped) model
RETRIEVER_METHODS = ('index_video', 'video_similarity', 'test_step')


class BaseRetriever(BaseModel):
    """Abstract base of models that the retrieval loop can evaluate.

    Subclasses implement :meth:`index_video` and :meth:`video_similarity`
    and a ``predict`` mode that puts the indexed features of each video in
    its data sample's ``features`` field (see the module docstring).
    """

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
