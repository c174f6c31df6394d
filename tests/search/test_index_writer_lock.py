"""Writers of index and plain feature files: one writer at a time (a lock of
their own, whatever HDF5's file locking says) and kills at any point of a
commit resume to the file of an uninterrupted run (subprocesses SIGKILLed by
the library's ``HAPVR_WRITE_FAULT`` fault injection)."""
import os
import os.path as osp
import signal
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

from hapvr_mm.search.index_file import (STAGING_GROUP, FeatureFileWriter,
                                        IndexWriter, WriterLock,
                                        WriterLockedError, lock_path)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
IDS = ['a', 'sub/b', 'c', 'd']

# writes IDS[start:] with one of the writers; 'hold' waits on stdin after
# the first video (a first writer still running)
SCRIPT = textwrap.dedent('''
    import sys, torch
    from hapvr_mm.search.index_file import FeatureFileWriter, IndexWriter
    kind, path, hold = sys.argv[1], sys.argv[2], sys.argv[3] == 'hold'
    ids = sys.argv[4:]
    D = 4
    attrs = dict(fingerprint='abc', fps=1.0, short_side=8, crop=8,
                 max_frames=None)
    w = (IndexWriter(path, D, attrs) if kind == 'index' else
         FeatureFileWriter(path))
    for i, vid in enumerate(ids):
        if vid in w:
            continue
        g = torch.Generator().manual_seed(sum(map(ord, vid)))
        w.add(vid, torch.randn(3 + len(vid), 2, D, generator=g),
              torch.randn(D, generator=g), '/v/' + vid)
        w.flush()
        if hold and i == 0:
            print('ready', flush=True)
            sys.stdin.readline()
    w.close()
    print('done', flush=True)
''')


def _run(kind, path, ids, hold=False, env=None):
    full = dict(os.environ, PYTHONPATH=ROOT, **(env or {}))
    return subprocess.Popen([
        sys.executable, '-c', SCRIPT, kind,
        str(path), 'hold' if hold else 'go', *ids
    ],
                            stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE,
                            text=True,
                            env=full,
                            cwd=ROOT)


def _finish(proc, timeout=120):
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def _contents(path):
    """Every dataset (but the staging group) with its values and dtype."""
    out = {}
    with h5py.File(path, 'r') as h5:

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                out[name] = (obj.dtype.str, obj[()])

        h5.visititems(visit)
    return out


def assert_same_file(a, b):
    ca, cb = _contents(a), _contents(b)
    assert sorted(ca) == sorted(cb)
    for key in ca:
        assert ca[key][0] == cb[key][0], key
        va, vb = ca[key][1], cb[key][1]
        if va.dtype.kind == 'O':
            assert va.tolist() == vb.tolist(), key
        else:
            np.testing.assert_array_equal(va, vb, err_msg=key)


@pytest.fixture(scope='module')
def refs(tmp_path_factory):
    """Uninterrupted runs of both writers."""
    root = tmp_path_factory.mktemp('refs')
    procs = {k: _run(k, root / f'{k}.h5', IDS) for k in ('index', 'plain')}
    for proc in procs.values():
        assert _finish(proc)[0] == 0
    return {k: root / f'{k}.h5' for k in procs}


@pytest.mark.parametrize('kind,hdf5_locking', [('index', 'default'),
                                               ('index', 'FALSE'),
                                               ('plain', 'FALSE')])
def test_second_writer_is_refused(tmp_path, refs, kind, hdf5_locking,
                                  monkeypatch):
    env = {} if hdf5_locking == 'default' else dict(
        HDF5_USE_FILE_LOCKING='FALSE')
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    ref, path = refs[kind], tmp_path / 'idx.h5'
    first = _run(kind, path, IDS, hold=True, env=env)
    try:
        assert first.stdout.readline().strip() == 'ready'
        holder = open(lock_path(str(path))).read()
        assert str(first.pid) in holder
        # a second writer in this process, then in another one
        with pytest.raises(WriterLockedError) as info:
            if kind == 'index':
                IndexWriter(str(path), 4, {})
            else:
                FeatureFileWriter(str(path))
        msg = str(info.value)
        assert f'process {first.pid} on host' in msg and 'Nothing' in msg
        assert 'delete' not in msg
        rc, _, err = _finish(_run(kind, path, IDS, env=env))
        assert rc != 0 and f'process {first.pid}' in err
    finally:
        first.stdin.write('\n')
        first.stdin.flush()
    rc, out, err = _finish(first)
    assert rc == 0 and 'done' in out, err
    assert_same_file(ref, path)
    assert not osp.exists(lock_path(str(path)))  # released and removed


