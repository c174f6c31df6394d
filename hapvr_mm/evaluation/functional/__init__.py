"""Pure NumPy retrieval metrics and score statistics (no mmengine)."""
from .average_precision import (average_precision, batch_average_precision,
                                descending_ranks, micro_average_precision,
                                pooled_ranks, sklearn_average_precision,
                                sklearn_micro_average_precision,
                                stable_descending_order,
                                trapezoid_average_precision)
from .score_distribution import (PairScores, check_score_ids,
                                 distribution_tasks, histogram_edges,
                                 histogram_overlap, separation_summary,
                                 split_pair_scores)

__all__ = [
    'average_precision', 'batch_average_precision', 'descending_ranks',
    'micro_average_precision', 'pooled_ranks', 'sklearn_average_precision',
    'sklearn_micro_average_precision', 'stable_descending_order',
    'trapezoid_average_precision', 'PairScores', 'check_score_ids',
    'distribution_tasks', 'histogram_edges', 'histogram_overlap',
    'separation_summary', 'split_pair_scores'
]
