"""The paper recipe trains and evaluates on a stand-in accelerator.

``configs/hapvr_fivr.py`` (ResNet-50 + PCA-512, ViT-S/16 teacher, the six
losses, ``AmpOptimWrapper``) and its FIVR-5K evaluation from videos run
through mmengine's runner with every parameter, buffer, optimizer state,
teacher weight and batch on the stand-in device of
``hapvr_mm.utils.device_standin``; only sizes are reduced (2 source videos,
W=4, 112 px, a 2-block teacher) and the demo videos replace the data. Any
operation mixing host and device tensors would raise; a planted
``torch.zeros(n)`` without ``device=`` in a registered loss does.
"""
import copy
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmaction.registry import MODELS
from mmengine.config import Config
from mmengine.runner import Runner

import hapvr_mm
from hapvr_mm.apis.device_check import check_device_placement
from hapvr_mm.utils.device_standin import DevicePlacementError, DeviceStandIn

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PAPER = osp.join(REPO, 'configs', 'hapvr_fivr.py')
PAPER_TEST = osp.join(REPO, 'configs', 'hapvr',
                      'hapvr_r50-pca512_test_fivr5k_videos.py')
LOSSES = ('loss_nce', 'loss_video_ap', 'loss_hard_negative', 'loss_self',
          'loss_reg', 'loss_frame_ap')


@pytest.fixture(scope='module')
def demo(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp('standin_demo')
    subprocess.run([
        sys.executable,
        osp.join(REPO, 'tools', 'data', 'make_demo_dataset.py'), '--out',
        str(out), '--num-train', '4', '--num-queries', '1',
        '--num-distractors', '1', '--corrupt', '0', '--quiet'
    ],
                   check=True,
                   capture_output=True,
                   timeout=300)
    return str(out)


def reduced_sizes(cfg: Config) -> None:
    """The paper model at 112 px: region kernels for 112 x 112 maps."""
    cfg.merge_from_dict({
        'model.backbone.init_cfg': None,
        'model.neck.whitening.pca_file': None,
        'model.neck.kernel_sizes': (14, 7, 3, 2),
    })


def paper_train_cfg(demo: str, work_dir: str) -> Config:
    cfg = Config.fromfile(PAPER)
    reduced_sizes(cfg)
    pipeline = cfg.train_dataloader.dataset.pipeline
    pipeline[0].update(window=4, short_side=128)
    pipeline[1].update(window=4, crop_size=112)
    cfg.merge_from_dict({
        'custom_hooks.0.teacher.init_cfg':
        None,
        'custom_hooks.0.teacher.depth':
        2,
        'train_dataloader.dataset.data_root':
        osp.join(demo, 'train'),
        'train_dataloader.dataset.window':
        4,
        'train_dataloader.batch_size':
        2,
        'train_dataloader.num_workers':
        0,
        'train_dataloader.persistent_workers':
        False,
        # every strong view gets a video-in-video: that path runs too
        'model.data_preprocessor.video_in_video.prob':
        1.0,
        'work_dir':
        work_dir,
    })
    return cfg


def paper_test_cfg(demo: str, work_dir: str) -> Config:
    cfg = Config.fromfile(PAPER_TEST)
    reduced_sizes(cfg)
    ann = dict(type='JSON', ann_file=osp.join(demo, 'eval', 'annotation.json'))
    cfg.test_dataloader.dataset.annotation = ann
    cfg.test_dataloader.dataset.video_pattern = osp.join(
        demo, 'eval', 'videos', '{id}.mp4')
    cfg.test_dataloader.dataset.pipeline[0].update(short_side=128, crop=112)
    cfg.test_dataloader.num_workers = 0
    cfg.test_cfg.update(query_batch_size=1, target_batch_size=2)
    cfg.work_dir = work_dir
    return cfg


def test_paper_recipe_trains_and_evaluates_on_the_standin(demo, tmp_path):
    test_cfg = paper_test_cfg(demo, str(tmp_path / 'test'))
    report = check_device_placement(
        paper_train_cfg(demo, str(tmp_path / 'train')), test_cfg)
    # one iteration of all six losses, finite, under the AMP wrapper
    assert len(report.losses) == 1
    losses = report.losses[0]
    assert set(LOSSES) <= set(losses), losses
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values())
    assert report.autocast_dtypes == [torch.float16]
    assert report.loss_scale == 2.0**16  # dynamic scaler, step not skipped
    # model, teacher and optimizer state all stayed on the device
    assert report.off_device == []
    assert report.teacher_dtype == torch.float16  # fp16 on an accelerator
    # the retrieval loop indexed, scored and evaluated every video
    assert report.metrics['skipped_videos'] == 0
    # ... with the same numbers as on the CPU (same seed, same weights)
    cfg = copy.deepcopy(test_cfg)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cpu_metrics = Runner.from_cfg(cfg).test()
    assert any('mAP' in k for k in cpu_metrics), cpu_metrics
    assert report.metrics == cpu_metrics
    # the video-in-video draws stay on the host by design (CPU generator)
    assert any('video_in_video' in c for c in report.host_creations)


