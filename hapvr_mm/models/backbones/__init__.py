"""Frozen frame encoders: the region backbone and the DINO teacher."""
from .dino_vit import DINOViT
from .region_resnet import RegionResNet

__all__ = ['DINOViT', 'RegionResNet']
