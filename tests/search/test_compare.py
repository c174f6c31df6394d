"""Pair explanation: frame matrix, comparator map, score, segment, PNG."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from search_utils import make_model, random_videos

from hapvr_mm.models.retrievers.frame_retriever import double_frames
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
    direct, comp, _ = _captured_head(model, a, b)
    assert np.allclose(exp.frame_similarity, direct.numpy(), atol=1e-6)
    assert np.allclose(exp.comparator_map, comp.numpy(), atol=1e-6)
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


def _captured_head(model, a, b):
    """Frame similarities and comparator map inside ``video_similarity``,
    caught by a wrapper of the head's ``frame_similarity`` and a forward
    hook on its comparator (not recomputed)."""
    head, seen = model.head, {}
    inner = head.frame_similarity

    def spy(query, target):
        out = inner(query, target)
        seen['frame'] = out
        return out

    def hook(module, args, output):
        seen['raw'] = output[0] if isinstance(output, tuple) else output

    head.frame_similarity = spy
    handle = head.comparator.register_forward_hook(hook)
    try:
        score = model.video_similarity([a], [b], indexed=True)[0, 0]
    finally:
        handle.remove()
        del head.frame_similarity
    return seen['frame'][0, 0], F.hardtanh(seen['raw'])[0], score


@pytest.mark.parametrize('ta,tb', [(1, 1), (2, 5), (3, 3), (3, 1), (1, 7)])
def test_compare_shows_what_video_similarity_used(ta, tb):
    """1-, 2- and 3-frame videos are doubled by the model (3 -> 6 frames);
    compare returns exactly the matrices the score was computed from."""
    model = make_model()
    gen = torch.Generator().manual_seed(ta * 10 + tb)
    a = F.normalize(torch.randn(ta, 2, 8, generator=gen), dim=-1)
    b = F.normalize(torch.randn(tb, 2, 8, generator=gen), dim=-1)
    with torch.no_grad():
        a, b = model.index_video(a), model.index_video(b)
    frame, comp, score = _captured_head(model, a, b)
    exp = compare_pair(model, a, b)
    assert torch.equal(torch.from_numpy(exp.frame_similarity), frame)
    assert torch.equal(torch.from_numpy(exp.comparator_map), comp)
    assert exp.score == float(score)
    doubled = [double_frames(x, 4).shape[0] for x in (a, b)]
    assert list(exp.frame_similarity.shape) == doubled
    assert exp.extra == dict(frames=[ta, tb], compared_frames=doubled)


@pytest.mark.parametrize('ta,tb', [(1, 1), (2, 3), (3, 6)])
def test_compare_frame_retriever_chamfer_is_its_score_matrix(
        ta, tb, monkeypatch):
    from mmaction.registry import MODELS

    from hapvr_mm.models.retrievers import frame_retriever
    model = MODELS.build(dict(type='FrameRetriever', similarity='chamfer'))
    gen = torch.Generator().manual_seed(ta + tb)
    a = F.normalize(torch.randn(ta, 3, 8, generator=gen), dim=-1)
    b = F.normalize(torch.randn(tb, 3, 8, generator=gen), dim=-1)
    seen = {}
    inner = frame_retriever.frame_similarity

    def spy(*args, **kwargs):
        seen['frame'] = inner(*args, **kwargs)
        return seen['frame']

    monkeypatch.setattr(frame_retriever, 'frame_similarity', spy)
    score = float(model.video_similarity([a], [b], indexed=True)[0, 0])
    captured = seen.pop('frame')[0, 0]
    exp = compare_pair(model, a, b)
    assert torch.equal(torch.from_numpy(exp.frame_similarity), captured)
    assert exp.comparator_map is None and exp.score == score
    # Chamfer: mean over A's frames of the best B frame
    assert abs(exp.frame_similarity.max(1).mean() - score) < 1e-6


def test_compare_frame_retriever_cosine_has_a_frame_view():
    from mmaction.registry import MODELS
    model = MODELS.build(dict(type='FrameRetriever', similarity='cosine'))
    a, b = random_videos(2, seed=5, lengths=(2, 5), dims=8)
    exp = compare_pair(model, a, b)
    assert exp.frame_similarity.shape == (a.shape[0], b.shape[0])
    assert exp.comparator_map is None
    score = float(model.video_similarity([a], [b], indexed=True)[0, 0])
    assert exp.score == score
