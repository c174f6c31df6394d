"""Runner loops of hapvr_mm and their helpers."""
from .block_shard_sampler import BlockShardSampler, shard_blocks
from .metrics_table import format_metrics_table
from .retrieval_loop import VideoRetrievalTestLoop, VideoRetrievalValLoop
from .similarity_io import (load_score_matrix, load_similarities,
                            pieces_to_matrix, pieces_to_similarities,
                            read_scores, similarities_to_scores,
                            write_score_matrix, write_similarities)

__all__ = [
    'VideoRetrievalTestLoop', 'VideoRetrievalValLoop', 'BlockShardSampler',
    'shard_blocks', 'format_metrics_table', 'pieces_to_similarities',
    'pieces_to_matrix', 'write_similarities', 'load_similarities',
    'read_scores', 'similarities_to_scores', 'write_score_matrix',
    'load_score_matrix'
]
