"""Necks report their output size; HAPVR infers or checks ``head.dims``;
heads declare the outputs they give the losses."""
import pytest
import torch
import torch.nn.functional as F
from mmaction.registry import MODELS

import hapvr_mm  # noqa: F401

BACKBONES = {
    # channels of the pooled maps: 64 + 128 + 256 + 512 and 32 + 96 + 1280
    'resnet18':
    (dict(type='ResNet', depth=18, pretrained=None,
          out_indices=(0, 1, 2, 3)), 960),
    'mobilenetv2':
    (dict(type='MobileNetV2', pretrained=None, out_indices=(2, 4, 7)), 1408),
}


def _hapvr(backbone, neck=None, **head):
    return MODELS.build(
        dict(
            type='HAPVR',
            backbone=backbone,
            neck=neck or dict(type='RegionPoolingNeck', grid=3),
            head=dict(type='SimilarityHead', **head),
            pseudo_labeler=None))


@pytest.mark.parametrize('name', list(BACKBONES))
def test_head_dims_inferred_from_the_backbone(name):
    backbone, dims = BACKBONES[name]
    model = _hapvr(backbone)
    assert model.head.dims == dims == model.feature_dims
    assert model.neck.out_channels is None  # depends on the backbone
    # the built model runs: frames -> tokens of that size -> scores
    frames = torch.randn(1, 2, 3, 64, 64)
    with torch.no_grad():
        feats = model(frames, mode='tensor')
    assert feats.shape[-1] == dims
    # an explicit, right value is honoured; a wrong one names both numbers
    assert _hapvr(backbone, dims=dims).head.dims == dims
    with pytest.raises(ValueError, match=f'head.dims=100 .* {dims}-d'):
        _hapvr(backbone, dims=100)


def test_neck_out_channels_from_whitening_and_projection():
    whiten = dict(type='PCAWhitening', in_channels=960, dims=32)
    neck = MODELS.build(dict(type='RegionPoolingNeck', whitening=whiten))
    assert neck.out_channels == 32
    assert neck.channels_for([64, 128, 256, 512]) == 32
    with pytest.raises(ValueError, match='1408 channels .* 960'):
        neck.channels_for([32, 96, 1280])
    proj = MODELS.build(
        dict(type='RegionPoolingNeck', projection=16, in_channels=960))
    assert proj.out_channels == 16
    picked = MODELS.build(dict(type='RegionPoolingNeck', in_indices=(-1, )))
    assert picked.out_channels is None
    assert picked.channels_for([64, 128, 256, 512]) == 512
    # a whitening neck needs no probe: head.dims comes from it
    model = _hapvr(
        BACKBONES['resnet18'][0],
        neck=dict(type='RegionPoolingNeck', whitening=whiten))
    assert model.head.dims == 32


def test_head_declares_its_outputs():
    head = MODELS.build(dict(type='SimilarityHead', dims=8))
    assert head.outputs == dict(
        similarity='similarity',
        frame_similarity='frame_similarity',
        raw_output='raw',
        raw_mask='raw_mask')
    bare = MODELS.build(dict(type='SimilarityHead', dims=8, comparator=None))
    assert set(bare.outputs) == {'similarity', 'frame_similarity'}
    model = MODELS.build(
        dict(type='HAPVR', head=dict(type='SimilarityHead', dims=8)))
    providers = model.output_providers
    assert providers['raw_output'] == 'head'
    assert providers['frame_positives'] == 'pseudo_labeler'
    assert providers['relevance'] == 'batch'
    # the pseudo labels need a pseudo labeler: refused when building
    with pytest.raises(
            ValueError,
            match=r"loss 'loss_frame' .*"
            r"'frame_positives'.*no pseudo_labeler"):
        MODELS.build(
            dict(
                type='HAPVR',
                head=dict(type='SimilarityHead', dims=8),
                pseudo_labeler=None,
                losses=dict(loss_frame=dict(type='FrameQuadLinearAPLoss'))))
    # routing follows the declaration: the raw output is the head's 'raw'
    seen = {}

    class Probe(torch.nn.Module):
        inputs = ('raw_output', 'frame_similarity')

        def forward(self, raw, frame):
            seen.update(raw=raw, frame=frame)
            return raw.sum() * 0

    model.losses['loss_probe'] = Probe()
    feats = F.normalize(torch.randn(2, 4, 3, 8), dim=-1)
    model(feats, relevance=torch.eye(2), mode='loss')
    out = model.head(
        model.index_video(feats), model.index_video(feats), train=True)
    assert torch.equal(seen['raw'], out['raw'])
    assert torch.equal(seen['frame'], out['frame_similarity'][[0, 1], [0, 1]])
