"""Datasets, annotations and transforms of HAP-VR."""
from .annotations import *  # noqa: F401,F403
from .retrieval_dataset import RetrievalDataset, retrieval_collate
from .ssl_video_dataset import SSLVideoDataset, count_skipped, load_skipped
from .transforms import *  # noqa: F401,F403
from .video_io import VideoReadError, read_video_frames, resize_center_crop

__all__ = [
    'RetrievalDataset', 'retrieval_collate', 'SSLVideoDataset',
    'count_skipped', 'load_skipped', 'VideoReadError', 'read_video_frames',
    'resize_center_crop'
]