@pytest.mark.parametrize('kind,fault', [('index', 'features@0'),
                                        ('index', 'rows@2'),
                                        ('plain', 'features@0'),
                                        ('plain', 'features@2')])
def test_killed_writer_resumes_to_the_same_file(tmp_path, refs, kind, fault):
    """Killed before the first commit (``@0``) or in the middle of writing
    the third video's datasets (``@2``: an index row's features, global,
    path and frame count written, its id not); the next run ends with the
    file of an uninterrupted run."""
    ref, path = refs[kind], tmp_path / 'out.h5'
    rc, _, err = _finish(
        _run(kind, path, IDS, env=dict(HAPVR_WRITE_FAULT=fault)))
    assert rc == -signal.SIGKILL, err
    n = int(fault.split('@')[1])
    with h5py.File(path, 'r') as h5:  # the half-written video is there
        if kind == 'index':
            assert len(h5['features']) == n + 1
            assert h5['ids'].shape[0] == n
        else:
            assert STAGING_GROUP in h5
    # a killed writer's lock is gone with it: resume at once
    rc, out, err = _finish(_run(kind, path, IDS))
    assert rc == 0 and 'done' in out, err
    assert_same_file(ref, path)


def test_plain_writer_rolls_back_and_counts_committed_only(tmp_path):
    path = tmp_path / 'f.h5'
    with FeatureFileWriter(str(path), fp16=True) as w:
        import torch
        w.add('a', torch.ones(2, 1, 4))
        assert 'a' in w and 'b' not in w and STAGING_GROUP not in w
        with pytest.raises(ValueError, match="'a' is already"):
            w.add('a', torch.ones(2, 1, 4))
    with h5py.File(path, 'a') as h5:  # an interrupted second video
        h5.create_group(STAGING_GROUP).create_dataset(
            'pending', data=np.zeros((3, 1, 4)))
    with FeatureFileWriter(str(path)) as w:
        assert 'pending' not in w
    with h5py.File(path, 'r') as h5:
        assert list(h5) == ['a'] and h5['a'].dtype == np.float16
    with IndexWriter(str(tmp_path / 'i.h5'), 4, {}):
        pass
    with pytest.raises(ValueError, match='is a search index'):
        FeatureFileWriter(str(tmp_path / 'i.h5'))
    assert not osp.exists(lock_path(str(tmp_path / 'i.h5')))


def test_lock_is_exclusive_and_reusable(tmp_path):
    path = str(tmp_path / 'x.h5')
    with WriterLock(path) as lock:
        assert lock.held and osp.isfile(lock_path(path))
        with pytest.raises(WriterLockedError, match=f'process {os.getpid()}'):
            WriterLock(path).acquire()
    assert not osp.exists(lock_path(path))
    with WriterLock(path):  # free again
        pass


@pytest.mark.parametrize('kind', ['--videos', '--ids'])
def test_extract_features_refused_without_traceback(tmp_path, kind):
    """tools/extract_features.py on a file another process writes: a clear
    error naming that process, a non-zero exit, no traceback, no file."""
    out = tmp_path / 'idx.h5'
    (tmp_path / 'ids.txt').write_text('a\n')
    source = str(tmp_path) if kind == '--videos' else str(tmp_path / 'ids.txt')
    env = dict(os.environ, PYTHONPATH=ROOT, HDF5_USE_FILE_LOCKING='FALSE')
    with WriterLock(str(out)):
        proc = subprocess.run([
            sys.executable, 'tools/extract_features.py',
            osp.join('configs', 'demo', 'hapvr_demo.py'), 'none', kind, source,
            '--video-pattern',
            str(tmp_path / '{id}.mp4'), '--out',
            str(out)
        ],
                              cwd=ROOT,
                              env=env,
                              capture_output=True,
                              text=True,
                              timeout=300)
    assert proc.returncode != 0
    assert f'process {os.getpid()} on host' in proc.stderr, proc.stderr
    assert 'Traceback' not in proc.stderr + proc.stdout
    assert not out.exists()