@MODELS.register_module()
class _PlantedHostZerosLoss(torch.nn.Module):
    """A loss with the planted bug: ``torch.zeros(n)`` without ``device=``.

    Args:
        scalar (bool): reduce the host tensor to a 0-dim scalar first (legal
            for CUDA, which then copies it every step; refused by the
            stand-in for code it watches).
    """

    inputs = ('similarity', 'relevance')

    def __init__(self, scalar: bool = False) -> None:
        super().__init__()
        self.scalar = scalar

    def forward(self, similarity, relevance):
        n = similarity.shape[0]
        zeros = torch.zeros(n)  # the planted bug
        if self.scalar:
            return similarity.mean() * 0 + zeros.sum()
        return (similarity.diagonal() * 0 + zeros).mean()


@pytest.mark.parametrize('scalar', [False, True])
def test_planted_host_tensor_in_a_loss_fails_the_check(demo, tmp_path, scalar):
    cfg = paper_train_cfg(demo, str(tmp_path))
    cfg.model.losses['loss_planted'] = dict(
        type='_PlantedHostZerosLoss', scalar=scalar)
    # this test file holds the planted loss: watch it like the package
    standin = DeviceStandIn(watched=[
        osp.dirname(hapvr_mm.__file__),
        osp.dirname(osp.abspath(__file__))
    ])
    with pytest.raises(DevicePlacementError) as err:
        check_device_placement(cfg, standin=standin)
    msg = str(err.value)
    assert 'mixes tensors on the device with host tensors' in msg
    assert 'test_device_check.py' in msg and 'in forward' in msg
    if scalar:
        assert 'zeros = torch.zeros(n)' not in msg  # names the line number
        assert 'made at' in msg


def test_check_devices_tool(demo, tmp_path):
    ann = osp.join(demo, 'eval', 'annotation.json')
    cmd = [
        sys.executable,
        osp.join(REPO, 'tools', 'check_devices.py'),
        osp.join(REPO, 'configs', 'demo',
                 'hapvr_demo.py'), '--test-only', '--work-dir',
        str(tmp_path), '--cfg-options',
        f'test_dataloader.dataset.annotation.ann_file={ann}',
        'test_dataloader.dataset.video_pattern=' +
        osp.join(demo, 'eval', 'videos', '{id}.mp4'),
        'test_dataloader.num_workers=0'
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert 'device placement: clean' in res.stdout
    assert 'evaluation: ' in res.stdout and 'skipped_videos=0' in res.stdout
    bad = subprocess.run(
        cmd[:3] + ['--watch', 'no_such_pkg_x'],
        capture_output=True,
        text=True,
        timeout=600)
    assert bad.returncode == 2 and 'no_such_pkg_x' in bad.stderr
