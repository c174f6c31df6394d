"""The id lists a retrieval dataset reads from a benchmark's annotation.

The annotations themselves (ground truth and evaluation protocol) live in
:mod:`hapvr_mm.evaluation.annotations`; a dataset only needs to build one
from its config and read which videos are queries and targets
(``annotation.queries``, ``annotation.targets``, ``annotation.all_ids``).
This module gives the dataset side that entry point; ``evaluation`` never
imports ``datasets``.
"""
from hapvr_mm.evaluation.annotations import (ANNOTATIONS, RetrievalAnnotation,
                                             load_annotation, read_id_list)

__all__ = [
    'ANNOTATIONS', 'RetrievalAnnotation', 'load_annotation', 'read_id_list'
]
