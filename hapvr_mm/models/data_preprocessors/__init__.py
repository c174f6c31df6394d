"""Data preprocessors."""
from .hapvr_preprocessor import (HAPVRDataPreprocessor, pad_videos,
                                 pair_relevance)

__all__ = ['HAPVRDataPreprocessor', 'pad_videos', 'pair_relevance']
