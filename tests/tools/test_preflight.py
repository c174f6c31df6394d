"""The check before a run: every missing weight, PCA, data and annotation
path of a config listed at once with the key to set; truncated checkpoints
named; tools/train.py and tools/test.py stop with ``error:`` and the list,
exit status 2, no traceback."""
import os.path as osp

import pytest
import torch
from launch_utils import REPO, TOOLS, TOY_CONFIG, run, toy_env, train_cmd
from mmengine.config import Config

from hapvr_mm.apis.preflight import (PreflightError, check_checkpoint_file,
                                     check_config_files, find_missing_files)

PAPER = osp.join(REPO, 'configs', 'hapvr_fivr.py')
FIVR5K_TEST = osp.join(REPO, 'configs', 'hapvr',
                       'hapvr_r50-pca512_test_fivr5k.py')
VIDEO_TEST = osp.join(REPO, 'configs', 'hapvr',
                      'hapvr_r50-pca512_test_fivr5k_videos.py')


def _keys(missing):
    return {m.key: m.path for m in missing}


def test_paper_config_lists_everything_at_once(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # none of the data exists here
    cfg = Config.fromfile(PAPER)
    keys = _keys(find_missing_files(cfg, 'train'))
    assert keys['train_dataloader.dataset.data_root'] == \
        'data/vcdb/distractors/'
    assert keys['custom_hooks.0.teacher.init_cfg.checkpoint'] == \
        cfg.teacher_checkpoint
    assert keys['val_dataloader.dataset.feature_file'] == cfg.fivr_features
    assert keys['val_dataloader.dataset.annotation.ann_file'] == \
        cfg.fivr_annotation
    assert any(k.endswith('pca_file') for k in keys), keys
    assert any(
        k.startswith('model.') and k.endswith('checkpoint')
        for k in keys), keys
    with pytest.raises(PreflightError) as info:
        check_config_files(cfg, 'train')
    message = str(info.value)
    assert message.startswith(f'{len(keys)} file(s) or folder(s)')
    for key in keys:
        assert key in message
    # the top-level variable that feeds the key is named too
    assert 'the config file sets it from `teacher_checkpoint`' in message
    # a plain exception: library code never exits the process
    assert isinstance(info.value, RuntimeError)
    assert not isinstance(info.value, SystemExit)


def test_no_validate_skips_validation_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = Config.fromfile(PAPER)
    cfg.val_cfg = None
    keys = _keys(find_missing_files(cfg, 'train'))
    assert not any(k.startswith('val_') for k in keys)


def test_test_mode_checks_test_data_not_training(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    keys = _keys(find_missing_files(Config.fromfile(FIVR5K_TEST), 'test'))
    assert 'test_dataloader.dataset.feature_file' in keys
    assert 'test_dataloader.dataset.annotation.ann_file' in keys
    assert not any(k.startswith('train_') for k in keys)
    keys = _keys(find_missing_files(Config.fromfile(VIDEO_TEST), 'test'))
    # the folder part of video_pattern
    pattern = [k for k in keys if k.endswith('video_pattern')]
    assert pattern, keys


def test_existing_files_and_urls_pass(tmp_path):
    root = tmp_path / 'videos'
    root.mkdir()
    ann = tmp_path / 'a.json'
    ann.write_text('{}')
    ckpt = tmp_path / 'w.pth'
    torch.save({'x': torch.zeros(2)}, ckpt)
    cfg = Config(
        dict(
            model=dict(
                backbone=dict(
                    init_cfg=dict(type='Pretrained', checkpoint=str(ckpt))),
                other=dict(
                    init_cfg=dict(
                        type='Pretrained',
                        checkpoint='https://example.org/w.pth'))),
            train_dataloader=dict(
                dataset=dict(data_root=str(root), ann_file='')),
            test_dataloader=dict(
                dataset=dict(
                    annotation=dict(ann_file=str(ann)),
                    video_pattern=str(root) + '/{id}.mp4')),
            load_from=None))
    assert find_missing_files(cfg, 'train') == []
    assert find_missing_files(cfg, 'test') == []
    check_config_files(cfg, 'train')


def test_backbone_pretrained_path(tmp_path):
    cfg = Config(
        dict(
            model=dict(
                backbone=dict(type='ResNet', pretrained='ckpt/r18.pth'),
                other=dict(pretrained=True),
                third=dict(pretrained='torchvision://resnet50'))))
    assert _keys(find_missing_files(cfg, 'test')) == {
        'model.backbone.pretrained': 'ckpt/r18.pth'
    }


def test_relative_ann_file_under_data_root(tmp_path):
    (tmp_path / 'list.txt').write_text('a.mp4\n')
    cfg = Config(
        dict(
            train_dataloader=dict(
                dataset=dict(data_root=str(tmp_path), ann_file='list.txt'))))
    assert find_missing_files(cfg) == []
    cfg.train_dataloader.dataset.ann_file = 'nope.txt'
    assert _keys(find_missing_files(cfg)) == {
        'train_dataloader.dataset.ann_file':
        osp.join(str(tmp_path), 'nope.txt')
    }


@pytest.mark.parametrize('keep', [0, 100, -10])
def test_truncated_checkpoint_named(tmp_path, keep):
    path = tmp_path / 'iter_2.pth'
    torch.save({'state_dict': {'w': torch.randn(64, 64)}}, path)
    check_checkpoint_file(str(path), 'load_from')  # complete: fine
    data = path.read_bytes()
    path.write_bytes(data[:keep] if keep >= 0 else data[:len(data) + keep])
    with pytest.raises(PreflightError, match='iter_2.pth') as info:
        check_checkpoint_file(str(path), 'load_from')
    assert 'load_from' in str(info.value)
    assert 'empty' in str(info.value) or 'truncated' in str(info.value)


def test_truncated_resume_checkpoint(tmp_path):
    work = tmp_path / 'work'
    work.mkdir()
    ckpt = work / 'iter_4.pth'
    torch.save({'a': torch.zeros(100)}, ckpt)
    ckpt.write_bytes(ckpt.read_bytes()[:200])
    (work / 'last_checkpoint').write_text(str(ckpt))
    cfg = Config(dict(resume=True, load_from=None, work_dir=str(work)))
    with pytest.raises(PreflightError, match='iter_4.pth'):
        check_config_files(cfg, 'train')


def test_train_py_stops_with_the_list_and_no_traceback(tmp_path):
    res = run(
        train_cmd(
            str(tmp_path / 'w'), '--cfg-options',
            'load_from=missing/weights.pth',
            'train_dataloader.dataset.data_root=missing/videos'), toy_env())
    assert res.returncode == 2
    assert 'Traceback' not in res.stdout
    assert 'load_from: file' in res.stdout
    assert 'missing/weights.pth' in res.stdout


def test_train_py_resume_from_truncated_file(tmp_path):
    ckpt = tmp_path / 'cut.pth'
    torch.save({'a': torch.zeros(1000)}, ckpt)
    ckpt.write_bytes(ckpt.read_bytes()[:300])
    res = run(train_cmd(str(tmp_path / 'w'), '--resume', str(ckpt)), toy_env())
    assert res.returncode == 2
    assert 'Traceback' not in res.stdout
    assert 'cut.pth' in res.stdout and 'truncated' in res.stdout


def test_test_py_truncated_checkpoint(tmp_path):
    ckpt = tmp_path / 'cut.pth'
    torch.save({'a': torch.zeros(1000)}, ckpt)
    ckpt.write_bytes(ckpt.read_bytes()[:300])
    res = run([
        'python',
        osp.join(TOOLS, 'test.py'), TOY_CONFIG,
        str(ckpt), '--work-dir',
        str(tmp_path / 'w')
    ], toy_env())
    assert res.returncode == 2
    assert 'Traceback' not in res.stdout
    assert 'CHECKPOINT' in res.stdout and 'cut.pth' in res.stdout


def test_test_py_lists_a_missing_checkpoint_with_the_data(tmp_path):
    res = run([
        'python',
        osp.join(TOOLS, 'test.py'), FIVR5K_TEST,
        str(tmp_path / 'nope.pth'), '--work-dir',
        str(tmp_path / 'w')
    ], toy_env())
    assert res.returncode == 2
    assert 'Traceback' not in res.stdout
    assert 'CHECKPOINT (the tools/test.py argument): file' in res.stdout
    assert 'test_dataloader.dataset.feature_file' in res.stdout


def test_train_py_lists_a_missing_resume_file(tmp_path):
    res = run(
        train_cmd(
            str(tmp_path / 'w'), '--resume', str(tmp_path / 'gone.pth'),
            '--cfg-options',
            'train_dataloader.dataset.data_root=missing/videos'), toy_env())
    assert res.returncode == 2
    assert 'Traceback' not in res.stdout
    assert '2 file(s) or folder(s)' in res.stdout
    assert '--resume: file' in res.stdout and 'gone.pth' in res.stdout
