"""Retrieval models."""
from .hapvr import HAPVR, loop_frames

__all__ = ['HAPVR', 'loop_frames']
