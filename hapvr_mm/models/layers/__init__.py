"""Layers of HAP-VR."""
from .pca_whitening import PCAWhitening
from .region_attention import RegionAttention

__all__ = ['PCAWhitening', 'RegionAttention']
