"""RegionPoolingNeck: grid pooling of backbone maps into region tokens."""
import math

import pytest
import torch
from mmaction.registry import MODELS

import hapvr_mm  # noqa: F401  (compat fixes before mmaction.models)
from hapvr_mm.models.necks import (RegionPoolingNeck, grid_kernel_size,
                                   region_pooling)

PAPER_KERNELS = (28, 14, 6, 3)

# --------------------------------------------------------------------------
# Independent transcriptions
# --------------------------------------------------------------------------


def loop_region_pooling(stages, kernels=PAPER_KERNELS):
    """Direct loop transcription of the pooling of docs/method.md sec. 2."""
    batch = stages[0].shape[0]
    pooled = []
    for feat, s in zip(stages, kernels):
        stride = math.ceil(s / 2)
        h, w = feat.shape[-2:]
        gh, gw = (h - s) // stride + 1, (w - s) // stride + 1
        out = torch.zeros(batch, feat.shape[1], gh, gw, dtype=feat.dtype)
        for r in range(gh):
            for c in range(gw):
                win = feat[:, :, r * stride:r * stride + s,
                           c * stride:c * stride + s]
                out[:, :, r, c] = win.amax(dim=(-2, -1))
        out = out / out.norm(dim=1, keepdim=True)
        pooled.append(out)
    th, tw = pooled[-1].shape[-2:]
    resized = []
    for p in pooled:
        h, w = p.shape[-2:]
        out = torch.zeros(batch, p.shape[1], th, tw, dtype=p.dtype)
        for r in range(th):
            r0, r1 = (r * h) // th, -((-(r + 1) * h) // th)
            for c in range(tw):
                c0, c1 = (c * w) // tw, -((-(c + 1) * w) // tw)
                out[:, :, r, c] = p[:, :, r0:r1, c0:c1].amax(dim=(-2, -1))
        out = out / out.norm(dim=1, keepdim=True)
        resized.append(out)
    x = torch.cat(resized, dim=1)
    regions = []
    for r in range(th):
        for c in range(tw):
            v = x[:, :, r, c]
            regions.append(v / v.norm(dim=1, keepdim=True))
    return torch.stack(regions, dim=1)


# --------------------------------------------------------------------------
# Pooling maths
# --------------------------------------------------------------------------


@pytest.mark.parametrize('sizes', [(56, 28, 14, 7), (64, 32, 16, 8)])
def test_region_pooling_matches_loop(sizes):
    torch.manual_seed(0)
    chans = (3, 4, 5, 6)
    stages = [
        torch.randn(2, c, s, s, dtype=torch.float64)
        for c, s in zip(chans, sizes)
    ]
    out = region_pooling(stages, PAPER_KERNELS)
    ref = loop_region_pooling(stages)
    assert out.shape == (2, 9, sum(chans))
    torch.testing.assert_close(out, ref)


def test_region_pooling_resnet50_shapes_and_norms():
    stages = [
        torch.rand(1, c, s, s)
        for c, s in zip((256, 512, 1024, 2048), (56, 28, 14, 7))
    ]
    out = region_pooling(stages, PAPER_KERNELS)
    assert out.shape == (1, 9, 3840)
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(1, 9))
    # each stage block of a region is unit norm before the final normalise,
    # so the concatenation of 4 unit blocks has norm 2 -> block norm 1/2
    blocks = out.split([256, 512, 1024, 2048], dim=-1)
    for b in blocks:
        torch.testing.assert_close(b.norm(dim=-1), torch.full((1, 9), 0.5))


def test_region_pooling_bad_inputs():
    with pytest.raises(ValueError, match='kernel'):
        region_pooling([torch.rand(1, 2, 7, 7)], PAPER_KERNELS)
    with pytest.raises(ValueError, match='smaller than its pooling'):
        region_pooling([torch.rand(1, 2, 10, 10)] * 4, PAPER_KERNELS)
    with pytest.raises(ValueError, match=r'\[B=1, C, H, W\]'):
        region_pooling([
            torch.rand(1, 2, 56, 56),
            torch.rand(2, 2, 28, 28),
            torch.rand(1, 2, 14, 14),
            torch.rand(1, 2, 7, 7)
        ], PAPER_KERNELS)


