"""Official HAP-VR checkpoints convert into hapvr_mm exactly."""
import argparse
import os.path as osp
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from mmaction.registry import MODELS
from mmengine.runner import load_checkpoint

from hapvr_mm.apis.convert import convert_official_checkpoint

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
D = 16


def official_state(gen):
    """Random weights under the official key names (DDP prefix)."""
    shapes = {
        'attention.transform.weight': (D, D),
        'attention.transform.bias': (D, ),
        'attention.context_vector.weight': (1, D),
        'comparator_module.conv1.weight': (32, 1, 3, 3),
        'comparator_module.conv1.bias': (32, ),
        'comparator_module.conv2.weight': (64, 32, 3, 3),
        'comparator_module.conv2.bias': (64, ),
        'comparator_module.conv3.weight': (128, 64, 3, 3),
        'comparator_module.conv3.bias': (128, ),
        'comparator_module.fconv.weight': (1, 128, 1, 1),
        'comparator_module.fconv.bias': (1, ),
    }
    return {
        'module.' + k: torch.randn(s, generator=gen) * 0.3
        for k, s in shapes.items()
    }


def direct_similarity(state, q, t, f_rate, v_rate):
    """The official network written out from its weights (one pair)."""
    s = {k[len('module.'):]: v for k, v in state.items()}

    def index(x):
        h = torch.tanh(x @ s['attention.transform.weight'].t() +
                       s['attention.transform.bias'])
        return x * torch.sigmoid(h @ s['attention.context_vector.weight'].t())

    q, t = index(q), index(t)
    sim = torch.einsum('iod,jpd->iojp', q, t)
    k = max(round(t.shape[1] * f_rate), 1)
    f2f = sim.topk(k, dim=-1).values.mean(-1).mean(1)  # [Tq, Tt]
    x = f2f[None, None]
    for name, pool in (('conv1', True), ('conv2', True), ('conv3', False)):
        x = F.relu(
            F.conv2d(
                F.pad(x, (1, 1, 1, 1)), s[f'comparator_module.{name}.weight'],
                s[f'comparator_module.{name}.bias']))
        if pool:
            x = F.max_pool2d(x, 2)
    x = F.conv2d(x, s['comparator_module.fconv.weight'],
                 s['comparator_module.fconv.bias'])[0, 0]
    a = F.hardtanh(x)
    kv = max(round(a.shape[1] * v_rate), 1)
    return a.topk(kv, dim=1).values.mean(1).mean()


def write_official(path, state, **args):
    ns = argparse.Namespace(
        dims=D,
        attention=True,
        binarization=False,
        f2f_sim_module='TopKChamfer',
        v2v_sim_module='TopKChamfer',
        f_topk_rate=0.2,
        v_topk_rate=0.1,
        **args)
    torch.save(dict(model=state, args=ns, global_step=30000), path)


def test_convert_and_compare(tmp_path):
    gen = torch.Generator().manual_seed(0)
    state = official_state(gen)
    src, dst = tmp_path / 'official.pth', tmp_path / 'converted.pth'
    write_official(src, state)
    head_cfg, snippet = convert_official_checkpoint(str(src), str(dst))
    assert head_cfg['f2f_mode'] == 'topk_chamfer'
    assert head_cfg['f2f_topk_rate'] == 0.2 and head_cfg['dims'] == D
    ns = {}
    exec(snippet, ns)  # the snippet is a valid config fragment
    head = dict(type='SimilarityHead', **ns['model']['head'])
    model = MODELS.build(dict(type='HAPVR', head=head, pseudo_labeler=None))
    load_checkpoint(model, str(dst), strict=True)
    vids = [
        F.normalize(torch.randn(t, 5, D, generator=gen), dim=-1)
        for t in (12, 20, 9)
    ]
    sims = model.video_similarity(vids, vids)
    for i in range(3):
        for j in range(3):
            ref = direct_similarity(state, vids[i], vids[j], 0.2, 0.1)
            assert torch.allclose(sims[i, j], ref, atol=1e-5), (i, j)


def test_cli_and_errors(tmp_path):
    gen = torch.Generator().manual_seed(1)
    state = official_state(gen)
    src = tmp_path / 'official.pth'
    write_official(src, state)
    res = subprocess.run([
        sys.executable,
        osp.join(ROOT, 'tools', 'convert_official_checkpoint.py'),
        str(src),
        str(tmp_path / 'out.pth'), '--snippet',
        str(tmp_path / 'snippet.py')
    ],
                         capture_output=True,
                         text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr
    assert osp.isfile(tmp_path / 'snippet.py')
    bad = dict(state)
    bad['module.binarization.W'] = torch.zeros(2)
    write_official(tmp_path / 'bad.pth', bad)
    with pytest.raises(ValueError, match='binarization'):
        convert_official_checkpoint(
            str(tmp_path / 'bad.pth'), str(tmp_path / 'x.pth'))
    missing = {k: v for k, v in state.items() if 'fconv' not in k}
    write_official(tmp_path / 'missing.pth', missing)
    with pytest.raises(ValueError, match='fconv'):
        convert_official_checkpoint(
            str(tmp_path / 'missing.pth'), str(tmp_path / 'x.pth'))
    torch.save({'state_dict': {}}, tmp_path / 'other.pth')
    with pytest.raises(ValueError, match="'model'"):
        convert_official_checkpoint(
            str(tmp_path / 'other.pth'), str(tmp_path / 'x.pth'))


class _Evil:

    def __reduce__(self):
        return (print, ('pwned', ))


def test_only_namespace_is_allowed(tmp_path):
    import pickle
    path = tmp_path / 'evil.pth'
    torch.save(dict(model={}, args=_Evil()), path)
    with pytest.raises(pickle.UnpicklingError):
        convert_official_checkpoint(str(path), str(tmp_path / 'x.pth'))
