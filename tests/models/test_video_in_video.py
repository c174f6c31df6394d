"""Tests of video-in-video and the relevance matrix (METHOD section 1)."""
import math

import pytest
import torch
from mmaction.registry import MODELS

from hapvr_mm.models.data_preprocessors.video_in_video import (
    VideoInVideo, relevance_from_hosts, video_in_video, views_to_batch)

T, H, W = 3, 20, 24


def constant_views(B, dtype=torch.uint8):
    """View i has every pixel equal to 20 * (i + 1)."""
    vals = (torch.arange(B) + 1) * 20
    return vals.view(B, 1, 1, 1, 1).expand(B, T, 3, H, W).to(dtype).clone()


def relevance_loop(B, host):
    """Y[a, b] = 1 iff views a and b share a source (set transcription)."""
    sources = [{v} for v in range(B)] + [{v} for v in range(B)]
    for i, j in enumerate(host.tolist()):
        if j >= 0:
            sources[B + i].add(j)
    return torch.tensor([[float(bool(a & b)) for b in sources]
                         for a in sources])


@pytest.mark.parametrize('dtype', [torch.uint8, torch.float32])
def test_paste_location_scale_and_sources(dtype):
    B = 6
    strong = constant_views(B, dtype)
    gen = torch.Generator().manual_seed(0)
    out, host, boxes = video_in_video(
        strong, prob=1.0, generator=gen, return_boxes=True)
    assert out.dtype == dtype and out.shape == strong.shape
    assert torch.equal(strong, constant_views(B, dtype))  # not in place
    lo, hi = math.sqrt(1 - 0.7), math.sqrt(1 - 0.3)
    for i in range(B):
        j = int(host[i])
        assert 0 <= j < B and j != i
        # (float bilinear resizing of a constant is exact up to rounding)
        own = (out[i].float() - 20 * (i + 1)).abs() < 1e-3
        # the pasted view is one filled rectangle, the same in every frame
        # and channel, and everything else is the ORIGINAL host view j
        assert (own == own[0, 0]).all()
        rows = own[0, 0].any(1).nonzero().flatten()
        cols = own[0, 0].any(0).nonzero().flatten()
        top, left = int(rows[0]), int(cols[0])
        h, w = int(rows[-1]) - top + 1, int(cols[-1]) - left + 1
        assert own[0, 0, top:top + h, left:left + w].all()
        assert own[0, 0].sum() == h * w
        assert (out[i][~own].float() == 20 * (j + 1)).all()
        assert boxes[i].tolist() == [top, left, h, w]
        assert lo * H - 1 <= h <= hi * H + 1
        assert lo * W - 1 <= w <= hi * W + 1
        assert abs(h / H - w / W) < 0.1  # the same side ratio


def test_pasted_content_is_resized_view():
    B = 2
    ramp = torch.linspace(0, 255, W).view(1, 1, 1, 1, W).expand(B, T, 3, H,
                                                                W).clone()
    ramp[1] = 0.0
    out, host, boxes = video_in_video(
        ramp,
        prob=1.0,
        generator=torch.Generator().manual_seed(1),
        return_boxes=True)
    top, left, h, w = boxes[0].tolist()
    patch = out[0, :, :, top:top + h, left:left + w]
    assert (patch[..., 1:] - patch[..., :-1] > 0).all()  # still a ramp
    assert patch.min() >= 0 and patch.max() <= 255
    assert patch.max() - patch.min() > 0.7 * 255


def test_probability_none_and_b1():
    strong = constant_views(4)
    out, host = video_in_video(strong, prob=0.0)
    assert torch.equal(out, strong) and (host == -1).all()
    out, host = video_in_video(strong[:1], prob=1.0)
    assert torch.equal(out, strong[:1]) and host.tolist() == [-1]
    big = torch.zeros(400, 1, 1, 4, 4)
    _, host = video_in_video(
        big, prob=0.3, generator=torch.Generator().manual_seed(0))
    assert abs((host >= 0).float().mean().item() - 0.3) < 0.07


def test_seeded_determinism():
    strong = torch.rand(5, T, 3, H, W)
    a = video_in_video(strong, 0.5, generator=torch.Generator().manual_seed(3))
    b = video_in_video(strong, 0.5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_relevance_matrix():
    B = 5
    host = torch.tensor([-1, 0, -1, 1, 0])  # views 1 and 4 into 0, 3 into 1
    Y = relevance_from_hosts(B, host)
    assert Y.shape == (2 * B, 2 * B) and Y.dtype == torch.float32
    torch.testing.assert_close(Y, relevance_loop(B, host))
    assert torch.equal(Y, Y.t())
    assert (Y.diagonal() == 1).all()
    for i in range(B):
        assert Y[i, B + i] == 1  # weak-strong pair of a source
    assert Y[B + 1, 0] == 1 and Y[B + 1, B] == 1  # host weak and strong
    assert Y[B + 1, B + 4] == 1  # two views pasted into the same host
    assert Y[B + 3, B + 1] == 1  # 3 inside 1, and 1 (itself in 0) shares 1
    assert Y[B + 3, 0] == 0  # no chain beyond a shared source
    assert Y[2, B + 2] == 1 and Y[2].sum() == 2
    # no ViV: the block identity pattern
    Y0 = relevance_from_hosts(B, torch.full((B, ), -1))
    eye = torch.eye(B)
    torch.testing.assert_close(
        Y0, torch.cat([torch.cat([eye, eye], 1),
                       torch.cat([eye, eye], 1)], 0))
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        host = torch.randint(-1, B, (B, ), generator=gen)
        host[host == torch.arange(B)] = -1
        torch.testing.assert_close(
            relevance_from_hosts(B, host), relevance_loop(B, host))
    with pytest.raises(ValueError, match=r'\(5,\)'):
        relevance_from_hosts(B, torch.zeros(4, dtype=torch.long))


def test_batch_augment_class():
    B = 4
    viv = MODELS.build(dict(type='VideoInVideo', prob=1.0))
    weak = constant_views(B) + 1
    inputs = torch.cat([weak, constant_views(B)])
    out, Y = viv(inputs, torch.Generator().manual_seed(0))
    assert out.shape == inputs.shape and Y.shape == (2 * B, 2 * B)
    assert torch.equal(out[:B], weak)  # weak views untouched
    assert not torch.equal(out[B:], inputs[B:])
    assert (Y.sum(1) > 2).any()
    strong, host = viv.apply_to_strong(inputs[B:],
                                       torch.Generator().manual_seed(0))
    assert torch.equal(strong, out[B:])  # same draws as __call__
    torch.testing.assert_close(relevance_from_hosts(B, host), Y)
    with pytest.raises(ValueError, match=r'\[2B, T, C, H, W\]'):
        viv(inputs[:3])
    with pytest.raises(ValueError, match='lam_range'):
        VideoInVideo(lam_range=(0.5, 1.0))


def test_views_to_batch():
    x = torch.arange(6).view(3, 2)  # [B=3, 2 views]
    assert views_to_batch(x).tolist() == [0, 2, 4, 1, 3, 5]
    with pytest.raises(ValueError, match=r'\[B, 2, \.\.\.\]'):
        views_to_batch(torch.zeros(3, 3))
