"""A new loss is one registered class and one config line.

The loss below is registered here, in the test file, and trained with by
adding ``model.losses.loss_spread`` to the demo config; nothing under
``hapvr_mm/`` knows about it.
"""
import os.path as osp

import torch
from conftest import REPO, data_options
from mmaction.registry import MODELS
from mmengine.config import Config, DictAction
from mmengine.runner import Runner
from torch import Tensor

from hapvr_mm.models.losses import RoutedLoss

CALLS = []


@MODELS.register_module()
class SpreadLoss(RoutedLoss):
    """Pushes negative pairs apart: mean similarity of irrelevant pairs.

    Consumes ``similarity`` and ``relevance`` ``[N, N]``.
    """

    inputs = ('similarity', 'relevance')
    default_name = 'loss_spread'

    def __init__(self, loss_weight: float = 1.0) -> None:
        super().__init__(loss_weight)

    def _forward(self, similarity: Tensor, relevance: Tensor) -> Tensor:
        CALLS.append(tuple(similarity.shape))
        negatives = relevance == 0
        return similarity[negatives].mean()


def test_registered_loss_trains_through_one_config_line(demo_data, tmp_path):
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'demo', 'hapvr_demo.py'))
    cfg.merge_from_dict({
        key: DictAction._parse_iterable(value)
        for key, value in (o.split('=', 1) for o in data_options(demo_data))
    })
    # the one line that adds the loss
    cfg.model.losses.loss_spread = dict(type='SpreadLoss', loss_weight=0.5)
    cfg.work_dir = str(tmp_path / 'work')
    cfg.train_cfg.max_iters = 2
    cfg.train_cfg.val_interval = 100
    cfg.custom_hooks = [
        h for h in cfg.custom_hooks if h.type != 'ValidateAtStartHook'
    ]
    cfg.default_hooks.logger.interval = 1
    runner = Runner.from_cfg(cfg)
    head_before = runner.model.head.attention.proj.weight.detach().clone()
    runner.train()
    assert len(CALLS) == 2 and CALLS[0] == (4, 4)  # 2 videos x 2 views
    log = open(
        osp.join(cfg.work_dir, runner.timestamp,
                 f'{runner.timestamp}.log')).read()
    assert 'loss_spread' in log and 'loss_frame_ap' in log
    assert not torch.equal(head_before,
                           runner.model.head.attention.proj.weight)
