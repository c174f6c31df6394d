"""tools/data/extract_frames.py: 1-fps frame folders, resumable, bad videos
skipped and counted."""
import importlib.util
import os
import os.path as osp
import runpy
import sys

import numpy as np
import pytest

from hapvr_mm.datasets.video_io import read_video_frames, video_length_1fps

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _load_tool():
    """The tool as a named module (its worker function must pickle)."""
    spec = importlib.util.spec_from_file_location(
        'extract_frames', osp.join(ROOT, 'tools', 'data', 'extract_frames.py'))
    module = importlib.util.module_from_spec(spec)
    sys.modules['extract_frames'] = module
    spec.loader.exec_module(module)
    return vars(module)


TOOL = _load_tool()
write_mp4 = runpy.run_path(
    osp.join(ROOT, 'tools', 'data', 'make_demo_dataset.py'))['write_mp4']


def _frames(seed: int, n: int) -> np.ndarray:
    """Frames that differ clearly from second to second (flat colours)."""
    rng = np.random.default_rng(seed)
    colours = rng.integers(0, 256, (n, 1, 1, 3), dtype=np.uint8)
    return np.ascontiguousarray(
        np.broadcast_to(colours, (n, 48, 64, 3)).copy())


@pytest.fixture
def collection(tmp_path):
    """Three good videos (one in a sub-folder), a corrupt and an empty one."""
    src = tmp_path / 'videos'
    (src / 'sub').mkdir(parents=True)
    # 4 fps for 3 / 5 / 2 seconds: 1-fps sampling keeps every 4th frame
    for rel, seed, seconds in (('a.mp4', 0, 3), ('sub/b.mp4', 1, 5), ('c.avi',
                                                                      2, 2)):
        path = str(src / rel)
        frames = np.repeat(_frames(seed, seconds), 4, axis=0)
        if rel.endswith('.avi'):
            import cv2
            writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'MJPG'),
                                     4.0, (64, 48))
            for f in frames:
                writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
            writer.release()
        else:
            write_mp4(path, frames, fps=4)
    (src / 'bad.mp4').write_bytes(os.urandom(2048))
    (src / 'sub' / 'empty.mp4').write_bytes(b'')
    (src / 'notes.txt').write_text('not a video')
    return src


def test_list_videos(collection, tmp_path):
    rels = TOOL['list_videos'](str(collection))
    assert rels == ['a.mp4', 'bad.mp4', 'c.avi', 'sub/b.mp4', 'sub/empty.mp4']
    listing = tmp_path / 'list.txt'
    listing.write_text(f'# two\nsub/b.mp4\n\n{collection / "a.mp4"}\n')
    assert TOOL['list_videos'](str(collection),
                               str(listing)) == ['a.mp4', 'sub/b.mp4']
    listing.write_text('/elsewhere/x.mp4\n')
    with pytest.raises(ValueError, match='not inside'):
        TOOL['list_videos'](str(collection), str(listing))
    with pytest.raises(ValueError, match='not a folder'):
        TOOL['list_videos'](str(collection / 'a.mp4'))


@pytest.mark.parametrize('workers', [1, 2])
def test_converts_skips_bad_and_resumes(collection, tmp_path, workers):
    out = tmp_path / 'frames'
    counts = TOOL['main'](
        [str(collection), str(out), '--workers',
         str(workers)])
    assert counts == dict(
        videos=5, converted=3, done=0, failed=2, frames=3 + 5 + 2)
    for rel in ('a.mp4', 'sub/b.mp4', 'c.avi'):
        video = str(collection / rel)
        folder = TOOL['frame_folder_of'](rel, str(out))
        names = sorted(os.listdir(folder))
        assert names == [f'{k:05d}.jpg' for k in range(len(names))]
        # the folder is the same 1-fps video as the file, frame for frame
        assert video_length_1fps(folder) == video_length_1fps(video)
        ours = read_video_frames(folder).astype(np.int16)
        ref = read_video_frames(video).astype(np.int16)
        assert ours.shape == ref.shape
        assert np.abs(ours - ref).mean() < 3.0
    failed = (out / TOOL['FAILED_LIST']).read_text().splitlines()[1:]
    assert [line.split('\t')[0]
            for line in failed] == ['bad.mp4', 'sub/empty.mp4']
    assert 'empty' in failed[1].split('\t')[1]
    assert not any(
        name.endswith(TOOL['TEMP_SUFFIX']) for _, dirs, _ in os.walk(out)
        for name in dirs)

    # resume: a removed folder and an interrupted one are redone, finished
    # folders are left alone, bad videos are tried (and counted) again
    import shutil
    shutil.rmtree(out / 'sub' / 'b')
    partial = out / 'a'
    os.rename(partial, str(partial) + TOOL['TEMP_SUFFIX'])
    stamp = os.stat(out / 'c' / '00000.jpg').st_mtime_ns
    counts = TOOL['main'](
        [str(collection), str(out), '--workers',
         str(workers)])
    assert counts == dict(
        videos=5, converted=2, done=1, failed=2, frames=3 + 5)
    assert os.stat(out / 'c' / '00000.jpg').st_mtime_ns == stamp
    assert len(os.listdir(out / 'a')) == 3
    assert not osp.exists(str(partial) + TOOL['TEMP_SUFFIX'])


def test_short_side_and_bad_video_leaves_nothing(collection, tmp_path):
    out = tmp_path / 'small'
    counts = TOOL['main']([
        str(collection),
        str(out), '--workers', '1', '--short-side', '24', '--overwrite'
    ])
    assert counts['converted'] == 3
    assert read_video_frames(str(out / 'a')).shape == (3, 24, 32, 3)
    from hapvr_mm.datasets.video_io import VideoReadError
    with pytest.raises(VideoReadError):
        TOOL['extract_video'](str(collection / 'bad.mp4'), str(out / 'bad'))
    assert not osp.exists(out / 'bad')
    assert not osp.exists(str(out / 'bad') + TOOL['TEMP_SUFFIX'])
