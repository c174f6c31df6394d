"""The plugin absorbs known breakages of mmaction2 / mmengine / torch."""
import io
import os
import pickle
import subprocess
import sys
import textwrap

import pytest
import torch

from hapvr_mm import compat


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-c',
                           textwrap.dedent(code)],
                          capture_output=True,
                          text=True,
                          timeout=300)


def test_import_makes_mmaction_models_importable():
    res = run_python("""
        import hapvr_mm, mmaction.models
        from mmaction.models.backbones.resnet import ResNet
        print('OK')
    """)
    assert res.returncode == 0, res.stderr
    assert 'OK' in res.stdout


def test_without_plugin_mmaction_models_is_broken_or_fine():
    # documents the breakage the plugin absorbs: either mmaction2 is fixed
    # upstream (then the patch is a no-op) or the import fails without it.
    res = run_python('import mmaction.models')
    if res.returncode == 0:
        assert not compat.patch_mmaction_drn()
    else:
        assert 'drn' in res.stderr or 'importlib_metadata' in res.stderr


def test_missing_drn_placeholder_raises_clearly():
    import mmaction.models.localizers as loc
    if os.path.isfile(
            os.path.join(os.path.dirname(loc.__file__), 'drn', 'drn.py')):
        pytest.skip('this mmaction2 ships DRN')
    with pytest.raises(ImportError, match='drn'):
        loc.DRN()


def test_importlib_metadata_available():
    import importlib_metadata
    assert hasattr(importlib_metadata, 'distribution')
    assert hasattr(importlib_metadata, 'PackageNotFoundError')


def test_custom_imports_in_any_mmaction_config(tmp_path):
    cfg = tmp_path / 'cfg.py'
    cfg.write_text(
        "custom_imports = dict(imports=['hapvr_mm'], "
        "allow_failed_imports=False)\n"
        "model = dict(type='HAPVR', head=dict(type='SimilarityHead',"
        " dims=8), pseudo_labeler=None)\n")
    res = run_python(f"""
        from mmengine.config import Config
        from mmengine.registry import init_default_scope
        cfg = Config.fromfile({str(cfg)!r})
        init_default_scope('mmaction')
        import mmaction.models
        from mmaction.registry import MODELS
        m = MODELS.build(cfg.model)
        print(type(m).__name__)
    """)
    assert res.returncode == 0, res.stderr
    assert 'HAPVR' in res.stdout


TOY = '''
import sys, torch, hapvr_mm
from torch import nn
from mmengine.model import BaseModel
from mmengine.runner import Runner

class Toy(BaseModel):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 1)
    def forward(self, inputs, data_samples=None, mode='tensor'):
        x = inputs if torch.is_tensor(inputs) else torch.stack(inputs)
        out = self.lin(x)
        return dict(loss=out.pow(2).mean()) if mode == 'loss' else out

class DS(torch.utils.data.Dataset):
    def __len__(self): return 16
    def __getitem__(self, i): return dict(inputs=torch.ones(2) * i)

def run(resume, iters):
    Runner(model=Toy(), work_dir=sys.argv[1], train_dataloader=dict(
        dataset=DS(), sampler=dict(type='DefaultSampler', shuffle=True),
        batch_size=4, collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=False, max_iters=iters),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.01)),
        param_scheduler=[dict(type='LinearLR', start_factor=0.1,
                              by_epoch=False, begin=0, end=2)],
        default_hooks=dict(checkpoint=dict(type='CheckpointHook',
                                           interval=2, by_epoch=False)),
        resume=resume, randomness=dict(seed=0),
        default_scope='mmaction').train()
run(False, 2)
run(True, 4)
print('RESUMED')
'''


