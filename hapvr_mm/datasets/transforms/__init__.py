"""Registered video transforms: loading, temporal, frame, views."""
from .frame import (VideoFlip, VideoGaussianBlur, VideoLogoOverlay,
                    VideoRandomResizedCrop, VideoTextOverlay)
from .loading import DecodeRetrievalVideo, DecodeSSLSegment
from .randaugment import VideoRandAugment
from .retrieval import PackRetrievalInputs
from .temporal import (FastForward, MaterializeFrames, RandomTemporalCrop,
                       RandomTemporalTransform, ShuffleDropout, SlowMotion,
                       TemporalPause, TemporalReverse)
from .views import HAPVRViews, PackSSLInputs

__all__ = [
    'VideoFlip', 'VideoGaussianBlur', 'VideoLogoOverlay',
    'VideoRandomResizedCrop', 'VideoTextOverlay', 'DecodeRetrievalVideo',
    'DecodeSSLSegment', 'VideoRandAugment', 'FastForward', 'MaterializeFrames',
    'RandomTemporalCrop', 'RandomTemporalTransform', 'ShuffleDropout',
    'SlowMotion', 'TemporalPause', 'TemporalReverse', 'HAPVRViews',
    'PackSSLInputs', 'PackRetrievalInputs'
]
