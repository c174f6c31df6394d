"""Search a collection with any retriever (HAP-VR, FrameRetriever): index
files, global descriptors, shortlists, pair explanations and score
thresholds (docs/search.md)."""
from .compare import (PairExplanation, Segment, best_segment, compare_pair,
                      figure_png, plot_comparison)
from .descriptors import global_descriptor, index_with_descriptor
from .engine import (FeatureStore, MemoryStore, QueryResult, hapvr_scores,
                     resolve_shortlist, search)
from .html_report import (frame_positions, keyframe_thumbnails,
                          write_html_report)
from .index_file import (INDEX_FORMAT, INDEX_VERSION, IndexWriter, VideoIndex,
                         is_index_file, row_key)
from .model_io import (build_search_model, config_from_index, config_from_json,
                       config_to_json, decode_settings, extract_batch,
                       model_device, model_fingerprint, video_loader)
from .queries import Query, embed_files, model_for_index, resolve_queries
from .report import (format_results, json_safe, write_results_csv,
                     write_results_json)
from .shards import ShardedIndex, open_index
from .sources import VIDEO_EXTENSIONS, collect_videos, is_glob
from .thresholds import (annotation_positives, best_f1, pair_labels,
                         read_scores, threshold_table)
from .vector_index import (GlobalIndex, descriptor_fingerprint,
                           faiss_available, global_recall, recall_at_k)

__all__ = [
    'PairExplanation', 'Segment', 'best_segment', 'compare_pair',
    'plot_comparison', 'global_descriptor', 'index_with_descriptor',
    'model_device', 'FeatureStore', 'MemoryStore', 'QueryResult',
    'hapvr_scores', 'resolve_shortlist', 'search', 'INDEX_FORMAT',
    'INDEX_VERSION', 'IndexWriter', 'VideoIndex', 'is_index_file', 'row_key',
    'build_search_model', 'decode_settings', 'extract_batch', 'config_to_json',
    'config_from_json', 'config_from_index', 'model_fingerprint',
    'video_loader', 'Query', 'embed_files', 'model_for_index',
    'resolve_queries', 'format_results', 'json_safe', 'write_results_csv',
    'write_results_json', 'VIDEO_EXTENSIONS', 'collect_videos', 'is_glob',
    'annotation_positives', 'best_f1', 'pair_labels', 'read_scores',
    'threshold_table', 'GlobalIndex', 'descriptor_fingerprint',
    'faiss_available', 'global_recall', 'recall_at_k', 'figure_png',
    'write_html_report', 'keyframe_thumbnails', 'frame_positions',
    'ShardedIndex', 'open_index'
]
