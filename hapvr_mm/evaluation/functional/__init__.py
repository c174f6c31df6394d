"""Pure NumPy retrieval metrics (no mmengine)."""
from .average_precision import (average_precision, batch_average_precision,
                                micro_average_precision,
                                sklearn_average_precision,
                                trapezoid_average_precision)

__all__ = [
    'average_precision', 'batch_average_precision', 'micro_average_precision',
    'sklearn_average_precision', 'trapezoid_average_precision'
]
