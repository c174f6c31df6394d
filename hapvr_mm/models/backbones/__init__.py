"""Frozen frame encoders of HAP-VR: the DINO teacher.

The student's frame backbone is any mmaction2 2D backbone (the paper's is
mmaction2's ``ResNet``-50) followed by ``RegionPoolingNeck``.
"""
from .dino_vit import DINOViT

__all__ = ['DINOViT']
