"""Similarity heads."""
from .similarity_head import SimilarityHead

__all__ = ['SimilarityHead']
