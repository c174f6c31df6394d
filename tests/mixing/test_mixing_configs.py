"""Every example of configs/mixing/ runs on the demo data, as documented.

1. stock mmaction2 backbones (ResNet-18 fine-tuned, MobileNetV2 frozen)
   inside HAP-VR: 2 training iterations, then the demo evaluation;
2. the backbone of mmaction2's own ``tsn_r50`` base config evaluated by
   ``FrameRetriever`` (Chamfer) with ``tools/test.py``;
3. mmaction2's TSN trained with ``QuadLinearAPLoss`` by mmaction2's own
   installed ``tools/train.py``;
4. a plain cosine baseline evaluated with ``tools/test.py``.
"""
import os.path as osp
import re
import sys

import mmaction
import pytest
from conftest import REPO, TOOLS, data_options, run

from hapvr_mm.compat import load_checkpoint_file

MIXING = osp.join(REPO, 'configs', 'mixing')


def metrics_of(log: str) -> dict:
    """The last ``demo/mAP`` and ``demo/uAP`` values printed."""
    found = {}
    for key in ('demo/mAP', 'demo/uAP'):
        values = re.findall(re.escape(key) + r'[:\s|]+([0-9.]+|nan)', log)
        assert values, f'{key} not printed:\n{log[-3000:]}'
        found[key] = float(values[-1])
    return found


@pytest.mark.parametrize('name', [
    'hapvr_resnet18-finetune_demo.py',
    'hapvr_mobilenetv2_demo.py',
])
def test_stock_backbone_in_hapvr_trains_and_evaluates(name, demo_data,
                                                      tmp_path):
    work = str(tmp_path / 'work')
    res = run([
        sys.executable,
        osp.join(TOOLS, 'train.py'),
        osp.join(MIXING, name), '--work-dir', work, '--cfg-options',
        *data_options(demo_data), 'train_cfg.max_iters=2',
        'train_cfg.val_interval=2', 'default_hooks.logger.interval=1',
        'default_hooks.checkpoint.interval=2'
    ])
    assert res.returncode == 0, res.stdout[-5000:]
    assert 'Iter(train) [2/2]' in res.stdout
    for key in ('loss_nce', 'loss_video_ap', 'loss_frame_ap', 'loss_reg'):
        assert key in res.stdout
    metrics = metrics_of(res.stdout)
    assert 0 <= metrics['demo/mAP'] <= 1
    state = load_checkpoint_file(osp.join(work, 'iter_2.pth'))['state_dict']
    assert any(k.startswith('backbone.') for k in state)
    assert state['head.attention.proj.weight'].shape[0] == (960 if 'resnet18'
                                                            in name else 32 +
                                                            96 + 1280)


@pytest.mark.parametrize('name', [
    'retriever_tsn-r50-backbone_chamfer_demo.py',
    'retriever_resnet18_cosine_demo.py',
])
def test_stock_backbone_is_evaluated_by_config_alone(name, demo_data,
                                                     tmp_path):
    res = run([
        sys.executable,
        osp.join(TOOLS, 'test.py'),
        osp.join(MIXING, name), 'none', '--work-dir',
        str(tmp_path / 'work'), '--cfg-options',
        *data_options(demo_data, train=False)
    ])
    assert res.returncode == 0, res.stdout[-5000:]
    metrics = metrics_of(res.stdout)
    assert 0 < metrics['demo/mAP'] <= 1


def test_tsn_trains_with_quadlinear_ap_under_mmaction2_tools(
        demo_data, tmp_path):
    class_list = str(tmp_path / 'classes.txt')
    res = run([
        sys.executable,
        osp.join(TOOLS, 'data', 'retrieval_to_class_list.py'),
        osp.join(demo_data, 'eval', 'annotation.json'),
        osp.join(demo_data, 'eval', 'videos'), '--out', class_list
    ])
    assert res.returncode == 0, res.stdout
    assert 'in 2 classes' in res.stdout
    mm_train = osp.join(
        osp.dirname(mmaction.__file__), '.mim', 'tools', 'train.py')
    assert osp.isfile(mm_train)
    work = str(tmp_path / 'work')
    res = run([
        sys.executable, mm_train,
        osp.join(MIXING, 'tsn_r50_quadlinear-ap_demo.py'), '--work-dir', work,
        '--cfg-options', f'class_list={class_list}',
        f'train_dataloader.dataset.ann_file={class_list}',
        'train_dataloader.batch_size=4', 'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False', 'train_cfg.max_iters=2',
        'default_hooks.checkpoint.interval=2', 'model.cls_head.num_classes=2'
    ])
    assert res.returncode == 0, res.stdout[-5000:]
    losses = [float(v) for v in re.findall(r'loss_cls: ([0-9.]+)', res.stdout)]
    assert len(losses) == 2, res.stdout[-3000:]
    # 1 - mean AP: in [0, 1), and above 0 for a random network
    assert all(0 < v < 1 for v in losses)
    assert osp.isfile(osp.join(work, 'iter_2.pth'))


def test_a_model_without_the_retrieval_interface_gets_one_clear_error(
        demo_data, tmp_path):
    """A stock Recognizer2D in the retrieval loop: the missing methods."""
    config = tmp_path / 'recognizer_on_retrieval.py'
    config.write_text(
        '_base_ = [\n'
        "    'mmaction::_base_/models/tsn_r50.py',\n"
        f"    '{REPO}/configs/_base_/datasets/demo_retrieval.py',\n"
        f"    '{REPO}/configs/_base_/default_runtime.py'\n"
        ']\n'
        'model = dict(backbone=dict(pretrained=None),\n'
        '             cls_head=dict(num_classes=2))\n')
    res = run([
        sys.executable,
        osp.join(TOOLS, 'test.py'),
        str(config), 'none', '--work-dir',
        str(tmp_path / 'work'), '--cfg-options',
        *data_options(demo_data, train=False)
    ])
    assert res.returncode != 0
    assert ('Recognizer2D cannot be evaluated by VideoRetrievalTestLoop: it '
            'has no index_video, video_similarity') in res.stdout
    assert 'set_pred_score' not in res.stdout
