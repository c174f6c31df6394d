"""Only mmcv-lite's known-harmless import warning is silenced: a config
whose ``custom_imports`` names a missing module fails visibly."""
import os.path as osp
import sys
import warnings

from launch_utils import TOOLS, TOY_CONFIG, run, toy_env

from hapvr_mm import compat


def test_only_the_mmcv_lite_message_is_ignored():
    compat.ignore_mmcv_lite_warning()
    assert not compat.ignore_mmcv_lite_warning()  # idempotent
    mmcv_message = (
        'Fail to import ``MultiScaleDeformableAttention`` from '
        '``mmcv.ops.multi_scale_deform_attn``, You should install ``mmcv`` '
        'rather than ``mmcv-lite`` if you need this module. ')
    with warnings.catch_warnings(record=True) as seen:
        warnings.resetwarnings()  # no filter but the helper's
        assert compat.ignore_mmcv_lite_warning()
        warnings.warn_explicit(
            mmcv_message,
            UserWarning,
            'transformer.py',
            33,
            module='mmcv.cnn.bricks.transformer')
        warnings.warn_explicit(
            'Fail to import ``no_such_module``',
            UserWarning,
            'x.py',
            1,
            module='some.plugin')
        warnings.warn_explicit(
            'Fail to import ``Other`` from ``mmcv.ops.x``',
            UserWarning,
            'transformer.py',
            40,
            module='mmcv.cnn.bricks.transformer')
    messages = [str(w.message) for w in seen]
    assert messages == [
        'Fail to import ``no_such_module``',
        'Fail to import ``Other`` from ``mmcv.ops.x``'
    ]


def test_failed_custom_imports_is_visible(tmp_path):
    config = tmp_path / 'bad_imports.py'
    config.write_text(
        f'_base_ = [{TOY_CONFIG!r}]\n'
        "custom_imports = dict(imports=['hapvr_mm', 'no_such_module'], "
        'allow_failed_imports=False)\n')
    res = run([
        sys.executable,
        osp.join(TOOLS, 'test.py'),
        str(config), 'none', '--work-dir',
        str(tmp_path / 'w')
    ], toy_env())
    assert res.returncode != 0
    assert 'no_such_module' in res.stdout


def test_tolerated_failed_custom_imports_still_warns(tmp_path):
    config = tmp_path / 'tolerated.py'
    config.write_text(
        f'_base_ = [{TOY_CONFIG!r}]\n'
        "custom_imports = dict(imports=['hapvr_mm', 'no_such_module'], "
        'allow_failed_imports=True)\n')
    code = ('import sys; sys.path.insert(0, "tools"); import test; '
            'from mmengine.config import Config; '
            f'Config.fromfile({str(config)!r})')
    res = run([sys.executable, '-c', code], toy_env())
    assert res.returncode == 0, res.stdout
    assert 'no_such_module failed to import' in res.stdout