def test_runner_resume_with_weights_only_load(tmp_path):
    script = tmp_path / 'toy.py'
    script.write_text(TOY)
    res = subprocess.run([sys.executable,
                          str(script),
                          str(tmp_path / 'wd')],
                         capture_output=True,
                         text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert 'resumed epoch: 0, iter: 2' in res.stdout + res.stderr
    assert 'RESUMED' in res.stdout
    # the checkpoint loads with the weights-only unpickler and the
    # allow-list, which is not in torch's process-wide list
    path = tmp_path / 'wd' / 'iter_4.pth'
    ckpt = compat.load_checkpoint_file(str(path))
    assert ckpt['meta']['iter'] == 4
    if compat.checkpoint_globals_needed():
        with pytest.raises(pickle.UnpicklingError):
            torch.load(path, weights_only=True)


class _Evil:

    def __reduce__(self):
        return (os.system, ('echo pwned', ))


class _EvilGetattr:

    def __reduce__(self):
        from mmengine.logging.history_buffer import HistoryBuffer
        return (getattr, (HistoryBuffer, '__init__'))


def test_weights_only_still_refuses_other_globals(tmp_path):
    path = tmp_path / 'evil.pth'
    torch.save({'x': _Evil()}, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)
    path2 = tmp_path / 'evil2.pth'
    torch.save({'x': _EvilGetattr()}, path2)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path2, weights_only=True)
    with pytest.raises(pickle.UnpicklingError):
        compat.history_buffer_getattr(os, 'system')


def test_weights_only_default_is_not_switched_off(tmp_path):
    buf = io.BytesIO()
    torch.save({'f': print}, buf)
    buf.seek(0)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(buf)


def test_allow_list_is_not_process_wide():
    from mmengine.logging.history_buffer import HistoryBuffer
    listed = torch.serialization.get_safe_globals()
    assert HistoryBuffer not in listed
    assert not any(
        isinstance(g, tuple) and g[0] is compat.history_buffer_getattr
        for g in listed)
    with compat.checkpoint_globals_allowed():
        assert HistoryBuffer in torch.serialization.get_safe_globals()
    assert HistoryBuffer not in torch.serialization.get_safe_globals()


def test_mmengine_loader_applies_the_allow_list(tmp_path):
    from mmengine.logging.history_buffer import HistoryBuffer
    from mmengine.runner.checkpoint import _load_checkpoint
    path = tmp_path / 'hub.pth'
    buf = HistoryBuffer()
    buf.update(1.0)
    torch.save({'hub': buf}, path)
    assert isinstance(_load_checkpoint(str(path))['hub'], HistoryBuffer)
    # and removes it again afterwards
    assert HistoryBuffer not in torch.serialization.get_safe_globals()


def test_patches_are_idempotent_and_reported():
    before = compat.status()
    assert set(before) == {p.name for p in compat.PATCHES}
    assert compat.apply_all() == before
    # a second application changes nothing
    assert not compat.patch_importlib_metadata()
    assert not compat.patch_mmaction_drn()
    assert not compat.patch_checkpoint_loader()
    from mmengine.runner.checkpoint import CheckpointLoader
    wrapped = CheckpointLoader.__dict__['load_checkpoint'].__func__
    compat.apply_all()
    assert CheckpointLoader.__dict__['load_checkpoint'].__func__ is wrapped


def test_checkpoint_patch_switches_off(monkeypatch):
    monkeypatch.setattr(compat, '_mmengine_passes_weights_only', lambda: True)
    assert not compat.checkpoint_globals_needed()
    monkeypatch.setattr(compat, '_mmengine_passes_weights_only', lambda: False)
    monkeypatch.setattr(compat, '_torch_loads_weights_only_by_default',
                        lambda: False)
    assert not compat.checkpoint_globals_needed()


def test_drn_patch_switches_off_when_drn_ships(monkeypatch, tmp_path):
    drn = tmp_path / 'models' / 'localizers' / 'drn'
    drn.mkdir(parents=True)
    monkeypatch.setattr(compat, '_mmaction_root', lambda: str(tmp_path))
    assert compat._drn_missing()
    (drn / 'drn.py').write_text('')
    assert not compat._drn_missing()


def test_nothing_registered_with_force_at_import():
    """Registering the checkpoint backend again keeps the first
    registration; a foreign backend under the name is refused, not
    overridden."""
    from mmengine.fileio.backends import registry_utils

    from hapvr_mm.engine.hooks import atomic_checkpoint_hook as ach
    first = registry_utils.backends[ach.ATOMIC_BACKEND]
    assert first is ach.AtomicLocalBackend
    ach.register_atomic_backend()
    assert registry_utils.backends[ach.ATOMIC_BACKEND] is first

    class Foreign:
        pass

    registry_utils.backends[ach.ATOMIC_BACKEND] = Foreign
    try:
        with pytest.raises(KeyError, match='already registered'):
            ach.register_atomic_backend()
        assert registry_utils.backends[ach.ATOMIC_BACKEND] is Foreign
    finally:
        registry_utils.backends[ach.ATOMIC_BACKEND] = first
