"""Data preprocessors and batch augments."""
from .hapvr_preprocessor import HAPVRDataPreprocessor, pad_videos
from .video_in_video import (VideoInVideo, relevance_from_hosts,
                             video_in_video, views_to_batch)

__all__ = [
    'HAPVRDataPreprocessor', 'pad_videos', 'VideoInVideo',
    'relevance_from_hosts', 'video_in_video', 'views_to_batch'
]
