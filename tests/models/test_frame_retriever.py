"""FrameRetriever, the retrieval interface, the doubling rule."""
import pytest
import torch
import torch.nn.functional as F
from mmaction.registry import MODELS

from hapvr_mm.models.retrievers import (FrameRetriever, check_retriever,
                                        double_frames)

R18 = dict(type='ResNet', depth=18, pretrained=None, out_indices=(0, 1, 2, 3))


def feature_retriever(similarity):
    return MODELS.build(dict(type='FrameRetriever', similarity=similarity))


def videos(seed=0, lengths=(5, 7, 3), regions=4, dims=8):
    gen = torch.Generator().manual_seed(seed)
    return [
        F.normalize(torch.randn(t, regions, dims, generator=gen), dim=-1)
        for t in lengths
    ]


def test_double_frames_rule():
    x = torch.arange(3).view(3, 1)
    assert double_frames(x, 4).flatten().tolist() == [0, 1, 2, 0, 1, 2]
    assert double_frames(x[:1], 4).flatten().tolist() == [0, 0, 0, 0]
    assert double_frames(x[:2], 4).flatten().tolist() == [0, 1, 0, 1]
    assert double_frames(x, 3) is x
    with pytest.raises(ValueError, match='0 frames'):
        double_frames(x[:0], 4)


def test_a_three_frame_video_is_doubled_before_comparison():
    """docs/method.md section 5: 3 frames -> 6 (not looped to 4)."""
    model = MODELS.build(
        dict(type='HAPVR', head=dict(type='SimilarityHead', dims=8)))
    model.eval()
    short, other = videos(1, lengths=(3, 9))
    got = model.video_similarity([short], [other])
    doubled = model.video_similarity([torch.cat([short, short])], [other])
    looped = model.video_similarity([short[[0, 1, 2, 0]]], [other])
    torch.testing.assert_close(got, doubled)
    assert not torch.allclose(got, looped)
    # the same holds on the target side
    torch.testing.assert_close(
        model.video_similarity([other], [short]),
        model.video_similarity([other], [torch.cat([short, short])]))


def test_cosine_is_the_cosine_of_mean_embeddings():
    vids = videos()
    model = feature_retriever('cosine')
    got = model.video_similarity(vids, vids)
    means = torch.stack([F.normalize(v.mean((0, 1)), dim=0) for v in vids])
    torch.testing.assert_close(got, means @ means.t())


def test_chamfer_is_max_then_mean_over_regions_then_frames():
    vids = videos(2)
    model = feature_retriever('chamfer')
    got = model.video_similarity(vids, vids)
    for i, q in enumerate(vids):
        for j, t in enumerate(vids):
            region = torch.einsum('aod,bpd->abop', q, t)  # [Tq, Tt, R, R]
            frame = region.amax(-1).mean(-1)  # [Tq, Tt]
            ref = frame.amax(-1).mean()
            torch.testing.assert_close(got[i, j], ref)


def test_head_similarity_equals_hapvr():
    head = dict(type='SimilarityHead', dims=8)
    torch.manual_seed(0)
    retr = MODELS.build(dict(type='FrameRetriever', similarity=head))
    hapvr = MODELS.build(dict(type='HAPVR', head=head))
    hapvr.load_state_dict(retr.state_dict())
    vids = videos(3, lengths=(6, 9, 4))
    torch.testing.assert_close(
        retr.video_similarity(vids, vids), hapvr.video_similarity(vids, vids))


def test_frames_through_backbone_without_neck_and_predict():
    torch.manual_seed(0)
    model = MODELS.build(
        dict(type='FrameRetriever', backbone=R18, similarity='cosine'))
    model.init_weights()
    frames = torch.rand(2, 3, 3, 64, 64)
    feats = model.extract_feat(frames)
    assert feats.shape == (2, 3, 1, 512)
    mask = torch.tensor([[True, True, True], [True, True, False]])
    samples = model(frames, mode='predict', masks=mask)
    assert samples[1].features.shape == (2, 1, 512)
    with pytest.raises(RuntimeError, match='no losses'):
        model(frames, mode='loss')
    with pytest.raises(ValueError, match='similarity must be'):
        FrameRetriever(similarity='euclid')


def test_check_retriever_names_every_missing_method():
    check_retriever(feature_retriever('cosine'))
    recognizer = MODELS.build(
        dict(
            type='Recognizer2D',
            backbone=dict(type='ResNet', depth=18, pretrained=None),
            cls_head=dict(type='TSNHead', num_classes=3, in_channels=512)))
    with pytest.raises(TypeError) as err:
        check_retriever(recognizer)
    msg = str(err.value)
    assert 'Recognizer2D' in msg
    assert 'index_video' in msg and 'video_similarity' in msg
    assert 'FrameRetriever' in msg


def test_old_top_level_whitening_keys_are_refused():
    """The PCA lives in the neck; the old top-level layout is not mapped."""
    cfg = dict(
        type='HAPVR',
        backbone=R18,
        neck=dict(
            type='RegionPoolingNeck',
            kernel_sizes=(14, 7, 3, 2),
            whitening=dict(type='PCAWhitening', in_channels=960, dims=16)),
        head=dict(type='SimilarityHead', dims=16))
    src = MODELS.build(cfg)
    src.init_weights()
    old = {
        (k[len('neck.'):] if k.startswith('neck.whitening.') else k): v
        for k, v in src.state_dict().items()
    }
    assert 'whitening.eigenvectors' in old
    dst = MODELS.build(cfg)
    with pytest.raises(RuntimeError, match='whitening.eigenvectors'):
        dst.load_state_dict(old)
