"""Global descriptors: the retriever's, for HAP-VR the attention-weighted
mean of region features."""
import torch
import torch.nn.functional as F
from search_utils import make_model, random_videos

from hapvr_mm.search import global_descriptor, index_with_descriptor


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


def test_hapvr_descriptor_is_the_attention_weighted_mean():
    """The retriever's default descriptor of HAP-VR's indexed features is
    the attention-weighted mean of the raw region features (the weights
    read here from the model's own attention layer, in the test only)."""
    model = make_model()
    video = random_videos(1)[0]
    weights = model.head.attention.weights(video)
    assert weights.shape == (*video.shape[:2], 1)
    indexed, glob = index_with_descriptor(model, video)
    assert torch.allclose(indexed, model.index_video(video))
    assert torch.allclose(indexed, video * weights, atol=1e-6)
    assert torch.allclose(glob, global_descriptor(video, weights), atol=1e-6)
    assert torch.equal(glob, model.global_descriptor(indexed))


def test_descriptor_without_attention_is_the_plain_mean():
    model = make_model()
    video = random_videos(1)[0]
    model.head.attention = None
    _, glob = index_with_descriptor(model, video)
    assert torch.allclose(
        glob,
        global_descriptor(video, torch.ones(*video.shape[:2], 1)),
        atol=1e-6)
    # a mask leaves frames out
    mask = torch.zeros(video.shape[0], dtype=torch.bool)
    mask[:2] = True
    assert torch.allclose(
        model.global_descriptor(video, mask),
        F.normalize(video[:2].mean((0, 1)), dim=0),
        atol=1e-6)


def test_global_descriptor_shape_errors():
    import pytest
    with pytest.raises(ValueError, match=r'\[T, R, D\]'):
        global_descriptor(torch.randn(3, 4), torch.rand(3, 1))
