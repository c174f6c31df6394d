"""Tests of hapvr_mm.datasets.video_io (decoding, sampling, errors, crops)."""
import math
import os
import os.path as osp
import pickle

import cv2
import numpy as np
import pytest

from hapvr_mm.datasets.video_io import (VideoReadError, center_crop,
                                        is_frame_folder, open_video,
                                        read_video_frames, resize_center_crop,
                                        resize_short_side,
                                        sample_frame_indices,
                                        video_length_1fps)


def _reference_indices(num_native, native_fps, fps):
    """Loop transcription of index_k = round-half-up(k * native / fps)."""
    out, k = [], 0
    while True:
        i = math.floor(k * native_fps / fps + 0.5)
        if i >= num_native:
            return out
        out.append(i)
        k += 1


@pytest.mark.parametrize('num_native', [0, 1, 2, 24, 25, 26, 100, 301])
@pytest.mark.parametrize('native_fps,fps', [(25, 1), (29.97, 1), (30, 1),
                                            (4, 1), (24, 2), (1, 1), (5, 0.5),
                                            (2, 3), (5, 2), (12.5, 1)])
def test_sample_frame_indices_matches_loop(num_native, native_fps, fps):
    got = sample_frame_indices(num_native, native_fps, fps)
    assert got.dtype == np.int64
    assert got.tolist() == _reference_indices(num_native, native_fps, fps)


def test_sample_frame_indices_properties_and_errors():
    assert sample_frame_indices(17, 1.0, 1.0).tolist() == list(range(17))
    assert sample_frame_indices(10, 4.0).tolist() == [0, 4, 8]
    # 29.97 fps: k * 29.97 rounded half up
    assert sample_frame_indices(100, 29.97).tolist() == [0, 30, 60, 90]
    # ties round up, not to even: 2.5 -> 3, 7.5 -> 8
    assert sample_frame_indices(10, 5.0, 2.0).tolist() == [0, 3, 5, 8]
    with pytest.raises(ValueError, match='native_fps'):
        sample_frame_indices(10, 0.0)
    with pytest.raises(ValueError, match='fps'):
        sample_frame_indices(10, 25.0, -1.0)
    with pytest.raises(ValueError, match='num_native'):
        sample_frame_indices(-1, 25.0)


def test_read_video_at_1fps_gives_the_right_frames(coded_video_dir, vt):
    path = osp.join(coded_video_dir, 'v41.mp4')
    frames = read_video_frames(path)
    assert frames.dtype == np.uint8 and frames.shape == (11, 48, 64, 3)
    assert frames.flags['C_CONTIGUOUS']
    assert vt.decode_codes(frames).tolist() == list(range(0, 41, 4))
    assert video_length_1fps(path) == 11
    # 2 fps from 4 fps: every other frame
    assert vt.decode_codes(read_video_frames(path, fps=2.0)).tolist() == \
        list(range(0, 41, 2))
    assert video_length_1fps(path, fps=2.0) == 21


def test_read_video_start_num_loops_and_max_frames(coded_video_dir, vt):
    path = osp.join(coded_video_dir, 'v41.mp4')
    seg = read_video_frames(path, start=8, num=7)
    pos = [(8 + i) % 11 for i in range(7)]  # 8, 9, 10, 0, 1, 2, 3
    assert vt.decode_codes(seg).tolist() == [4 * p for p in pos]
    # a segment longer than the video loops it more than once
    seg = read_video_frames(
        osp.join(coded_video_dir, 'v12.mp4'), start=1, num=8)
    assert vt.decode_codes(seg).tolist() == [
        4 * ((1 + i) % 3) for i in range(8)
    ]
    capped = read_video_frames(path, max_frames=5)
    assert vt.decode_codes(capped).tolist() == [0, 4, 8, 12, 16]
    assert read_video_frames(path, max_frames=100).shape[0] == 11
    assert vt.decode_codes(read_video_frames(path, start=9)).tolist() == \
        [36, 40]
    for kwargs in (dict(max_frames=0), dict(start=-1), dict(num=0),
                   dict(start=1.5), dict(fps=0)):
        with pytest.raises(ValueError):
            read_video_frames(path, **kwargs)


def test_open_video_reads_twice_consistently(coded_video_dir, vt):
    video = open_video(osp.join(coded_video_dir, 'v41.mp4'))
    assert video.num_native == 41 and video.native_fps == pytest.approx(4.0)
    assert video.length() == 11
    a = video.read(start=3, num=4)
    b = video.read(start=3, num=4)
    np.testing.assert_array_equal(a, b)
    assert vt.decode_codes(a).tolist() == [12, 16, 20, 24]


