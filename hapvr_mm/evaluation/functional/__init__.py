"""Pure NumPy retrieval metrics (no mmengine)."""
from .average_precision import (average_precision, batch_average_precision,
                                descending_ranks, micro_average_precision,
                                pooled_ranks, sklearn_average_precision,
                                sklearn_micro_average_precision,
                                stable_descending_order,
                                trapezoid_average_precision)

__all__ = [
    'average_precision', 'batch_average_precision', 'descending_ranks',
    'micro_average_precision', 'pooled_ranks', 'sklearn_average_precision',
    'sklearn_micro_average_precision', 'stable_descending_order',
    'trapezoid_average_precision'
]
