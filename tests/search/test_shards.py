"""Sharded index builds: every rank of ``tools/extract_features.py
--launcher pytorch --out DIR/`` writes its own shard, and a shard set (its
folder or ``manifest.json``) searches like a single-process index; a killed
rank loses only its uncommitted video; shards that do not form one set are
refused with the files at fault named."""
import json
import os
import os.path as osp
import shutil
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch

from hapvr_mm.search import IndexWriter, ShardedIndex, VideoIndex, open_index
from hapvr_mm.search.shards import (MANIFEST_NAME, committed_ids,
                                    global_index_path, list_shards, shard_name,
                                    write_manifest)
from hapvr_mm.utils import load_script

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs', 'demo', 'hapvr_demo.py')
IDS = ['q000', 'db0001', 'db0003', 'db0005', 'db0006']


def _env(**extra):
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1')
    for key in ('HAPVR_WRITE_FAULT', 'HAPVR_WRITE_FAULT_RANK', 'RANK',
                'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT'):
        env.pop(key, None)
    env.update(extra)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _tool(name):
    """A module of ``tools/`` loaded in this process (no start-up cost)."""
    return load_script(osp.join(ROOT, 'tools', f'{name}.py'))


@pytest.fixture(scope='module')
def built(tmp_path_factory):
    """Five demo videos and a corrupt one; their single-process index and
    the shard set of ``torchrun --nproc_per_node 2`` (built once)."""
    root = tmp_path_factory.mktemp('shards')
    subprocess.run([
        sys.executable,
        osp.join(ROOT, 'tools', 'data', 'make_demo_dataset.py'), '--out',
        str(root / 'demo'), '--num-train', '1', '--num-queries', '2',
        '--copies-per-query', '2', '--num-distractors', '3', '--corrupt', '0',
        '--quiet'
    ],
                   check=True,
                   env=_env(),
                   capture_output=True)
    from mmaction.registry import MODELS
    from mmengine.config import Config
    torch.manual_seed(5)
    model = MODELS.build(Config.fromfile(CONFIG).model)
    model.init_weights()
    ckpt = str(root / 'demo.pth')
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, ckpt)
    videos = root / 'videos'
    videos.mkdir()
    for vid in IDS:
        shutil.copy(root / 'demo' / 'eval' / 'videos' / f'{vid}.mp4',
                    videos / f'{vid}.mp4')
    (videos / 'broken.mp4').write_bytes(b'\x00not a video' * 40)
    common = [
        CONFIG, ckpt, '--videos',
        str(videos), '--workers', '0', '--batch-size', '1'
    ]
    one = root / 'one.h5'
    stats = _tool('extract_features').main(common + ['--out', str(one)])
    assert stats['written'] == 5 and stats['skipped'] == 1
    two = root / 'two'
    proc = subprocess.run([
        sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2',
        '--master_port',
        str(_free_port()), 'tools/extract_features.py', *common, '--out',
        f'{two}/', '--launcher', 'pytorch'
    ],
                          cwd=ROOT,
                          env=_env(),
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return dict(
        root=root,
        common=common,
        one=str(one),
        two=str(two),
        log=proc.stdout + proc.stderr)


def _search(index, *extra):
    """tools/search.py (in this process): every video of the 5 as a query,
    all results."""
    out = osp.join(osp.dirname(index.rstrip('/')), 'results')
    return _tool('search').main([
        index, *[f'{v}.mp4' for v in IDS], '--topk', '5', '--include-self',
        '--device', 'cpu', '--out', out, *extra
    ])


def _groups(results):
    """Ids of a ranking, grouped into runs of equal scores (ties)."""
    out = []
    for r in results:
        if out and abs(out[-1][0] - r['score']) <= 1e-6:
            out[-1][1].add(r['id'])
        else:
            out.append([r['score'], {r['id']}])
    return [ids for _, ids in out]


def assert_same_results(a, b):
    assert [q['query'] for q in a] == [q['query'] for q in b]
    for qa, qb in zip(a, b):
        ra, rb = qa['results'], qb['results']
        assert len(ra) == len(rb) == 5
        for x, y in zip(ra, rb):
            assert x['score'] == pytest.approx(y['score'], abs=1e-6)
            assert x['global_score'] == pytest.approx(
                y['global_score'], abs=1e-6)
            assert x['path'] == dict((r['id'], r['path']) for r in rb)[x['id']]
        assert _groups(ra) == _groups(rb)


def test_two_processes_shard_set_searches_like_one_index(built):
    one, two = built['one'], built['two']
    assert [osp.basename(p)
            for p in list_shards(two)] == ['shard-00000.h5', 'shard-00001.h5']
    manifest = json.loads(open(osp.join(two, MANIFEST_NAME)).read())
    assert manifest['format'] == 'hapvr-index-shards'
    assert manifest['version'] == 1 and manifest['videos'] == 5
    assert [s['file'] for s in manifest['shards']
            ] == ['shard-00000.h5', 'shard-00001.h5']
    assert '5 written, 1 skipped' in built['log']
    with VideoIndex(one) as single, open_index(two) as sharded:
        assert isinstance(sharded, ShardedIndex)
        assert manifest['fingerprint'] == single.attrs['fingerprint']
        assert (manifest['fps'], manifest['crop']) == (single.attrs['fps'],
                                                       single.attrs['crop'])
        # each rank wrote its round-robin share, nothing twice
        a, b = (VideoIndex(p) for p in list_shards(two))
        assert [s['videos'] for s in manifest['shards']] == [len(a), len(b)]
        assert len(a) and len(b) and not set(a.ids) & set(b.ids)
        assert sharded.ids == a.ids + b.ids
        a.close(), b.close()
        assert sorted(sharded.ids) == sorted(single.ids)
        assert sharded.skipped == single.skipped == {
            'broken.mp4': sharded.skipped['broken.mp4']
        }
        # the same vectors, read row by row from their shards
        for row, vid in enumerate(sharded.ids):
            r = single.row(vid)
            assert sharded.row(vid) == row
            assert sharded.paths[row] == single.paths[r]
            assert torch.equal(sharded.features(row), single.features(r))
            assert torch.equal(sharded.global_desc[row], single.global_desc[r])
            assert sharded.num_frames[row] == single.num_frames[r]
        assert sharded.find('q000') == sharded.row('q000.mp4')
        with pytest.raises(IndexError, match='out of range'):
            sharded.features(len(sharded))
    # tools/search.py: folder and manifest forms, exhaustive and shortlist
    ref = _search(one)
    assert_same_results(_search(two), ref)
    assert_same_results(_search(osp.join(two, MANIFEST_NAME)), ref)
    ref = _search(one, '--shortlist', '3')
    assert_same_results(_search(two + '/', '--shortlist', '3'), ref)
    # the faiss sidecar of a shard set lives inside its folder
    assert global_index_path(two) == osp.join(two, 'global')
    from hapvr_mm.search import faiss_available
    if faiss_available():
        assert osp.isfile(osp.join(two, 'global.faiss'))
    # compare_videos takes videos of a shard set
    summary = _tool('compare_videos').main([
        'q000.mp4', 'db0005.mp4', '--index', two, '--device', 'cpu', '--out',
        str(built['root'] / 'pair.png')
    ])
    score = {r['id']: r['score'] for r in ref[IDS.index('q000')]['results']}
    assert summary['score'] == pytest.approx(score['db0005.mp4'], abs=1e-5)
    # score_thresholds --index scores an annotation on the set alike
    ann_file = built['root'] / 'ann.json'
    ann_file.write_text(
        json.dumps(
            dict(
                queries=['q000.mp4'],
                database=['db0001.mp4', 'db0003.mp4', 'db0005.mp4'],
                relevance={'q000.mp4': ['db0003.mp4']})))
    from hapvr_mm.datasets.annotations import load_annotation
    ann = load_annotation(dict(type='JSON', ann_file=str(ann_file)))
    thresholds = _tool('score_thresholds')
    by_set = thresholds.index_scores(two, ann)
    by_file = thresholds.index_scores(one, ann)
    assert sorted(by_set) == sorted(by_file) == ['q000.mp4']
    for q in by_file:
        assert by_set[q].keys() == by_file[q].keys() and len(by_set[q]) == 3
        for t in by_file[q]:
            assert by_set[q][t] == pytest.approx(by_file[q][t], abs=1e-6)


def _launch_two(cmd, **env):
    """Two ranks started by hand with torchrun's environment (torchrun's
    agent would stop rank 0 as soon as rank 1 dies)."""
    port = str(_free_port())
    procs = [
        subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=_env(
                RANK=str(r),
                LOCAL_RANK=str(r),
                WORLD_SIZE='2',
                MASTER_ADDR='127.0.0.1',
                MASTER_PORT=port,
                **env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True) for r in range(2)
    ]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    return [p.returncode for p in procs], outs


def test_killed_rank_keeps_the_others_and_resumes(built):
    """Rank 1 is SIGKILLed at its 2nd video (row written, not committed):
    rank 0's shard is complete, rank 1's holds its first video only and the
    set has no manifest; a 2-process rerun, or a 1-process one, completes
    the set to the single-process search results."""
    root, common = built['root'], built['common']
    killed = root / 'killed'
    codes, outs = _launch_two([
        sys.executable, 'tools/extract_features.py', *common, '--out',
        f'{killed}/', '--launcher', 'pytorch'
    ],
                              HAPVR_WRITE_FAULT='rows@1',
                              HAPVR_WRITE_FAULT_RANK='1')
    assert codes[1] == -signal.SIGKILL, outs[1][-2000:]
    assert codes[0] != 0 and 'no manifest yet' in outs[0], outs[0][-2000:]
    assert not (killed / MANIFEST_NAME).exists()
    # round-robin over the sorted folder: broken, db0001, db0003, ...
    todo = ['broken.mp4'] + sorted(f'{v}.mp4' for v in IDS)
    with VideoIndex(str(killed / shard_name(0))) as s0:
        assert s0.ids == [v for v in todo[0::2] if v != 'broken.mp4']
        assert list(s0.skipped) == ['broken.mp4']
    with VideoIndex(str(killed / shard_name(1))) as s1:
        assert s1.ids == todo[1::2][:1]
    import h5py
    with h5py.File(killed / shard_name(1), 'r') as h5:
        assert len(h5['features']) == 2  # the uncommitted 2nd video
    with open_index(str(killed)) as partial:  # a folder without manifest
        assert len(partial) == 3
    once = root / 'once'
    shutil.copytree(killed, once)
    # rerun with 2 processes: completes the set
    codes, outs = _launch_two([
        sys.executable, 'tools/extract_features.py', *common, '--out',
        f'{killed}/', '--launcher', 'pytorch'
    ])
    assert codes == [0, 0], outs[0][-3000:] + outs[1][-3000:]
    assert '3 already in' in outs[0] and '2 written, 1 skipped' in outs[0]
    ref = _search(built['one'])
    assert_same_results(_search(str(killed / MANIFEST_NAME)), ref)
    # resume with 1 process after the 2-process run: rank 1's shard stays
    stats = _tool('extract_features').main(common + ['--out', f'{once}/'])
    assert (stats['present'], stats['written']) == (3, 2)
    manifest = json.loads((once / MANIFEST_NAME).read_text())
    assert [s['videos'] for s in manifest['shards']] == [4, 1]
    assert_same_results(_search(str(once)), ref)
    # nothing left to do but the corrupt video
    stats = _tool('extract_features').main(common + ['--out', f'{once}/'])
    assert (stats['present'], stats['written'], stats['skipped']) == (5, 0, 1)


# --------------------------------------------------------------------------
# shard sets that are not one index (no model needed: tiny synthetic shards)


def _shard(path, ids, dims=4, fp16=False, **attrs):
    base = dict(
        fingerprint='abc', fps=1.0, short_side=128, crop=112, max_frames=None)
    base.update(attrs)
    g = torch.Generator().manual_seed(len(ids) + len(str(path)))
    with IndexWriter(str(path), dims, attrs=base, fp16=fp16) as w:
        for k, vid in enumerate(ids):
            f = torch.randn(k + 2, 3, dims, generator=g)
            w.add(vid, f, torch.nn.functional.normalize(f.mean((0, 1)), dim=0),
                  f'/v/{vid}')
    return str(path)


def test_rows_of_a_set_map_to_their_shards(tmp_path):
    _shard(tmp_path / 'shard-00000.h5', ['a', 'b'])
    _shard(tmp_path / 'shard-00002.h5', ['c'])
    _shard(tmp_path / 'shard-00001.h5', [])  # a rank that got nothing
    with ShardedIndex(str(tmp_path)) as idx:
        assert idx.ids == ['a', 'b', 'c'] and len(idx) == 3
        assert idx.locate(2) == (2, 0) and idx.locate(1) == (0, 1)
        with VideoIndex(str(tmp_path / 'shard-00002.h5')) as c:
            assert torch.equal(idx.features(2), c.features(0))
            assert torch.equal(idx.global_desc[2], c.global_desc[0])
        assert idx.num_frames.tolist() == [2, 3, 2]
        assert idx.fps == 1.0 and idx.attrs['fingerprint'] == 'abc'
        with pytest.raises(KeyError, match='not in the index'):
            idx.row('zzz')
    manifest = write_manifest(str(tmp_path))
    assert [s['videos'] for s in manifest['shards']] == [2, 0, 1]
    assert isinstance(open_index(str(tmp_path / MANIFEST_NAME)), ShardedIndex)
    assert type(open_index(str(tmp_path / 'shard-00000.h5'))) is VideoIndex
    assert committed_ids(str(tmp_path)) == {
        'a': 'shard-00000.h5',
        'b': 'shard-00000.h5',
        'c': 'shard-00002.h5'
    }


@pytest.mark.parametrize('key,value', [('fingerprint', 'other'), ('fps', 2.0),
                                       ('crop', 96), ('max_frames', 8)])
def test_shards_of_another_model_or_decoding_are_refused(tmp_path, key, value):
    _shard(tmp_path / 'shard-00000.h5', ['a'])
    bad = _shard(tmp_path / 'shard-00001.h5', ['b'], **{key: value})
    with pytest.raises(ValueError, match=f'shard {bad} has {key}='):
        open_index(str(tmp_path))
    with pytest.raises(ValueError, match=f'shard {bad} has {key}='):
        write_manifest(str(tmp_path))


def test_other_dims_dtype_duplicates_and_bad_manifests(tmp_path):
    good = _shard(tmp_path / 'shard-00000.h5', ['a', 'b'])
    other = tmp_path / 'dims'
    other.mkdir()
    shutil.copy(good, other / 'shard-00000.h5')
    bad = _shard(other / 'shard-00001.h5', ['c'], dims=6)
    with pytest.raises(ValueError, match=f'shard {bad} has dims=6'):
        open_index(str(other))
    os.unlink(bad)
    bad = _shard(other / 'shard-00001.h5', ['c'], fp16=True)
    with pytest.raises(ValueError, match=f"shard {bad} has dtype='float16'"):
        open_index(str(other))
    # the same id in two shards: both named
    dup = _shard(tmp_path / 'shard-00003.h5', ['x', 'b'])
    with pytest.raises(
            ValueError, match=f"'b' is in two shards, {good} and "
            f'{dup}'):
        open_index(str(tmp_path))
    with pytest.raises(ValueError, match="'b' is in two shards"):
        committed_ids(str(tmp_path))
    os.unlink(dup)
    # a manifest: missing listed shard, a path outside the folder, counts
    write_manifest(str(tmp_path))
    manifest = tmp_path / MANIFEST_NAME
    data = json.loads(manifest.read_text())
    data['shards'].append(dict(file='shard-00007.h5', videos=1))
    manifest.write_text(json.dumps(data))
    missing = str(tmp_path / 'shard-00007.h5')
    with pytest.raises(FileNotFoundError, match=missing):
        open_index(str(manifest))
    data['shards'][-1] = dict(file='../shard-00000.h5', videos=2)
    manifest.write_text(json.dumps(data))
    with pytest.raises(ValueError, match='bad shard entry'):
        open_index(str(manifest))
    data['shards'] = [dict(file='shard-00000.h5', videos=5)]
    manifest.write_text(json.dumps(data))
    with pytest.raises(
            ValueError, match=f'shard {good} holds 2 videos but '
            'the manifest'):
        open_index(str(manifest))
    manifest.write_text('{"format": "something else"}')
    with pytest.raises(ValueError, match='not a shard-set manifest'):
        open_index(str(manifest))
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match='holds no shard'):
        open_index(str(empty))
    with pytest.raises(FileNotFoundError, match='does not exist'):
        open_index(str(tmp_path / 'nothing') + '/')