def test_decoded_channels_are_rgb(tmp_path):
    path = str(tmp_path / 'red.mp4')
    w = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'mp4v'), 2, (64, 48))
    for _ in range(4):
        w.write(np.full((48, 64, 3), (0, 0, 255), np.uint8))  # BGR red
    w.release()
    f = read_video_frames(path)[0].astype(int)
    assert f[..., 0].mean() > 200 and f[..., 2].mean() < 60
    folder = tmp_path / 'frames'
    folder.mkdir()
    cv2.imwrite(
        str(folder / '00000.png'), np.full((8, 8, 3), (0, 0, 255), np.uint8))
    g = read_video_frames(str(folder))[0]
    assert g[0, 0].tolist() == [255, 0, 0]


def test_frame_folder_is_sorted_and_1fps(tmp_path, vt):
    folder = vt.write_coded_folder(str(tmp_path / 'f'), 7)
    (tmp_path / 'f' / 'readme.txt').write_text('ignored')
    assert is_frame_folder(folder) and not is_frame_folder(
        str(tmp_path / 'f' / 'readme.txt'))
    assert video_length_1fps(folder) == 7
    frames = read_video_frames(folder)
    assert frames.shape == (7, 48, 64, 3)
    assert vt.decode_codes(frames).tolist() == list(range(7))
    seg = read_video_frames(folder, start=5, num=4)
    assert vt.decode_codes(seg).tolist() == [5, 6, 0, 1]


