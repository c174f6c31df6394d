"""Former location of the annotation base module.

Only :func:`read_id_list` is kept here, for ``tools/extract_features.py``;
import it from :mod:`hapvr_mm.datasets.annotations` or
:mod:`hapvr_mm.evaluation.annotations` instead.
"""
from hapvr_mm.evaluation.annotations.base import read_id_list

__all__ = ['read_id_list']
