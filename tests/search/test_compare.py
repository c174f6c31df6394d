"""Pair explanation: frame matrix, comparator map, score, segment, PNG."""
import numpy as np
import torch
from search_utils import make_model, random_videos

from hapvr_mm.search import best_segment, compare_pair, plot_comparison


def test_best_segment_finds_a_planted_diagonal():
    rng = np.random.default_rng(0)
    sim = rng.uniform(-0.2, 0.2, (12, 15))
    for k in range(5):  # A frames 3..7 match B frames 6..10
        sim[3 + k, 6 + k] = 0.9
    seg = best_segment(sim)
    assert (seg.a_start, seg.a_end, seg.b_start, seg.b_end) == (3, 7, 6, 10)
    assert abs(seg.mean_similarity - 0.9) < 1e-9
    d = seg.to_dict(fps=2.0)
    assert d['a_seconds'] == [1.5, 4.0] and d['b_seconds'] == [3.0, 5.5]
    assert best_segment(np.zeros((3, 3)), threshold=0.5) is None


def test_compare_pair_matches_the_model_and_plots(tmp_path):
    model = make_model()
    a, b = random_videos(2, seed=3, lengths=(9, 13))
    with torch.no_grad():
        a, b = model.index_video(a), model.index_video(b)
    exp = compare_pair(model, a, b)
    assert exp.frame_similarity.shape == (a.shape[0], b.shape[0])
    direct = model.head.frame_similarity(a[None], b[None])[0, 0]
    assert np.allclose(exp.frame_similarity, direct.numpy(), atol=1e-6)
    assert exp.comparator_map.shape == (a.shape[0] // 4, b.shape[0] // 4)
    assert np.all(np.abs(exp.comparator_map) <= 1)
    score = float(model.video_similarity([a], [b], indexed=True)[0, 0])
    assert abs(exp.score - score) < 1e-6
    # the score is the v2v aggregation of the map: with the default
    # TopK-Chamfer over few columns, the row-wise max, averaged
    assert exp.comparator_map.max(1).mean() >= exp.score - 1e-5
    out = tmp_path / 'pair.png'
    fig = plot_comparison(exp, str(out), fps=0.5, names=('qa', 'qb'))
    assert out.stat().st_size > 1000
    assert out.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    first = fig.axes[0].images[0]
    assert first.get_array().shape == (a.shape[0], b.shape[0])
    # time axes in seconds: Tb / fps across, Ta / fps down
    assert first.get_extent() == [0, b.shape[0] / 0.5, a.shape[0] / 0.5, 0]
    assert f'{exp.score:.3f}' in fig._suptitle.get_text()


def test_compare_short_videos_loop_like_video_similarity():
    model = make_model()
    a, b = random_videos(2, seed=4, lengths=(2, 3))
    with torch.no_grad():
        a, b = model.index_video(a), model.index_video(b)
    exp = compare_pair(model, a, b)
    assert exp.frame_similarity.shape == (a.shape[0], b.shape[0])
    assert exp.comparator_map.shape == (1, 1)
    score = float(model.video_similarity([a], [b], indexed=True)[0, 0])
    assert abs(exp.score - score) < 1e-6