def test_indexing_into_a_set_of_another_model_is_refused(built, tmp_path):
    """A folder with a shard of another model: the run stops before any
    work, naming that shard, and leaves the set as it was."""
    bad = _shard(tmp_path / 'shard-00004.h5', ['zz'], dims=960)
    write_manifest(str(tmp_path))
    with pytest.raises(SystemExit, match=f'shard {bad} has fingerprint='):
        _tool('extract_features').main(built['common'] +
                                       ['--out', str(tmp_path)])
    assert list_shards(str(tmp_path)) == [bad]
    assert (tmp_path / MANIFEST_NAME).is_file()
    # one run at a time: a set whose lock, or the lock of a shard no rank
    # of this run writes, is held by another process is not touched
    from hapvr_mm.search.index_file import WriterLock
    for held in (str(tmp_path / MANIFEST_NAME), bad):
        with WriterLock(held):
            with pytest.raises(SystemExit, match=f'{held} is being written'):
                _tool('extract_features').main(
                    built['common'] + ['--out', str(tmp_path)])
        assert not (tmp_path / 'shard-00000.h5').exists()


def test_set_dtype_and_storage_sum_the_shards(tmp_path):
    """A set keeps the type of its shards when a run gives no --dtype
    (``shard_set_dtype``), and its storage figures add up its shards'."""
    from hapvr_mm.search.shards import shard_set_dtype
    assert shard_set_dtype(str(tmp_path)) is None
    _shard(tmp_path / 'shard-00000.h5', ['a', 'b'], fp16=False)
    _shard(tmp_path / 'shard-00001.h5', ['c'], fp16=False)
    assert shard_set_dtype(str(tmp_path)) == 'float32'
    with ShardedIndex(str(tmp_path)) as index:
        info = index.storage()
        parts = [s.storage() for s in index.shards]
    assert info['videos'] == 3 and info['dtype'] == 'float32'
    # 2 + 3 + 2 frames of 3 x 4 float32 values
    assert info['feature_bytes'] == 7 * 3 * 4 * 4
    assert info['file_bytes'] == sum(p['file_bytes'] for p in parts)
    assert info['bytes_per_minute'] == pytest.approx(60 * 3 * 4 * 4)


