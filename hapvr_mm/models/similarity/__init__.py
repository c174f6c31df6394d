"""Similarity aggregations and the video comparator."""
from .chamfer import (AGGREGATIONS, aggregate, frame_similarity,
                      frame_similarity_dense, num_topk, topk_mean)
from .video_comparator import VideoComparator, pool_mask

__all__ = [
    'AGGREGATIONS', 'aggregate', 'frame_similarity', 'frame_similarity_dense',
    'num_topk', 'topk_mean', 'VideoComparator', 'pool_mask'
]
