"""Necks: backbone feature maps -> region tokens."""
from .region_pooling import RegionPoolingNeck, grid_kernel_size, region_pooling

__all__ = ['RegionPoolingNeck', 'region_pooling', 'grid_kernel_size']
