"""Finding videos: folders (recursive, by extension), globs, list files."""
import os.path as osp

import pytest

from hapvr_mm.search import collect_videos


def _touch(root, *names):
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b'x')


def test_folder_glob_and_list(tmp_path):
    _touch(tmp_path, 'v/b.mp4', 'v/a.MP4', 'v/sub/c.avi', 'v/notes.txt',
           'v/sub/deep/d.mkv')
    got = collect_videos([str(tmp_path / 'v')])
    assert [vid for vid, _ in got] == ['a.MP4', 'b.mp4', 'sub/c.avi',
                                       'sub/deep/d.mkv']
    assert all(osp.isabs(p) and osp.isfile(p) for _, p in got)
    only = collect_videos([str(tmp_path / 'v')], extensions=['mkv'])
    assert [vid for vid, _ in only] == ['sub/deep/d.mkv']
    globbed = collect_videos([str(tmp_path / 'v' / '**' / '*.avi')])
    assert [p for _, p in globbed] == [str(tmp_path / 'v/sub/c.avi')]
    lst = tmp_path / 'v' / 'list.txt'
    lst.write_text('# my videos\nb.mp4\n\nsub/c.avi\n')
    listed = collect_videos([str(lst)])
    assert listed == [('b.mp4', str(tmp_path / 'v/b.mp4')),
                      ('sub/c.avi', str(tmp_path / 'v/sub/c.avi'))]
    # the same file twice is listed once
    both = collect_videos([str(tmp_path / 'v'), str(lst)])
    assert len(both) == 4


def test_errors_name_the_spec(tmp_path):
    (tmp_path / 'empty').mkdir()
    with pytest.raises(FileNotFoundError, match='empty'):
        collect_videos([str(tmp_path / 'empty')])
    with pytest.raises(FileNotFoundError, match='missing'):
        collect_videos([str(tmp_path / 'missing')])
    with pytest.raises(FileNotFoundError, match=r'\*\.webm'):
        collect_videos([str(tmp_path / '*.webm')])
    _touch(tmp_path, 'x/a.mp4', 'y/a.mp4')
    with pytest.raises(ValueError, match="id 'a.mp4'"):
        collect_videos([str(tmp_path / 'x'), str(tmp_path / 'y')])
