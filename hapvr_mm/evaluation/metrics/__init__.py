"""Registered retrieval metrics."""
from .retrieval_ap import RetrievalAPMetric

__all__ = ['RetrievalAPMetric']
