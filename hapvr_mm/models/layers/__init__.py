"""Layers of HAP-VR."""
from .region_attention import RegionAttention

__all__ = ['RegionAttention']
