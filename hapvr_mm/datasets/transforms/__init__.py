"""Registered video transforms."""
from .loading import DecodeRetrievalVideo, DecodeSSLSegment

__all__ = ['DecodeRetrievalVideo', 'DecodeSSLSegment']
