"""The HAPVR model: modes, losses from config, teacher handling."""
import copy

import pytest
import torch
import torch.nn.functional as F
from mmaction.registry import MODELS

LOSSES = dict(
    loss_nce=dict(type='InfoNCELoss', temperature=0.03, loss_weight=1.0),
    loss_frame_ap=dict(type='FrameQuadLinearAPLoss', loss_weight=6.0),
    loss_video_ap=dict(type='QuadLinearAPLoss', loss_weight=4.0),
    loss_hard_negative=dict(type='HardNegativeLoss', loss_weight=3.0),
    loss_self=dict(type='SelfSimilarityLoss', loss_weight=3.0),
    loss_reg=dict(type='SimilarityRegularizationLoss', loss_weight=1.0))

R18 = dict(type='ResNet', depth=18, pretrained=None, out_indices=(0, 1, 2, 3))


def tiny_model(**kw):
    cfg = dict(
        type='HAPVR',
        backbone=R18,
        neck=dict(type='RegionPoolingNeck', kernel_sizes=(14, 7, 3, 2)),
        head=dict(type='SimilarityHead', dims=960),
        losses=copy.deepcopy(LOSSES))
    cfg.update(kw)
    return MODELS.build(cfg)


def feature_model(losses=None, **kw):
    all_losses = copy.deepcopy(LOSSES)
    all_losses.update(losses or {})
    cfg = dict(
        type='HAPVR',
        head=dict(type='SimilarityHead', dims=16),
        losses=all_losses)
    cfg.update(kw)
    return MODELS.build(cfg)


def test_full_model_forward_backward_on_frames():
    torch.manual_seed(0)
    model = tiny_model()
    teacher = MODELS.build(
        dict(type='DINOViT', depth=1, embed_dim=48, num_heads=2))
    model.set_teacher(teacher)
    b, w = 2, 4
    data = dict(
        inputs=[
            torch.randint(0, 255, (2, w, 3, 112, 112), dtype=torch.uint8)
            for _ in range(b)
        ],
        data_samples=None)
    data = model.data_preprocessor(data, training=True)
    assert data['inputs'].shape == (2 * b, w, 3, 112, 112)
    assert data['relevance'].shape == (2 * b, 2 * b)
    losses = model(**data, mode='loss')
    assert set(losses) == {
        'loss_nce', 'loss_frame_ap', 'loss_video_ap', 'loss_hard_negative',
        'loss_self', 'loss_reg'
    }
    total = sum(losses.values())
    total.backward()
    head_grads = [p.grad for p in model.head.parameters()]
    assert all(g is not None for g in head_grads)
    assert all(not p.requires_grad for p in model.backbone.parameters())
    # the teacher is not part of the model
    keys = model.state_dict().keys()
    assert not any('teacher' in k or 'blocks.' in k for k in keys)
    assert all(
        id(p) not in {id(q)
                      for q in teacher.parameters()}
        for p in model.parameters())


def test_losses_combine_with_weights():
    torch.manual_seed(1)
    feats = F.normalize(torch.randn(4, 8, 3, 16), dim=-1)
    y = torch.eye(4)
    y[0, 2] = y[2, 0] = y[1, 3] = y[3, 1] = 1
    emb = torch.randn(4, 8, 12)
    model = feature_model()
    torch.manual_seed(2)
    out = model(feats, relevance=y, teacher_embeddings=emb, mode='loss')
    model2 = feature_model({
        k: dict(v, loss_weight=1.0)
        for k, v in LOSSES.items()
    })
    model2.load_state_dict(model.state_dict())
    out2 = model2(feats, relevance=y, teacher_embeddings=emb, mode='loss')
    weights = {k: v['loss_weight'] for k, v in LOSSES.items()}
    for k in out:
        torch.testing.assert_close(out[k], out2[k] * weights[k])


