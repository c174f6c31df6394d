"""Explain the score of two videos: frame similarities, comparator map.

:func:`compare_pair` asks the retriever (``explain_similarity``) for what
the score of one pair of indexed videos was computed from: for HAP-VR the
frame-to-frame similarity matrix (region-level TopK-Chamfer,
docs/method.md section 3), the comparator's output map (after the hardtanh,
in [-1, 1]) and the video-level score, all from the same computation as
``video_similarity``. :func:`best_segment` finds the best-matching aligned
segment, and :func:`plot_comparison` draws it all.
"""
import io
from dataclasses import dataclass, field
from typing import Dict, Optional

import numpy as np
import torch
from torch import Tensor, nn

from .model_io import model_device

__all__ = [
    'PairExplanation', 'Segment', 'compare_pair', 'best_segment',
    'plot_comparison', 'figure_png'
]


@dataclass
class Segment:
    """An aligned segment: frames ``a_start..a_end`` of A (inclusive)
    match frames ``b_start..b_end`` of B, with mean frame similarity
    ``mean_similarity``."""

    a_start: int
    a_end: int
    b_start: int
    b_end: int
    mean_similarity: float

    def to_dict(self, fps: float = 1.0) -> Dict:
        """The segment in frames and seconds."""
        return dict(
            a_frames=[self.a_start, self.a_end],
            b_frames=[self.b_start, self.b_end],
            a_seconds=[self.a_start / fps, (self.a_end + 1) / fps],
            b_seconds=[self.b_start / fps, (self.b_end + 1) / fps],
            mean_similarity=self.mean_similarity)


@dataclass
class PairExplanation:
    """What the head computed for one pair.

    Attributes:
        frame_similarity (np.ndarray): ``[Ta', Tb']`` frame-to-frame
            similarities the score was computed from (``T'`` is the length
            the model compared: a video shorter than the comparator's
            minimum is doubled, 3 frames -> 6).
        comparator_map (np.ndarray, optional): the comparator's output
            after hardtanh (``[Ta' // 4, Tb' // 4]`` for HAP-VR); None
            without a comparator.
        score (float): the video-level score of ``model.video_similarity``
            (eval range [-1, 1]).
        segment (Segment, optional): best-matching segment.
        extra (dict): anything else worth showing.
    """

    frame_similarity: np.ndarray
    comparator_map: Optional[np.ndarray]
    score: float
    segment: Optional[Segment]
    extra: Dict = field(default_factory=dict)


def best_segment(sim: np.ndarray,
                 threshold: Optional[float] = None) -> Optional[Segment]:
    """Best-matching aligned segment of a frame similarity matrix.

    Along every diagonal ``j - i = d`` (one offset between the two videos)
    the run of consecutive frames with the largest sum of ``sim - threshold``
    is found (maximum-sum subarray); the best run over all diagonals wins.
    Speed changes bend the true path away from a diagonal, so the segment
    is the longest aligned stretch, not an exact alignment.

    Args:
        sim (np.ndarray): ``[Ta, Tb]`` similarities.
        threshold (float, optional): similarity that counts as a match.
            Defaults to the midpoint of the matrix's median and maximum.

    Returns:
        Segment or None: None when no cell exceeds ``threshold``.
    """
    sim = np.asarray(sim, dtype=np.float64)
    if sim.ndim != 2 or sim.size == 0:
        raise ValueError(f'expected a [Ta, Tb] matrix, got shape {sim.shape}')
    if threshold is None:
        threshold = (float(np.median(sim)) + float(sim.max())) / 2
    ta, tb = sim.shape
    best = (0.0, None)
    for d in range(-(ta - 1), tb):
        diag = np.diagonal(sim, offset=d) - threshold
        run, start = 0.0, 0
        for k, v in enumerate(diag):
            if run <= 0:
                run, start = v, k
            else:
                run += v
            if run > best[0]:
                best = (run, (d, start, k))
    if best[1] is None:
        return None
    d, s, e = best[1]
    i0, i1 = s + max(-d, 0), e + max(-d, 0)
    j0, j1 = i0 + d, i1 + d
    mean = float(np.mean([sim[i, i + d] for i in range(i0, i1 + 1)]))
    return Segment(int(i0), int(i1), int(j0), int(j1), mean)


@torch.no_grad()
def compare_pair(model: nn.Module, a: Tensor, b: Tensor) -> PairExplanation:
    """Frame similarities, comparator map and score of two videos.

    Everything comes from one call of the retriever's
    ``explain_similarity`` (``BaseRetriever``), which computes the score
    with the same code as ``video_similarity``: the matrices shown are the
    ones the score was computed from (for HAP-VR, over a short video
    doubled to the comparator's minimum: 3 frames are compared as 6).

    Args:
        model (nn.Module): a retriever (``BaseRetriever`` interface).
        a (Tensor): indexed features ``[Ta, ...]`` of video A (query).
        b (Tensor): indexed features ``[Tb, ...]`` of video B (target).

    Returns:
        PairExplanation: see its attributes; ``extra`` holds the frames of
        each video as given (``frames``) and as compared
        (``compared_frames``).
    """
    device = model_device(model)
    a, b = a.to(device).float(), b.to(device).float()
    out = model.explain_similarity(a, b, indexed=True)
    sim = out['frame_similarity'].float().cpu().numpy()
    comp = out.get('comparator_map')
    comp = None if comp is None else comp.float().cpu().numpy()
    extra = dict(
        frames=[int(a.shape[0]), int(b.shape[0])],
        compared_frames=[int(n) for n in sim.shape])
    return PairExplanation(sim, comp, float(out['score']), best_segment(sim),
                           extra)


