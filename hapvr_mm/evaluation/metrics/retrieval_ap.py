"""mmengine metric wrapping the retrieval annotations' AP protocols."""
from collections import OrderedDict
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric

from mmaction.registry import METRICS
from ..annotations import load_annotation

__all__ = ['RetrievalAPMetric']


def _to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, 'detach'):  # torch.Tensor
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _field(sample: Any, key: str) -> Any:
    if isinstance(sample, Mapping):
        if key not in sample:
            raise ValueError(f'data sample must have key {key!r}, got keys '
                             f'{sorted(sample)}')
        return sample[key]
    if not hasattr(sample, key):
        raise ValueError(f'data sample must have field {key!r}, got '
                         f'{type(sample).__name__}')
    return getattr(sample, key)


@METRICS.register_module()
class RetrievalAPMetric(BaseMetric):
    """mAP / uAP of a retrieval benchmark (FIVR, EVVE, SVD, CC_WEB, JSON).

    Each data sample holds the scores of one query against some targets:
    ``{'query_id': str, 'target_ids': [n] str, 'scores': [n] float}``. A
    query may arrive in several pieces (e.g. one per database shard); the
    pieces are concatenated in the order of the gathered results and the
    annotation's :meth:`evaluate` computes the metrics.

    Args:
        annotation (dict): Annotation config for
            :func:`~hapvr_mm.evaluation.annotations.load_annotation`, e.g.
            ``dict(type='FIVR', ann_file=..., version='5k')``.
        prefix (str, optional): Metric name prefix; defaults to the
            annotation's name (e.g. ``'FIVR-5K'``).
        collect_device (str): Device used to gather results, ``'cpu'`` or
            ``'gpu'``. Defaults to ``'cpu'``.
    """

    default_prefix: Optional[str] = None

    def __init__(self,
                 annotation: Dict[str, Any],
                 prefix: Optional[str] = None,
                 collect_device: str = 'cpu') -> None:
        self.annotation = load_annotation(annotation)
        super().__init__(
            collect_device=collect_device,
            prefix=prefix if prefix is not None else self.annotation.name)

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        """Store the score pieces of a batch.

        Args:
            data_batch (Any): Unused.
            data_samples (Sequence[dict]): Samples with ``query_id`` (str),
                ``target_ids`` (``[n]`` str) and ``scores`` (``[n]`` float,
                array or tensor).
        """
        for sample in data_samples:
            query = str(_field(sample, 'query_id'))
            ids = np.asarray(_field(sample, 'target_ids'))
            scores = _to_numpy(_field(sample, 'scores'))
            if ids.ndim != 1 or scores.ndim != 1 or ids.shape != scores.shape:
                raise ValueError(f'query {query!r}: target_ids and scores '
                                 f'must be 1-D of equal shape [n], got '
                                 f'{ids.shape} and {scores.shape}')
            if scores.dtype.kind not in 'fiu':
                raise ValueError(f'query {query!r}: scores must be numeric, '
                                 f'got dtype {scores.dtype}')
            self.results.append(
                dict(query_id=query, target_ids=ids, scores=scores))

    def compute_metrics(self, results: List[Dict[str,
                                                 Any]]) -> Dict[str, float]:
        """Merge the pieces per query and evaluate.

        Args:
            results (list[dict]): Gathered outputs of :meth:`process`.

        Returns:
            dict[str, float]: The annotation's metrics.
        """
        pieces: Dict[str, List[Dict[str, Any]]] = OrderedDict()
        for item in results:
            pieces.setdefault(item['query_id'], []).append(item)
        scores = {}
        for query, parts in pieces.items():
            if len(parts) == 1:
                scores[query] = (parts[0]['target_ids'], parts[0]['scores'])
            else:
                scores[query] = (np.concatenate([
                    np.asarray(p['target_ids']).astype(str) for p in parts
                ]), np.concatenate([p['scores'] for p in parts]))
        return self.annotation.evaluate(scores)