def test_ablation_without_frame_loss_needs_no_teacher():
    model = feature_model(dict(loss_frame_ap=None, loss_video_ap=None))
    assert not model.needs_teacher
    feats = F.normalize(torch.randn(4, 8, 3, 16), dim=-1)
    out = model(
        feats, relevance=torch.eye(4) + torch.eye(4).roll(2, 0), mode='loss')
    assert 'loss_frame_ap' not in out and 'loss_video_ap' not in out
    zero = feature_model(
        dict(
            loss_frame_ap=dict(type='FrameQuadLinearAPLoss', loss_weight=0.0)))
    assert not zero.needs_teacher


def test_frame_loss_without_teacher_is_a_clear_error():
    model = feature_model()
    feats = F.normalize(torch.randn(2, 8, 3, 16), dim=-1)
    with pytest.raises(RuntimeError, match='PseudoLabelHook'):
        model(feats, relevance=torch.ones(2, 2), mode='loss')


def test_modes_and_errors():
    model = feature_model()
    feats = F.normalize(torch.randn(3, 6, 2, 16), dim=-1)
    idx = model(feats, mode='tensor')
    torch.testing.assert_close(idx, model.index_video(feats))
    mask = torch.ones(3, 6, dtype=torch.bool)
    mask[1, 4:] = False
    preds = model(feats, mode='predict', masks=mask)
    assert preds[1].features.shape == (4, 2, 16)
    with pytest.raises(RuntimeError, match='Invalid mode'):
        model(feats, mode='bogus')
    with pytest.raises(ValueError, match=r'relevance must be \[3, 3\]'):
        model(feats, relevance=torch.eye(2), mode='loss')
    with pytest.raises(ValueError, match='expected features'):
        model.index_video(torch.zeros(2, 3, 4, 5, 16))


def test_video_similarity_lists_masks_and_short_videos():
    torch.manual_seed(3)
    model = feature_model().eval()
    vids = [F.normalize(torch.randn(t, 2, 16), dim=-1) for t in (5, 9, 2)]
    sim = model.video_similarity(vids[:2], vids)
    assert sim.shape == (2, 3)
    assert float(sim.abs().max()) <= 1
    for i in range(2):
        for j in range(3):
            one = model.video_similarity([vids[i]], [vids[j]])
            assert torch.allclose(sim[i, j], one[0, 0], atol=1e-6)
    idx = [model.index_video(v) for v in vids]
    torch.testing.assert_close(
        model.video_similarity(idx[:2], idx, indexed=True), sim)


def test_untrained_weights_warn_and_pca_gets_a_projection(caplog):
    model = MODELS.build(
        dict(
            type='HAPVR',
            backbone=R18,
            neck=dict(
                type='RegionPoolingNeck',
                kernel_sizes=(14, 7, 3, 2),
                whitening=dict(type='PCAWhitening', in_channels=960, dims=32)),
            head=dict(type='SimilarityHead', dims=32),
            pseudo_labeler=None))
    with caplog.at_level('WARNING', logger='mmengine'):
        model.init_weights()
    w = model.neck.whitening.eigenvectors
    torch.testing.assert_close(w.t() @ w, torch.eye(32), atol=1e-5, rtol=0)
    frames = torch.randn(3, 3, 112, 112)
    feats = model.extract_feat(frames)
    assert feats.shape == (3, 9, 32)
    torch.testing.assert_close(feats.norm(dim=-1), torch.ones(3, 9))


def test_video_similarity_full_batch_is_not_copied_and_masks_checked():
    torch.manual_seed(5)
    model = feature_model().eval()
    batch = F.normalize(torch.randn(3, 8, 2, 16), dim=-1)
    # a full batch goes through untouched (no per-video copy) ...
    same, mask = model._as_batch(batch, None)
    assert same is batch and bool(mask.all()) and mask.shape == (3, 8)
    # ... and scores the same as the list of its videos
    torch.testing.assert_close(
        model.video_similarity(batch, batch),
        model.video_similarity(list(batch), list(batch)))
    # a partial mask still drops the padded frames
    m = torch.ones(3, 8, dtype=torch.bool)
    m[1, 5:] = False
    vids = [batch[0], batch[1, :5], batch[2]]
    torch.testing.assert_close(
        model.video_similarity(batch, batch, m, m),
        model.video_similarity(vids, vids))
    with pytest.raises(ValueError, match=r'mask must be \(3, 8\)'):
        model.video_similarity(batch, batch, torch.ones(3, 7, dtype=bool))


