"""Registries of hapvr_mm that mmaction2 has no equivalent for.

Models, datasets, transforms, metrics, hooks and loops go into mmaction2's
registries (``from mmaction.registry import MODELS``). Benchmark annotations
(ground truth plus evaluation protocol) have no mmaction2 registry, so they
get their own here, :data:`ANNOTATIONS`, filled by
``@ANNOTATIONS.register_module()`` in :mod:`hapvr_mm.evaluation.annotations`
(imported lazily through ``locations`` on the first look-up).
"""
from typing import Any, Mapping, Optional

from mmengine.registry import Registry

__all__ = ['ANNOTATIONS', 'build_annotation']


def build_annotation(cfg: Mapping[str, Any],
                     registry: Registry,
                     default_args: Optional[Mapping[str, Any]] = None) -> Any:
    """Build an annotation from ``dict(type=NAME, **kwargs)``.

    The build function of :data:`ANNOTATIONS`. Unlike mmengine's default it
    does not switch to the current default scope (``mmaction`` in this
    project's configs): annotations exist only in this registry, so the
    look-up is direct and the error for an unknown type lists the
    registered names.

    Args:
        cfg (dict): ``type`` (a registered name or a class) and the
            annotation's arguments (``ann_file``, ...).
        registry (Registry): The registry to look ``type`` up in.
        default_args (dict, optional): Arguments used when ``cfg`` lacks
            them.

    Returns:
        RetrievalAnnotation: The loaded annotation.

    Raises:
        ValueError: ``cfg`` is not a dict, has no ``type`` or names an
            unregistered type.
    """
    if not isinstance(cfg, Mapping):
        raise ValueError('an annotation config must be a dict with "type", '
                         f'got {type(cfg).__name__}')
    args = dict(default_args or {})
    args.update(cfg)
    registry.import_from_location()
    names = sorted(registry.module_dict)
    if 'type' not in args:
        raise ValueError(f'annotation config needs a "type" among {names}, '
                         f'got {args}')
    kind = args.pop('type')
    if isinstance(kind, str):
        cls = registry.get(kind)
        if cls is None:
            raise ValueError(f'unknown annotation type {kind!r}; registered '
                             f'types: {names}')
    elif isinstance(kind, type):
        cls = kind
    else:
        raise ValueError(f'annotation "type" must be a name or a class, got '
                         f'{kind!r}')
    return cls(**args)


#: Benchmark annotations by the ``type`` name configs use (``'FIVR'``,
#: ``'EVVE'``, ``'SVD'``, ``'CC_WEB_VIDEO'``, ``'JSON'``).
ANNOTATIONS = Registry(
    'annotation',
    scope='hapvr_mm',
    build_func=build_annotation,
    locations=['hapvr_mm.evaluation.annotations'])