def _bad_files(tmp_path, source):
    with open(source, 'rb') as f:
        data = f.read()
    rng = np.random.RandomState(0)
    files = {
        'zero.mp4': b'',
        'random.mp4': rng.bytes(6000),
        'random.avi': rng.bytes(3000),
        'text.mkv': b'this is not a video\n' * 50,
        'trunc10.mp4': data[:len(data) // 10],
        'trunc50.mp4': data[:len(data) // 2],
        'trunc80.mp4': data[:len(data) * 8 // 10],
        'head48.mp4': data[:48],
        'tail.mp4': data[len(data) // 2:],
    }
    out = {}
    for name, content in files.items():
        p = str(tmp_path / name)
        with open(p, 'wb') as f:
            f.write(content)
        out[name] = p
    return out


def test_garbage_files_raise_video_read_error(tmp_path, coded_video_dir):
    bad = _bad_files(tmp_path, osp.join(coded_video_dir, 'v41.mp4'))
    for name, path in bad.items():
        for fn in (read_video_frames, video_length_1fps, open_video):
            with pytest.raises(VideoReadError) as info:
                fn(path)
            assert info.value.path == path
            assert path in str(info.value), name
            if name == 'zero.mp4':
                assert 'empty' in info.value.reason
            else:
                assert 'corrupt' in info.value.reason, (name,
                                                        info.value.reason)


def test_slightly_truncated_file_reads_or_raises(tmp_path, coded_video_dir,
                                                 vt):
    # cutting the last bytes (trailing metadata) may leave a valid video: it
    # must then decode correctly, else raise VideoReadError, never crash
    with open(osp.join(coded_video_dir, 'v41.mp4'), 'rb') as f:
        data = f.read()
    for keep in (0.95, 0.99, 0.999):
        path = vt.write_bytes(
            str(tmp_path / f'cut{keep}.mp4'), data[:int(len(data) * keep)])
        try:
            frames = read_video_frames(path)
        except VideoReadError as exc:
            assert exc.path == path
        else:
            assert vt.decode_codes(frames).tolist() == list(range(0, 41, 4))


def test_missing_and_empty_folder_and_bad_jpg(tmp_path):
    with pytest.raises(VideoReadError, match='missing'):
        read_video_frames(str(tmp_path / 'nope.mp4'))
    empty = tmp_path / 'empty_folder'
    empty.mkdir()
    with pytest.raises(VideoReadError, match='zero frames') as info:
        video_length_1fps(str(empty))
    assert str(empty) in str(info.value)
    broken = tmp_path / 'broken'
    broken.mkdir()
    (broken / '00000.jpg').write_bytes(b'not a jpeg')
    with pytest.raises(VideoReadError, match='00000.jpg'):
        read_video_frames(str(broken))


def test_video_read_error_pickles():
    err = pickle.loads(pickle.dumps(VideoReadError('/a/b.mp4', 'empty')))
    assert isinstance(err, VideoReadError)
    assert (err.path, err.reason) == ('/a/b.mp4', 'empty')
    assert str(err) == "cannot read video '/a/b.mp4': empty"


def test_resize_center_crop_sizes_and_offsets():
    rng = np.random.RandomState(0)
    land = rng.randint(0, 256, (2, 300, 400, 3)).astype(np.uint8)
    out = resize_center_crop(land)
    assert out.shape == (2, 224, 224, 3) and out.dtype == np.uint8
    # independent computation: short side 300 -> 256, long 400 -> 341
    ref = np.stack([
        cv2.resize(f, (341, 256), interpolation=cv2.INTER_AREA) for f in land
    ])
    top, left = int(round((256 - 224) / 2)), int(round((341 - 224) / 2))
    np.testing.assert_array_equal(out, ref[:, top:top + 224, left:left + 224])
    portrait = rng.randint(0, 256, (1, 200, 120, 3)).astype(np.uint8)
    up = resize_short_side(portrait, 256)
    assert up.shape == (1, 426, 256, 3)
    np.testing.assert_array_equal(
        up[0],
        cv2.resize(portrait[0], (256, 426), interpolation=cv2.INTER_LINEAR))
    assert resize_center_crop(portrait).shape == (1, 224, 224, 3)
    same = rng.randint(0, 256, (1, 256, 300, 3)).astype(np.uint8)
    assert resize_short_side(same, 256) is same
    assert resize_center_crop(np.zeros((0, 50, 60, 3), np.uint8)).shape == \
        (0, 224, 224, 3)


def test_center_crop_keeps_the_centre():
    frames = np.zeros((1, 101, 80, 3), np.uint8)
    frames[0, 50, 40] = 255  # the centre pixel of an odd x even frame
    out = center_crop(frames, 21)
    assert out.shape == (1, 21, 21, 3)
    ys, xs = np.nonzero(out[0, ..., 0])
    assert (ys.tolist(), xs.tolist()) == ([10], [10])  # 50-40, 40-round(29.5)


def test_resize_center_crop_rejects_bad_input():
    with pytest.raises(ValueError, match=r'\[T, H, W, 3\]'):
        resize_center_crop(np.zeros((48, 64, 3), np.uint8))
    with pytest.raises(ValueError, match='crop'):
        resize_center_crop(np.zeros((1, 48, 64, 3), np.uint8), 100, 224)
    with pytest.raises(ValueError, match='smaller than the crop'):
        center_crop(np.zeros((1, 48, 64, 3), np.uint8), 50)


def test_no_leftover_files(tmp_path):
    # reading never writes next to the video
    p = str(tmp_path / 'x.mp4')
    with open(p, 'wb') as f:
        f.write(b'')
    with pytest.raises(VideoReadError):
        read_video_frames(p)
    assert os.listdir(tmp_path) == ['x.mp4']


_DECODER_NOISE_SCRIPT = '''
import os, sys
from hapvr_mm.datasets.video_io import VideoReadError, open_video
for path in sys.argv[1:]:
    for _ in range(3):
        try:
            open_video(path)
        except VideoReadError:
            pass
print('python stderr still works', file=sys.stderr, flush=True)
os.write(2, b'fd 2 restored\\n')
'''


def test_decoder_error_output_is_silenced(tmp_path, coded_video_dir):
    """decord/FFmpeg print corrupt-file errors from C to fd 2; none of it
    reaches the process's stderr, which works again afterwards."""
    import subprocess
    import sys
    bad = _bad_files(tmp_path, osp.join(coded_video_dir, 'v41.mp4'))
    paths = [p for n, p in bad.items() if n != 'zero.mp4']
    script = tmp_path / 'noise.py'
    script.write_text(_DECODER_NOISE_SCRIPT)
    repo = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=repo)
    res = subprocess.run([sys.executable, str(script), *paths],
                         capture_output=True,
                         text=True,
                         env=env,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    err = [
        line for line in res.stderr.splitlines()
        if 'mmcv' not in line and 'warnings.warn' not in line
    ]
    assert err == ['python stderr still works', 'fd 2 restored'], err


def test_silence_native_stderr_nests_and_restores(tmp_path):
    from hapvr_mm.datasets.video_io import silence_native_stderr
    before = os.fstat(2)
    with silence_native_stderr():
        with silence_native_stderr():
            assert os.fstat(2).st_ino != before.st_ino or \
                os.fstat(2).st_dev != before.st_dev
        assert os.fstat(2).st_rdev == os.stat(os.devnull).st_rdev
    after = os.fstat(2)
    assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)
    with silence_native_stderr(enabled=False):
        assert (os.fstat(2).st_dev, os.fstat(2).st_ino) == \
            (before.st_dev, before.st_ino)
