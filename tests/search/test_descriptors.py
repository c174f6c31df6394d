"""Global descriptors: the attention-weighted mean of region features."""
import torch
import torch.nn.functional as F
from search_utils import make_model, random_videos

from hapvr_mm.search import (global_descriptor, index_with_descriptor,
                             region_weights)


def test_global_descriptor_is_weighted_mean():
    feats = torch.randn(3, 2, 4)
    weights = torch.rand(3, 2, 1)
    manual = (feats * weights).sum((0, 1)) / weights.sum()
    out = global_descriptor(feats, weights)
    assert torch.allclose(out, manual / manual.norm(), atol=1e-6)
    assert abs(float(out.norm()) - 1) < 1e-6
    # a heavier region pulls the descriptor towards itself
    weights2 = weights.clone()
    weights2[0, 0] = 100.0
    pulled = global_descriptor(feats, weights2)
    target = F.normalize(feats[0, 0], dim=0)
    assert float(pulled @ target) > float(out @ target)


def test_region_weights_and_indexing_match_the_head():
    model = make_model()
    video = random_videos(1)[0]
    weights = region_weights(model, video)
    assert weights.shape == (*video.shape[:2], 1)
    indexed, glob = index_with_descriptor(model, video)
    assert torch.allclose(indexed, model.index_video(video))
    assert torch.allclose(indexed, video * weights, atol=1e-6)
    assert torch.allclose(glob, global_descriptor(video, weights))


def test_region_weights_without_a_weights_method():
    """An attention module that only scales (no ``weights``) gives the
    same weights, recovered from its output."""
    model = make_model()
    video = random_videos(1)[0]
    expected = region_weights(model, video)

    class ScaleOnly(torch.nn.Module):

        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x)

    model.head.attention = ScaleOnly(model.head.attention)
    assert torch.allclose(region_weights(model, video), expected, atol=1e-5)
    model.head.attention = None
    assert torch.equal(
        region_weights(model, video), torch.ones(*video.shape[:2], 1))


def test_global_descriptor_shape_errors():
    import pytest
    with pytest.raises(ValueError, match=r'\[T, R, D\]'):
        global_descriptor(torch.randn(3, 4), torch.rand(3, 1))
