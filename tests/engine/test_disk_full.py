"""A full disk while saving a checkpoint or committing to an index ends
with one line naming the path, the space needed and that rerunning
resumes; the previous checkpoint and the committed videos stay intact."""
import errno
import os
import os.path as osp
import sys

import h5py
import numpy as np
import pytest
import torch

from hapvr_mm.engine.hooks import atomic_checkpoint_hook as ach
from hapvr_mm.search.index_file import (FeatureFileWriter, IndexWriter,
                                        VideoIndex)
from hapvr_mm.utils import DiskFullError, disk_full_error

sys.path.insert(
    0,
    osp.join(
        osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'tools'))
from _cli import run_tool  # noqa: E402  (the tools' exit helper)


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_checkpoint_write_on_full_disk(tmp_path, monkeypatch):
    path = tmp_path / 'iter_2.pth'
    ach.atomic_write_bytes(b'previous', path)
    monkeypatch.setattr(ach.os, 'fsync', _enospc)
    with pytest.raises(DiskFullError) as info:
        ach.atomic_write_bytes(b'x' * 5000, path)
    msg = str(info.value)
    assert str(path) in msg and 'checkpoint' in msg
    assert '4.9 KB needed' in msg and 'rerun' in msg
    assert isinstance(info.value.__cause__, OSError)
    assert path.read_bytes() == b'previous'
    assert os.listdir(tmp_path) == ['iter_2.pth']
    # another OSError stays what it is
    monkeypatch.setattr(
        ach.os, 'fsync', lambda fd:
        (_ for _ in ()).throw(OSError(errno.EIO, 'I/O error')))
    with pytest.raises(OSError, match='I/O error'):
        ach.atomic_write_bytes(b'y', path)


def test_h5py_style_message_is_recognised():
    err = OSError("Can't write data (file write failed: time = x, "
                  'filename = f, errno = 28, error message = '
                  "'No space left on device')")
    assert isinstance(disk_full_error(err, 'f.h5'), DiskFullError)
    assert disk_full_error(OSError('other'), 'f.h5') is None
    assert disk_full_error(ValueError('No space left on device'),
                           'f.h5') is None


@pytest.mark.parametrize('writer_type', ['index', 'plain'])
def test_index_commit_on_full_disk(tmp_path, monkeypatch, writer_type):
    path = str(tmp_path / 'out.h5')
    dims = 4
    feats = torch.ones(3, 2, dims)
    if writer_type == 'index':
        writer = IndexWriter(path, dims, attrs=dict(fps=1.0))
        writer.add('a', feats, torch.ones(dims))
    else:
        writer = FeatureFileWriter(path, dims)
        writer.add('a', feats)
    writer.flush()
    monkeypatch.setattr(h5py.Group, 'create_dataset', _enospc)
    with pytest.raises(DiskFullError) as info:
        if writer_type == 'index':
            writer.add('b', feats, torch.ones(dims))
        else:
            writer.add('b', feats)
    assert path in str(info.value) and '96 B needed' in str(info.value)
    monkeypatch.undo()
    writer.close()
    if writer_type == 'index':
        with VideoIndex(path) as index:
            assert index.ids == ['a']
            np.testing.assert_array_equal(
                index.features(0).numpy(), feats.numpy())
    else:
        with h5py.File(path, 'r') as f:
            assert list(f) == ['a']


def test_run_tool_prints_one_line(capsys):

    def main(argv):
        raise DiskFullError('/w/iter_4.pth', 10, 'checkpoint')

    with pytest.raises(SystemExit) as info:
        run_tool(main, [])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith('error: no space left') and err.count('\n') == 1

    def missing(argv):
        raise KeyError("query 'x.mp4' is not a file")

    with pytest.raises(SystemExit):
        run_tool(missing, [], extra=(KeyError, ))
    assert capsys.readouterr().err == \
        "error: query 'x.mp4' is not a file\n"

    def bug(argv):
        raise TypeError('a bug')

    with pytest.raises(TypeError):  # not a user error: traceback kept
        run_tool(bug, [])
