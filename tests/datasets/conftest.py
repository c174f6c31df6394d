"""Fixtures for dataset tests: tiny videos whose frames encode their index.

Tests reach the helper functions through the ``vt`` fixture (importing a
``conftest`` module by name is fragile).

Each frame of a "coded" video shows its native frame index as a 12-bit
pattern of black / white 16x16 blocks (aligned to codec macroblocks), so a
decoded frame can be mapped back to the native frame it came from, whatever
the lossy codec did to the pixel values.
"""
import os
import os.path as osp
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

BLOCK = 16
WIDTH, HEIGHT = 64, 48  # 4 x 3 blocks = 12 bits


def coded_frame(index: int,
                width: int = WIDTH,
                height: int = HEIGHT) -> np.ndarray:
    """uint8 RGB frame ``[H, W, 3]`` showing ``index`` in binary."""
    img = np.zeros((height, width, 3), dtype=np.uint8)
    cols = width // BLOCK
    for bit in range((width // BLOCK) * (height // BLOCK)):
        if (index >> bit) & 1:
            r, c = divmod(bit, cols)
            img[r * BLOCK:(r + 1) * BLOCK, c * BLOCK:(c + 1) * BLOCK] = 255
    return img


def decode_codes(frames: np.ndarray) -> np.ndarray:
    """Native indices shown by frames ``[T, H, W, 3]`` (see coded_frame)."""
    frames = np.asarray(frames)
    t, h, w = frames.shape[:3]
    cols, rows = w // BLOCK, h // BLOCK
    out = np.zeros(t, dtype=np.int64)
    for bit in range(cols * rows):
        r, c = divmod(bit, cols)
        block = frames[:, r * BLOCK + 4:(r + 1) * BLOCK - 4,
                       c * BLOCK + 4:(c + 1) * BLOCK - 4]
        on = block.reshape(t, -1).mean(1) > 127
        out |= on.astype(np.int64) << bit
    return out


def write_coded_video(path: str, num_frames: int, fps: float = 4.0) -> str:
    """Write an mp4v file of ``num_frames`` coded frames at ``fps``."""
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'mp4v'), fps,
                             (WIDTH, HEIGHT))
    assert writer.isOpened()
    for i in range(num_frames):
        writer.write(coded_frame(i))  # black/white: BGR == RGB
    writer.release()
    return path


def write_coded_folder(folder: str, num_frames: int) -> str:
    """Write ``00000.jpg ...`` coded frames into ``folder``."""
    os.makedirs(folder, exist_ok=True)
    for i in range(num_frames):
        cv2.imwrite(
            osp.join(folder, f'{i:05d}.jpg'), coded_frame(i),
            [cv2.IMWRITE_JPEG_QUALITY, 95])
    return folder


def write_truncated(path: str, source: str, fraction: float = 0.5) -> str:
    """Write the first ``fraction`` of the bytes of ``source`` to ``path``."""
    with open(source, 'rb') as f:
        data = f.read()
    with open(path, 'wb') as f:
        f.write(data[:int(len(data) * fraction)])
    return path


def write_bytes(path: str, data: bytes) -> str:
    with open(path, 'wb') as f:
        f.write(data)
    return path


@pytest.fixture(scope='session')
def coded_video_dir(tmp_path_factory) -> str:
    """Folder with coded videos shared by the tests (read only).

    Files: ``v41.mp4`` (41 frames at 4 fps: 11 frames at 1 fps),
    ``v12.mp4`` (12 frames at 4 fps: 3 at 1 fps).
    """
    root = str(tmp_path_factory.mktemp('coded'))
    write_coded_video(osp.join(root, 'v41.mp4'), 41, 4.0)
    write_coded_video(osp.join(root, 'v12.mp4'), 12, 4.0)
    return root


@pytest.fixture
def mixed_video_dir(tmp_path) -> dict:
    """3 good coded mp4 (11, 3 and 20 frames at 1 fps), 1 truncated, 1 empty.

    Returns:
        dict: ``root``, ``good`` (paths), ``bad`` (paths), ``lengths``
        (1-fps length per good path).
    """
    root = tmp_path / 'videos'
    root.mkdir()
    good, lengths = [], {}
    for name, n in (('a.mp4', 41), ('b.mp4', 12), ('c.mp4', 77)):
        p = write_coded_video(str(root / name), n, 4.0)
        good.append(p)
        lengths[p] = (n - 1) // 4 + 1
    bad = [
        write_truncated(str(root / 'd_truncated.mp4'), good[0]),
        write_bytes(str(root / 'e_empty.mp4'), b''),
    ]
    (root / 'notes.txt').write_text('not a video')
    return dict(root=str(root), good=good, bad=bad, lengths=lengths)


@pytest.fixture(scope='session')
def vt() -> SimpleNamespace:
    """The helper functions of this file, for the tests to call."""
    return SimpleNamespace(
        coded_frame=coded_frame,
        decode_codes=decode_codes,
        write_coded_video=write_coded_video,
        write_coded_folder=write_coded_folder,
        write_truncated=write_truncated,
        write_bytes=write_bytes)
