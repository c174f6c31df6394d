"""Retrieval benchmark annotations and their evaluation protocols.

Each annotation reads a benchmark's ground truth, lists its query and
target ids (what :class:`~hapvr_mm.datasets.RetrievalDataset` loads) and
computes its metrics from the scores (:meth:`RetrievalAnnotation.evaluate`,
docs/method.md section 5).

Build one from a config dict with :func:`load_annotation`, e.g.
``load_annotation(dict(type='FIVR', ann_file='fivr.pk', version='5k'))``.
"""
from typing import Any, Callable, Dict, Mapping, Optional, Type, Union

from .base import RetrievalAnnotation, ScoreMatrix, read_id_list
from .cc_web import CCWebAnnotation
from .evve import EVVEAnnotation
from .fivr import FIVRAnnotation
from .json_format import JSONAnnotation
from .svd import SVDAnnotation

__all__ = [
    'RetrievalAnnotation', 'FIVRAnnotation', 'EVVEAnnotation', 'SVDAnnotation',
    'CCWebAnnotation', 'JSONAnnotation', 'ANNOTATIONS', 'register_annotation',
    'load_annotation', 'read_id_list', 'ScoreMatrix'
]

#: Annotation types by the ``type`` name used in configs.
ANNOTATIONS: Dict[str, Type[RetrievalAnnotation]] = {
    'FIVR': FIVRAnnotation,
    'EVVE': EVVEAnnotation,
    'SVD': SVDAnnotation,
    'CC_WEB_VIDEO': CCWebAnnotation,
    'CCWeb': CCWebAnnotation,
    'JSON': JSONAnnotation,
}


def register_annotation(
    name: str
) -> Callable[[Type[RetrievalAnnotation]], Type[RetrievalAnnotation]]:
    """Class decorator adding an annotation type to :data:`ANNOTATIONS`.

    Args:
        name (str): The ``type`` name used in configs.

    Returns:
        Callable: The decorator (returns the class unchanged).
    """

    def wrap(cls: Type[RetrievalAnnotation]) -> Type[RetrievalAnnotation]:
        if not (isinstance(cls, type)
                and issubclass(cls, RetrievalAnnotation)):
            raise ValueError(f'{cls} must subclass RetrievalAnnotation')
        ANNOTATIONS[name] = cls
        return cls

    return wrap


def load_annotation(cfg: Optional[Union[Mapping[str, Any],
                                        RetrievalAnnotation]] = None,
                    **kwargs: Any) -> RetrievalAnnotation:
    """Build an annotation from ``dict(type=..., **args)``.

    Args:
        cfg (dict | RetrievalAnnotation, optional): Config with a ``type``
            key naming an entry of :data:`ANNOTATIONS` (e.g. ``'FIVR'``,
            ``'EVVE'``, ``'SVD'``, ``'CC_WEB_VIDEO'``, ``'JSON'``); an
            annotation instance is returned unchanged.
        **kwargs: Merged into ``cfg`` (``load_annotation(type='FIVR',
            ann_file=...)`` also works).

    Returns:
        RetrievalAnnotation: The loaded annotation.
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
    if 'type' not in args:
        raise ValueError(f'annotation config needs a "type" among '
                         f'{sorted(ANNOTATIONS)}, got {args}')
    kind = args.pop('type')
    if isinstance(kind, type) and issubclass(kind, RetrievalAnnotation):
        return kind(**args)
    if kind not in ANNOTATIONS:
        raise ValueError(f'unknown annotation type {kind!r}; expected one of '
                         f'{sorted(ANNOTATIONS)}')
    return ANNOTATIONS[kind](**args)
