"""Registered retrieval metrics."""
from .retrieval_ap import (DumpRetrievalResults, RetrievalAPMetric,
                           merge_score_pieces)

__all__ = ['RetrievalAPMetric', 'DumpRetrievalResults', 'merge_score_pieces']
