"""Every config parses and its model builds (weights are not loaded)."""
import glob
import os.path as osp

import pytest
from mmaction.registry import HOOKS, MODELS
from mmengine.config import Config

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = sorted(
    p for p in glob.glob(
        osp.join(ROOT, 'configs', '**', '*.py'), recursive=True)
    if '_base_' not in p)


def test_configs_found():
    names = [osp.relpath(p, ROOT) for p in CONFIGS]
    assert 'configs/hapvr_fivr.py' in names
    assert 'configs/demo/hapvr_demo.py' in names


@pytest.mark.parametrize(
    'path', CONFIGS, ids=[osp.relpath(p, ROOT) for p in CONFIGS])
def test_config_builds(path):
    cfg = Config.fromfile(path)
    # no weight files on this machine: build with random weights
    neck = cfg.model.get('neck') or {}
    if neck.get('whitening'):
        neck.whitening.pca_file = None
    backbone = cfg.model.get('backbone') or {}
    if backbone.get('init_cfg'):
        backbone.init_cfg = None
    assert cfg.default_scope == 'mmaction'
    assert 'hapvr_mm' in cfg.custom_imports['imports']
    model = MODELS.build(cfg.model)
    if 'mixing' in path:
        return  # each mixing config is run end to end in tests/mixing
    assert type(model).__name__ == cfg.model.type
    if cfg.model.type == 'FrameRetriever':
        # the no-training baselines of the experiment tables: test only
        assert 'train_dataloader' not in cfg and 'optim_wrapper' not in cfg
        assert cfg.test_dataloader.dataset.type == 'RetrievalDataset'
        return
    assert type(model).__name__ == 'HAPVR'
    for hook in cfg.get('custom_hooks', []):
        HOOKS.build(dict(hook))
    if 'train_dataloader' in cfg:
        assert cfg.train_dataloader.dataset.type == 'SSLVideoDataset'
    assert cfg.test_dataloader.dataset.type == 'RetrievalDataset'


def test_paper_recipe_defaults():
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'hapvr_fivr.py'))
    m = cfg.model
    weights = dict(
        loss_nce=1.0,
        loss_frame_ap=6.0,
        loss_video_ap=4.0,
        loss_hard_negative=3.0,
        loss_self=3.0,
        loss_reg=1.0)
    assert set(m.losses) == set(weights)
    for key, w in weights.items():
        assert m.losses[key]['loss_weight'] == w, key
    losses = m.losses
    assert losses.loss_video_ap.sigma == 0.05
    assert losses.loss_video_ap.rho == 0.1
    assert losses.loss_frame_ap.sigma == 0.05
    assert losses.loss_frame_ap.rho == 5.0
    assert losses.loss_nce.temperature == 0.03
    assert m.backbone.type == 'ResNet' and m.backbone.depth == 50
    assert m.frozen_backbone
    assert m.neck.grid == 3 and m.neck.whitening.dims == 512
    assert m.head.f2f_topk_rate == 0.1 and m.head.v2v_topk_rate == 0.03
    assert cfg.train_dataloader.batch_size == 64
    assert cfg.window == 28
    assert cfg.train_cfg.max_iters == 30000
    opt = cfg.optim_wrapper
    assert opt.type == 'AmpOptimWrapper' and opt.dtype == 'float16'
    assert opt.optimizer.lr == 4e-5 and opt.optimizer.weight_decay == 0.01
    warm, cos = cfg.param_scheduler
    assert warm.start_factor == 0.01 and warm.end == 1000
    assert cos.eta_min == pytest.approx(4e-6) and cos.end == 30000
    assert cfg.val_dataloader.dataset.annotation.version == '5k'
    assert 'annotation' not in cfg.val_evaluator  # the dataset's is used


@pytest.mark.parametrize(
    'path', CONFIGS, ids=[osp.relpath(p, ROOT) for p in CONFIGS])
def test_annotation_written_once(path):
    """A benchmark's annotation is given to the dataset only: the
    evaluator uses the dataset's (one load, one key to override)."""
    cfg = Config.fromfile(path)
    for split in ('val', 'test'):
        evaluator = cfg.get(f'{split}_evaluator')
        if evaluator is None:
            continue
        metrics = evaluator if isinstance(evaluator, list) else [evaluator]
        for metric in metrics:
            assert 'annotation' not in metric, (split, metric)
        dataset = cfg[f'{split}_dataloader'].dataset
        assert dataset.annotation.type in ('FIVR', 'EVVE', 'SVD',
                                           'CC_WEB_VIDEO', 'JSON')
