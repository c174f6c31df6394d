"""Runner loops of hapvr_mm."""
from .retrieval_loop import (BlockShardSampler, VideoRetrievalTestLoop,
                             VideoRetrievalValLoop, format_metrics_table,
                             load_similarities, pieces_to_similarities,
                             shard_blocks, similarities_to_scores,
                             write_similarities)

__all__ = [
    'VideoRetrievalTestLoop', 'VideoRetrievalValLoop', 'BlockShardSampler',
    'shard_blocks', 'format_metrics_table', 'pieces_to_similarities',
    'write_similarities', 'load_similarities', 'similarities_to_scores'
]
