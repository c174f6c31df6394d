"""Video-in-video and the relevance matrix (docs/method.md section 1)."""
import math

import pytest
import torch
from mmaction.registry import MODELS

from hapvr_mm.models.data_preprocessors.video_in_video import (
    VideoInVideo, relevance_from_hosts, video_in_video, views_to_batch,
    viv_box)

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
    hi = math.sqrt(1 - 0.3)
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
        assert 1 <= h <= hi * H and 1 <= w <= hi * W


def test_box_is_centred_uniformly_and_clipped():
    """The authors' geometry: centre uniform over the frame, box clipped."""
    gen = torch.Generator().manual_seed(0)
    Hb, Wb, lam = 40, 60, 0.5
    full_h = 2 * (int(Hb * math.sqrt(1 - lam)) // 2)  # 28
    full_w = 2 * (int(Wb * math.sqrt(1 - lam)) // 2)  # 42
    clipped = 0
    centres = []
    for _ in range(3000):
        top, left, h, w = viv_box(Hb, Wb, lam, gen)
        assert 0 <= top and top + h <= Hb and 0 <= left and left + w <= Wb
        # a side is either whole or the box touches that edge
        assert h == full_h or top == 0 or top + h == Hb
        assert w == full_w or left == 0 or left + w == Wb
        clipped += (h < full_h) or (w < full_w)
        # the centre of an unclipped side is the drawn centre
        if h == full_h:
            centres.append(top + full_h // 2)
    # P(no clipping) = P(|c - centre| small) = (1 - 28/40)(1 - 42/60)
    assert abs(1 - clipped / 3000 - (12 / 40) * (18 / 60)) < 0.03
    # unclipped rows have centres in [14, 26): uniform there
    c = torch.tensor(centres, dtype=torch.float)
    assert c.min() == full_h // 2 and c.max() == Hb - full_h // 2
    assert abs(c.mean().item() - (14 + 26) / 2) < 0.3


def expected_pasted_area(size, lam_range=(0.3, 0.7), steps=400):
    """E[pasted area / frame area] of the rule, by enumeration."""
    total = 0.0
    for k in range(steps):
        lam = lam_range[0] + (k + 0.5) / steps * (lam_range[1] - lam_range[0])
        half = int(size * math.sqrt(1 - lam)) // 2
        lens = [min(c + half, size) - max(c - half, 0) for c in range(size)]
        total += (sum(lens) / size / size)**2  # independent rows, cols
    return total / steps


def test_mean_pasted_area_is_about_a_third():
    """A few thousand seeded ViVs: the pasted view covers ~1/3 (not 1/2)."""
    gen = torch.Generator().manual_seed(0)
    S = 32
    strong = torch.zeros(2000, 1, 1, S, S)
    strong[1::2] = 1.0
    _, host, boxes = video_in_video(
        strong, prob=1.0, generator=gen, return_boxes=True)
    area = (boxes[:, 2] * boxes[:, 3]).float() / (S * S)
    expected = expected_pasted_area(S)
    assert abs(expected - 0.33) < 0.02  # the continuous rule gives 0.336
    assert abs(area.mean().item() - expected) < 0.01
    # the paper-size frames give the continuous value 0.336
    gen = torch.Generator().manual_seed(1)
    big = []
    for _ in range(4000):
        lam = 0.3 + 0.4 * float(torch.rand(1, generator=gen))
        _, _, h, w = viv_box(224, 224, lam, gen)
        big.append(h * w / 224**2)
    assert abs(sum(big) / len(big) - 0.336) < 0.01
    # (the old rule, box always inside the frame, gave 0.5)


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