def plot_comparison(explanation: PairExplanation,
                    out_file: Optional[str] = None,
                    fps: float = 1.0,
                    names=('A', 'B'),
                    dpi: int = 110):
    """Draw the frame similarity matrix and the comparator map.

    Left: the ``[Ta, Tb]`` frame-to-frame similarities with time axes in
    seconds (A down, B across; colours span the matrix's own range) and the
    best-matching segment drawn as a line with its box; right: the
    comparator's output map on the same time axes (each cell covers 4
    frames). The score is in the title.

    Args:
        explanation (PairExplanation): from :func:`compare_pair`.
        out_file (str, optional): PNG path to write.
        fps (float): frames per second of the features. Defaults to 1.
        names (tuple[str, str]): labels of A and B.
        dpi (int): resolution of the PNG.

    Returns:
        matplotlib.figure.Figure: the figure (its first image holds the
        ``[Ta, Tb]`` matrix).
    """
    import matplotlib
    matplotlib.use('Agg', force=False)
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    sim = explanation.frame_similarity
    comp = explanation.comparator_map
    ta, tb = sim.shape
    panels = 2 if comp is not None else 1
    fig, axes = plt.subplots(
        1, panels, figsize=(5.2 * panels + 0.6, 5.0), squeeze=False)
    axes = axes[0]
    extent = (0, tb / fps, ta / fps, 0)
    # colours span the matrix's own range: untrained or weak features can
    # put every cell within a few hundredths, which a fixed [-1, 1] scale
    # would paint in one colour
    lo, hi = float(sim.min()), float(sim.max())
    img = axes[0].imshow(
        sim,
        cmap='viridis',
        vmin=lo,
        vmax=hi if hi > lo else lo + 1e-6,
        extent=extent,
        interpolation='nearest',
        aspect='auto')
    fig.colorbar(img, ax=axes[0], fraction=0.046, pad=0.04)
    axes[0].set_title(f'frame similarity ({ta} x {tb} frames, '
                      f'{lo:.2f} to {hi:.2f})')
    seg = explanation.segment
    if seg is not None:
        a0, a1 = seg.a_start / fps, (seg.a_end + 1) / fps
        b0, b1 = seg.b_start / fps, (seg.b_end + 1) / fps
        axes[0].add_patch(
            Rectangle((b0, a0), b1 - b0, a1 - a0, fill=False, lw=2, ec='red'))
        axes[0].plot([b0, b1], [a0, a1], color='red', lw=1, ls='--')
    for ax in axes:
        ax.set_xlabel(f'{names[1]}: time (s)')
        ax.set_ylabel(f'{names[0]}: time (s)')
    if comp is not None:
        h, w = comp.shape
        cimg = axes[1].imshow(
            comp,
            cmap='magma',
            vmin=-1,
            vmax=1,
            extent=(0, 4 * w / fps, 4 * h / fps, 0),
            interpolation='nearest',
            aspect='auto')
        fig.colorbar(cimg, ax=axes[1], fraction=0.046, pad=0.04)
        axes[1].set_title(f'comparator output ({h} x {w} cells of 4 '
                          'frames)')
    title = f'{names[0]}  vs  {names[1]}\nscore {explanation.score:.3f}'
    if seg is not None:
        title += (f'  |  best segment: A {seg.a_start / fps:.0f}-'
                  f'{(seg.a_end + 1) / fps:.0f} s ~ B '
                  f'{seg.b_start / fps:.0f}-{(seg.b_end + 1) / fps:.0f} s '
                  f'(mean frame sim. {seg.mean_similarity:.2f})')
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    if out_file:
        fig.savefig(out_file, dpi=dpi)
    return fig


def figure_png(fig, dpi: int = 110) -> bytes:
    """Render a matplotlib figure to PNG bytes in memory and close it.

    Nothing is written to disk and the figure is closed (pyplot keeps every
    open figure alive otherwise), so that a report drawing many pictures
    does not grow.

    Args:
        fig (matplotlib.figure.Figure): e.g. from :func:`plot_comparison`.
        dpi (int): resolution. Defaults to 110.

    Returns:
        bytes: the PNG file's bytes (no ``Software`` text chunk, so that
        the image names no web address).
    """
    import matplotlib.pyplot as plt
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format='png', dpi=dpi, metadata={'Software': None})
    finally:
        plt.close(fig)
    return buf.getvalue()