def test_set_global_descriptors_are_read_lazily_across_shards(tmp_path):
    """A set opens without reading any descriptor; rows, slices and chunks
    across shard boundaries equal the shards' descriptors concatenated."""
    _shard(tmp_path / 'shard-00000.h5', ['a', 'b', 'c'])
    _shard(tmp_path / 'shard-00001.h5', [])
    _shard(tmp_path / 'shard-00002.h5', ['d', 'e'])
    with ShardedIndex(str(tmp_path)) as index:
        assert index._global_desc is None and index.global_shape == (5, 4)
        parts = [s.global_view()[:] for s in index.shards]
        full = torch.from_numpy(np.concatenate(parts))
        view = index.global_view()
        assert view.shape == (5, 4)
        assert np.array_equal(view[1:4], full[1:4].numpy())
        assert np.array_equal(view[::2], full[::2].numpy())
        rows = [4, 0, 3, 3, 2]
        assert torch.equal(index.global_rows(rows), full[rows])
        chunks = list(index.iter_global(chunk=2))
        assert [s for s, _ in chunks] == [0, 2, 4]
        assert torch.equal(torch.cat([c for _, c in chunks]), full)
        with pytest.raises(IndexError, match='row 5 out of range'):
            view[[1, 5]]
        assert index._global_desc is None  # nothing loaded whole so far
        assert torch.equal(index.global_desc, full)