# --------------------------------------------------------------------------
# The neck
# --------------------------------------------------------------------------


def test_grid_rule_gives_the_paper_kernels():
    # ResNet-50 at 224 x 224: stage sides 56, 28, 14, 7, a 3 x 3 grid
    assert [grid_kernel_size(s, 3) for s in (56, 28, 14, 7)] == \
        list(PAPER_KERNELS)
    for size in range(1, 80):
        for grid in (1, 2, 3, 4):
            s = grid_kernel_size(size, grid)
            count = (size - s) // math.ceil(s / 2) + 1
            if size >= grid:
                assert count >= grid
                # the next kernel would give fewer regions
                if s < size:
                    nxt = (size - s - 1) // math.ceil((s + 1) / 2) + 1
                    assert nxt < grid
            else:
                assert s == 1
    with pytest.raises(ValueError, match='grid'):
        grid_kernel_size(7, 0)


def test_neck_on_resnet50_stages_is_the_paper_pooling():
    torch.manual_seed(0)
    stages = tuple(
        torch.randn(2, c, s, s, dtype=torch.float64)
        for c, s in zip((8, 9, 10, 11), (56, 28, 14, 7)))
    neck = RegionPoolingNeck(grid=3)
    torch.testing.assert_close(neck(stages), loop_region_pooling(stages))
    # explicit kernels and in_indices select the same thing
    picked = RegionPoolingNeck(in_indices=(1, 3), kernel_sizes=(14, 3))(stages)
    torch.testing.assert_close(
        picked, loop_region_pooling([stages[1], stages[3]], (14, 3)))


def test_neck_single_map_any_size_and_bad_indices():
    neck = RegionPoolingNeck(grid=2)
    # square windows sized on the short side (kernel 3, stride 2): the long
    # side holds (9 - 3) // 2 + 1 = 4 of them, the short side 2
    out = neck(torch.rand(3, 16, 9, 5))
    assert out.shape == (3, 8, 16)
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(3, 8))
    with pytest.raises(ValueError, match='in_indices'):
        RegionPoolingNeck(in_indices=(4, ))((torch.rand(1, 2, 8, 8), ))
    with pytest.raises(ValueError, match='kernel_sizes'):
        RegionPoolingNeck(kernel_sizes=(3, 3))(torch.rand(1, 2, 8, 8))


def test_neck_whitening_and_projection():
    torch.manual_seed(0)
    maps = (torch.rand(2, 4, 14, 14), torch.rand(2, 6, 7, 7))
    neck = MODELS.build(
        dict(
            type='RegionPoolingNeck',
            whitening=dict(type='PCAWhitening', in_channels=10, dims=5),
            projection=3))
    neck.init_weights()  # random orthonormal PCA (no file), with a warning
    out = neck(maps)
    assert out.shape == (2, 9, 3)
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(2, 9))
    pooled = region_pooling(maps, (6, 3))
    whitened = neck.whitening(pooled)
    ref = torch.nn.functional.normalize(neck.projection(whitened), dim=-1)
    torch.testing.assert_close(out, ref)
    # the projection trains, the whitening does not
    out.sum().backward()
    assert neck.projection.weight.grad is not None
    assert not any(p.requires_grad for p in neck.whitening.parameters())
    with pytest.raises(ValueError, match='in_channels'):
        RegionPoolingNeck(projection=3)


@pytest.mark.parametrize('backbone,channels', [
    (dict(type='ResNet', depth=18, out_indices=(0, 1, 2, 3)), 960),
    (dict(type='MobileNetV2', out_indices=(2, 4, 7)), 32 + 96 + 1280),
])
def test_neck_on_mmaction2_backbones(backbone, channels):
    net = MODELS.build(backbone)
    net.eval()
    neck = RegionPoolingNeck(grid=3)
    with torch.no_grad():
        out = neck(net(torch.rand(2, 3, 112, 112)))
    assert out.shape == (2, 9, channels)
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(2, 9))