@pytest.mark.parametrize('frozen', [True, False])
def test_backbone_frozen_by_default_trainable_on_request(frozen):
    torch.manual_seed(0)
    model = tiny_model(
        frozen_backbone=frozen, losses=dict(loss_nce=dict(type='InfoNCELoss')))
    model.init_weights()
    model.train()
    assert model.backbone.training is not frozen
    assert all(p.requires_grad is not frozen
               for p in model.backbone.parameters())
    before = model.backbone.layer1[0].conv1.conv.weight.detach().clone()
    head_before = model.head.attention.proj.weight.detach().clone()
    optim = torch.optim.SGD([p for p in model.parameters() if p.requires_grad],
                            lr=0.5)
    frames = torch.randn(4, 4, 3, 112, 112)
    rel = torch.eye(4) + torch.eye(4).roll(2, 0)
    loss = sum(model(frames, relevance=rel, mode='loss').values())
    loss.backward()
    optim.step()
    after = model.backbone.layer1[0].conv1.conv.weight
    assert torch.equal(before, after) is frozen
    assert not torch.equal(head_before, model.head.attention.proj.weight)


def test_losses_from_a_list_route_declared_outputs():
    calls = {}

    from hapvr_mm.models.losses import RoutedLoss

    class Probe(RoutedLoss):
        inputs = ('similarity', 'relevance', 'frame_similarity', 'raw_output',
                  'masks')
        default_name = 'loss_probe'

        def _forward(self, sim, rel, frame_sim, raw, masks):
            calls.update(
                sim=sim, rel=rel, frame=frame_sim, raw=raw, masks=masks)
            return sim.mean()

    if 'Probe' not in MODELS.module_dict:
        MODELS.register_module(module=Probe)
    model = MODELS.build(
        dict(
            type='HAPVR',
            head=dict(type='SimilarityHead', dims=16),
            losses=[
                dict(type='Probe', loss_weight=2.0),
                dict(type='SSHNLoss', return_terms=True),
                dict(type='InfoNCELoss', loss_name='loss_contrast')
            ]))
    feats = F.normalize(torch.randn(4, 6, 3, 16), dim=-1)
    rel = torch.eye(4) + torch.eye(4).roll(2, 0)
    out = model(feats, relevance=rel, mode='loss')
    assert list(out) == [
        'loss_probe', 'loss_hard_negative', 'loss_self', 'loss_contrast'
    ]
    torch.testing.assert_close(out['loss_probe'], 2 * calls['sim'].mean())
    assert calls['sim'].shape == (4, 4) and calls['rel'] is rel
    # frame similarities of the 8 relevant pairs only
    assert calls['frame'].shape == (8, 6, 6)
    assert calls['raw'].shape[:2] == (4, 4) and calls['masks'] is None
    assert not model.needs_teacher


def test_loss_config_errors_are_clear():
    head = dict(type='SimilarityHead', dims=16)
    with pytest.raises(ValueError, match="two losses are named 'loss_nce'"):
        MODELS.build(
            dict(
                type='HAPVR',
                head=head,
                losses=[dict(type='InfoNCELoss'),
                        dict(type='InfoNCELoss')]))
    with pytest.raises(ValueError, match="must contain 'loss'"):
        MODELS.build(
            dict(
                type='HAPVR',
                head=head,
                losses=dict(nce=dict(type='InfoNCELoss'))))
    # an output the head does not declare stops the build, naming the
    # loss, the output and why
    with pytest.raises(
            ValueError,
            match=r"loss 'loss_reg' .* consumes 'raw_output'.*"
            'no comparator'):
        MODELS.build(
            dict(
                type='HAPVR',
                head=dict(head, comparator=None),
                losses=dict(
                    loss_reg=dict(type='SimilarityRegularizationLoss'))))
    feats = F.normalize(torch.randn(2, 6, 3, 16), dim=-1)
    bare = MODELS.build(dict(type='HAPVR', head=head))
    with pytest.raises(RuntimeError, match='no losses'):
        bare(feats, relevance=torch.eye(2), mode='loss')
