"""Datasets, annotations and transforms of HAP-VR."""
from .annotations import *  # noqa: F401,F403
from .ssl_video_dataset import SSLVideoDataset, count_skipped, load_skipped
from .transforms import *  # noqa: F401,F403
from .video_io import VideoReadError, read_video_frames, resize_center_crop

__all__ = [
    'SSLVideoDataset', 'count_skipped', 'load_skipped', 'VideoReadError',
    'read_video_frames', 'resize_center_crop'
]
