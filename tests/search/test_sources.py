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
    assert [vid for vid, _ in got
            ] == ['a.MP4', 'b.mp4', 'sub/c.avi', 'sub/deep/d.mkv']
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


def test_an_existing_name_is_never_a_pattern(tmp_path):
    """``Movie [1080p].mp4`` is that file even though, as a glob, it would
    match ``Movie 1.mp4`` instead; a pattern is a pattern only when no file
    of that name exists."""
    names = [
        'Movie [1080p].mp4', 'Movie 1.mp4', 'what?.mp4', 'whatX.mp4',
        'a*b.mp4', 'aXXb.mp4'
    ]
    _touch(tmp_path, *names)
    for name in ('Movie [1080p].mp4', 'what?.mp4', 'a*b.mp4'):
        got = collect_videos([str(tmp_path / name)])
        assert got == [(str(tmp_path / name), str(tmp_path / name))]
    # a folder of such files, and a folder whose own name is one
    got = collect_videos([str(tmp_path)])
    assert [vid for vid, _ in got] == sorted(names)
    _touch(tmp_path, 'clips [2024]/x.mp4', 'clips 2/y.mp4')
    got = collect_videos([str(tmp_path / 'clips [2024]')])
    assert [vid for vid, _ in got] == ['x.mp4']
    # a list file naming such files
    lst = tmp_path / 'list.txt'
    lst.write_text('Movie [1080p].mp4\na*b.mp4\n')
    assert [vid for vid, _ in collect_videos([str(lst)])
            ] == ['Movie [1080p].mp4', 'a*b.mp4']
    # no such file: the same characters are a pattern
    got = collect_videos([str(tmp_path / 'Movie [01].mp4')])
    assert [p for _, p in got] == [str(tmp_path / 'Movie 1.mp4')]
    got = collect_videos([str(tmp_path / 'what[!?].mp4')])
    assert [p for _, p in got] == [str(tmp_path / 'whatX.mp4')]


def test_queries_with_glob_characters(tmp_path, monkeypatch):
    """An index id (or file name) with ``[``, ``*`` or ``?`` is that video
    of the index; an existing file of that name is that file."""
    import torch

    from hapvr_mm.search import IndexWriter, VideoIndex, resolve_queries
    path = tmp_path / 'idx.h5'
    with IndexWriter(str(path), 4, dict(fps=1.0)) as w:
        names = ['Movie [1080p].mp4', 'Movie 1.mp4', 'sub/a*b?.mp4']
        for i, vid in enumerate(names):
            w.add(vid, torch.full((2, 1, 4), float(i)), torch.ones(4),
                  f'/v/{vid}')
    monkeypatch.chdir(tmp_path)  # none of these names exists here
    with VideoIndex(str(path)) as idx:
        got = resolve_queries(['Movie [1080p].mp4', 'a*b?.mp4', 'Movie 1'],
                              idx, None, {})
        assert [(q.name, q.row) for q in got] == [('Movie [1080p].mp4', 0),
                                                  ('sub/a*b?.mp4', 2),
                                                  ('Movie 1.mp4', 1)]
        assert torch.equal(got[0].features, idx.features(0))
        # not in the index and no file: a glob that matches nothing
        with pytest.raises(FileNotFoundError, match=r'Movie \[2\]'):
            resolve_queries(['Movie [2].mp4'], idx, None, {})
