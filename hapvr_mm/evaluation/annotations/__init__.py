"""Retrieval benchmark annotations and their evaluation protocols.

Each annotation reads a benchmark's ground truth, lists its query and
target ids (what :class:`~hapvr_mm.datasets.RetrievalDataset` loads) and
computes its metrics from the scores (:meth:`RetrievalAnnotation.evaluate`,
docs/method.md section 5).

Every type is registered in :data:`hapvr_mm.registry.ANNOTATIONS` under the
name configs use; build one with ``ANNOTATIONS.build(cfg)`` or
:func:`load_annotation`, e.g.
``load_annotation(dict(type='FIVR', ann_file='fivr.pk', version='5k'))``.
"""
from typing import Any, Mapping, Optional, Union

from ...registry import ANNOTATIONS
from .base import RetrievalAnnotation, ScoreMatrix, read_id_list
from .cc_web import CCWebAnnotation
from .evve import EVVEAnnotation
from .fivr import FIVRAnnotation
from .json_format import JSONAnnotation
from .svd import SVDAnnotation

__all__ = [
    'RetrievalAnnotation', 'FIVRAnnotation', 'EVVEAnnotation', 'SVDAnnotation',
    'CCWebAnnotation', 'JSONAnnotation', 'ANNOTATIONS', 'load_annotation',
    'read_id_list', 'ScoreMatrix'
]


def load_annotation(cfg: Optional[Union[Mapping[str, Any],
                                        RetrievalAnnotation]] = None,
                    **kwargs: Any) -> RetrievalAnnotation:
    """Build an annotation through :data:`ANNOTATIONS`.

    A thin wrapper of ``ANNOTATIONS.build`` that also passes an already
    loaded annotation through unchanged and takes the arguments as keywords.

    Args:
        cfg (dict | RetrievalAnnotation, optional): Config with a ``type``
            key naming a registered annotation (``'FIVR'``, ``'EVVE'``,
            ``'SVD'``, ``'CC_WEB_VIDEO'``, ``'JSON'``); an annotation
            instance is returned unchanged.
        **kwargs: Merged into ``cfg`` (``load_annotation(type='FIVR',
            ann_file=...)`` also works).

    Returns:
        RetrievalAnnotation: The loaded annotation.

    Raises:
        ValueError: No ``type``, an unregistered type (the registered ones
            are listed), or keywords given with an instance.
    """
    if isinstance(cfg, RetrievalAnnotation):
        if kwargs:
            raise ValueError('no keyword arguments allowed with an instance')
        return cfg
    if cfg is not None and not isinstance(cfg, Mapping):
        raise ValueError(f'annotation config must be a dict with "type", got '
                         f'{type(cfg).__name__}')
    args = dict(cfg or {})
    args.update(kwargs)
    return ANNOTATIONS.build(args)
