"""Retrieval models and the retrieval interface."""
from .base import RETRIEVER_METHODS, BaseRetriever, check_retriever
from .frame_retriever import SIMILARITIES, FrameRetriever, double_frames
from .hapvr import HAPVR, build_losses

__all__ = [
    'BaseRetriever', 'check_retriever', 'RETRIEVER_METHODS', 'FrameRetriever',
    'double_frames', 'SIMILARITIES', 'HAPVR', 'build_losses'
]
