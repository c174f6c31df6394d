"""A self-contained HTML page of search results (``tools/search.py --html``).

One file, nothing outside it: every picture is a ``data:`` URI, the style
sheet is inline, and the page names no web address, so it can be mailed,
archived or opened offline. Per query it shows the query's keyframes and a
table with one ``<tr class="result">`` per result: rank, id and path,
HAP-VR score, global-descriptor similarity, the best aligned segment (as
``tools/compare_videos.py`` computes it, :func:`~.compare.compare_pair`)
and keyframes of the result taken from that segment. The top results also
get the comparison picture of ``tools/compare_videos.py``
(:func:`~.compare.plot_comparison`) in a ``<tr class="comparison">`` below
their row.

Keyframes are decoded by the project's reader
(:func:`hapvr_mm.datasets.video_io.open_video`) at the index's frame rate,
so that keyframe ``i`` is frame ``i`` of the similarity matrix, at second
``i / fps``. A video whose file is missing or unreadable gets a line of
text saying so instead of pictures, and the page is written anyway.

A small inline script records script errors and images that fail to load
into attributes of ``<body>`` (``data-check``, ``data-images``,
``data-images-loaded``, ``data-errors``), which a headless browser test
reads back (``tests/search/test_html_report.py``).
"""
import base64
import html
import math
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from torch import nn

from .compare import PairExplanation, compare_pair, figure_png, plot_comparison
from .engine import QueryResult
from .index_file import VideoIndex
from .queries import Query

__all__ = ['write_html_report', 'keyframe_thumbnails', 'frame_positions']

_STYLE = """
body { font-family: sans-serif; margin: 1.2em; color: #222; }
h1 { font-size: 1.4em; margin-bottom: 0.2em; }
h2 { font-size: 1.15em; margin: 1.4em 0 0.3em; }
.meta, .path { color: #555; font-size: 0.9em; word-break: break-all; }
.strip { display: flex; flex-wrap: wrap; gap: 4px; }
figure { margin: 0; text-align: center; font-size: 0.75em; color: #555; }
figure img { display: block; border: 1px solid #ccc; }
table { border-collapse: collapse; margin-top: 0.6em; }
th, td { border-bottom: 1px solid #ddd; padding: 4px 8px;
         vertical-align: top; text-align: left; font-size: 0.9em; }
th { background: #f2f2f2; white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.missing { color: #a33; font-style: italic; font-size: 0.85em; }
tr.comparison td { background: #fafafa; }
tr.comparison img { max-width: 100%; }
"""

# records script errors and failed image loads, then, once everything has
# loaded, how many images decoded; a test reads the attributes back
_CHECK_SCRIPT = """
(function () {
  var errors = [];
  window.addEventListener('error', function (e) {
    var t = e.target;
    if (t && t.tagName === 'IMG') {
      errors.push('image failed to load: ' + (t.alt || '?'));
    } else {
      errors.push(String(e.message || 'script error'));
    }
  }, true);
  window.addEventListener('load', function () {
    var imgs = document.images, ok = 0;
    for (var i = 0; i < imgs.length; i++) {
      if (imgs[i].complete && imgs[i].naturalWidth > 0) { ok++; }
    }
    var b = document.body;
    b.setAttribute('data-images', String(imgs.length));
    b.setAttribute('data-images-loaded', String(ok));
    b.setAttribute('data-errors', errors.join(' | '));
    b.setAttribute('data-check', 'done');
  });
})();
"""


def _esc(value) -> str:
    return html.escape(str(value), quote=True)


def frame_positions(start: int, end: int, count: int) -> List[int]:
    """Up to ``count`` evenly spaced frame positions of ``start..end``.

    Args:
        start (int): first position (inclusive, >= 0).
        end (int): last position (inclusive, >= ``start``).
        count (int): number of positions wanted (>= 1).

    Returns:
        list[int]: sorted distinct positions, both ends included when
        ``count >= 2`` (fewer than ``count`` when the range is shorter).

    Raises:
        ValueError: ``count < 1``, a negative ``start`` or ``end < start``.
    """
    if count < 1 or start < 0 or end < start:
        raise ValueError(f'expected 0 <= start <= end and count >= 1, got '
                         f'start={start}, end={end}, count={count}')
    if count == 1:
        return [int((start + end) // 2)]
    pos = np.linspace(start, end, count).round().astype(np.int64)
    return sorted(set(int(p) for p in pos))


def _jpeg(frame: np.ndarray, height: int, quality: int = 80) -> bytes:
    """A uint8 RGB ``[H, W, 3]`` frame resized to ``height`` as JPEG."""
    import cv2
    h, w = frame.shape[:2]
    width = max(1, int(round(w * height / max(h, 1))))
    small = cv2.resize(
        frame, (width, height),
        interpolation=cv2.INTER_AREA if height < h else cv2.INTER_LINEAR)
    ok, buf = cv2.imencode('.jpg', cv2.cvtColor(small, cv2.COLOR_RGB2BGR),
                           [int(cv2.IMWRITE_JPEG_QUALITY), quality])
    if not ok:
        raise ValueError(f'JPEG encoding of a {frame.shape} frame failed')
    return buf.tobytes()


def keyframe_thumbnails(path: str,
                        fps: float,
                        positions: Optional[Sequence[int]] = None,
                        count: int = 6,
                        height: int = 72,
                        max_frames: Optional[int] = None
                        ) -> List[Tuple[int, bytes]]:
    """Decode some frames of a video at ``fps`` as small JPEG thumbnails.

    Frames are read with :func:`hapvr_mm.datasets.video_io.open_video` at
    the index's ``fps``: position ``i`` is frame ``i`` of the features (and
    of a similarity matrix), second ``i / fps``. Only the frames shown are
    decoded. A position past the video's end wraps around (HAP-VR compares
    a short video doubled, so a segment may run past it).

    Args:
        path (str): video file or frame folder.
        fps (float): frame rate of the index (``index.fps``).
        positions (sequence[int], optional): frame positions to show;
            default: ``count`` evenly spaced over the whole video.
        count (int): thumbnails when ``positions`` is None. Defaults to 6.
        height (int): thumbnail height in pixels. Defaults to 72.
        max_frames (int, optional): the index's frame cap (frames past it
            were not indexed). Defaults to None.

    Returns:
        list[tuple[int, bytes]]: ``(position, JPEG bytes)`` per thumbnail,
        in position order.

    Raises:
        VideoReadError: a missing, empty or unreadable video (the reason is
            in the message).
    """
    from ..datasets.video_io import open_video
    video = open_video(path)
    length = video.length(fps)
    if max_frames:
        length = min(length, int(max_frames))
    if positions is None:
        positions = frame_positions(0, length - 1, count)
    wanted = sorted(set(int(p) % length for p in positions))
    out = []
    for pos in wanted:
        frame = video.read(fps, start=pos, num=1)[0]
        out.append((pos, _jpeg(frame, height)))
    return out


def _data_uri(data: bytes, mime: str) -> str:
    return f'data:{mime};base64,' + base64.b64encode(data).decode('ascii')


def _strip(path: str, fps: float, name: str,
           positions: Optional[Sequence[int]], count: int, height: int,
           max_frames: Optional[int], missing: List[str]) -> str:
    """HTML of a keyframe strip, or a placeholder line for a bad video."""
    if not path:
        missing.append(name)
        return ('<p class="missing">no video file is known for '
                f'{_esc(name)} (the index stores no path)</p>')
    from ..datasets.video_io import VideoReadError
    try:
        thumbs = keyframe_thumbnails(path, fps, positions, count, height,
                                     max_frames)
    except (VideoReadError, OSError, ValueError) as err:
        missing.append(path)
        reason = getattr(err, 'reason', None) or str(err)
        return (f'<p class="missing">keyframes unavailable: {_esc(path)} '
                f'cannot be read ({_esc(reason)})</p>')
    figures = [
        f'<figure><img src="{_data_uri(jpeg, "image/jpeg")}" '
        f'height="{height}" alt="{_esc(name)} at {pos / fps:.1f} s">'
        f'<figcaption>{pos / fps:.1f} s</figcaption></figure>'
        for pos, jpeg in thumbs
    ]
    return '<div class="strip">' + ''.join(figures) + '</div>'


def _label(name: str) -> str:
    """A short axis label: the file name of a path."""
    return osp.basename(name) or name


def _score(value) -> str:
    if value is None or not math.isfinite(float(value)):
        return 'n/a'
    return f'{float(value):.3f}'


def _segment_text(expl: PairExplanation, fps: float) -> str:
    seg = expl.segment
    if seg is None:
        return '<span class="missing">no aligned segment</span>'
    d = seg.to_dict(fps)
    (a0, a1), (b0, b1) = d['a_seconds'], d['b_seconds']
    return (f'query {a0:g}&ndash;{a1:g} s<br>result {b0:g}&ndash;{b1:g} s'
            f'<br><small>mean frame sim. {seg.mean_similarity:.2f}</small>')


def write_html_report(out_file: str,
                      model: nn.Module,
                      index: VideoIndex,
                      queries: Sequence[Query],
                      results: Sequence[QueryResult],
                      compare_top: int = 3,
                      keyframes: int = 6,
                      thumb_height: int = 72,
                      title: str = 'HAP-VR search results',
                      meta: Optional[Dict] = None,
                      dpi: int = 80) -> Dict:
    """Write the search results of some queries as one self-contained page.

    For every result, :func:`~.compare.compare_pair` explains the score
    from the query's features and the result's indexed features
    (``index.features(row)``), as ``tools/compare_videos.py`` does; its
    best segment is shown, and the result's keyframes are taken from it
    (from the whole video without a segment).

    Args:
        out_file (str): the ``.html`` file to write (folders are created).
        model (nn.Module): the index's retriever (``explain_similarity``).
        index (VideoIndex): the searched index; any object with ``ids``,
            ``paths``, ``features(row)`` and ``fps`` (``attrs`` optional,
            for ``max_frames``) will do.
        queries (sequence[Query]): the queries, with their features.
        results (sequence[QueryResult]): the ranked results of each query
            (``tools/search.py``'s ``search`` output), same order.
        compare_top (int): results per query that also get the comparison
            picture (0: none). Defaults to 3.
        keyframes (int): thumbnails per strip. Defaults to 6.
        thumb_height (int): thumbnail height in pixels. Defaults to 72.
        title (str): the page title.
        meta (dict, optional): ``key: value`` lines shown under the title
            (index, mode...).
        dpi (int): resolution of the comparison pictures. Defaults to 80.

    Returns:
        dict: ``file`` (absolute path), ``queries``, ``results`` (rows
        written), ``comparisons`` (pictures) and ``missing`` (videos shown
        with a placeholder).

    Raises:
        ValueError: ``queries`` and ``results`` differ in length, or
            ``compare_top`` / ``keyframes`` / ``thumb_height`` is negative
            or zero where it must not be.
    """
    if len(queries) != len(results):
        raise ValueError(f'{len(queries)} queries but {len(results)} result '
                         'lists')
    if compare_top < 0 or keyframes < 1 or thumb_height < 8:
        raise ValueError('expected compare_top >= 0, keyframes >= 1 and '
                         f'thumb_height >= 8, got {compare_top}, {keyframes},'
                         f' {thumb_height}')
    fps = float(index.fps)
    attrs = getattr(index, 'attrs', {}) or {}
    max_frames = attrs.get('max_frames')
    max_frames = None if max_frames in (None, 'none') else int(max_frames)
    missing: List[str] = []
    n_rows = n_pics = 0
    body = [f'<h1>{_esc(title)}</h1>']
    lines = dict(meta or {}, fps=f'{fps:g} (frame i = second i / fps)')
    body.append('<p class="meta">' + '<br>'.join(f'{_esc(k)}: {_esc(v)}'
                                                 for k, v in lines.items()) +
                '</p>')
    for qi, (query, res) in enumerate(zip(queries, results), 1):
        body.append(f'<section class="query" id="query-{qi}">')
        body.append(f'<h2>Query {qi}: {_esc(query.name)}</h2>')
        if query.path and query.path != query.name:
            body.append(f'<p class="path">{_esc(query.path)}</p>')
        body.append(
            _strip(query.path, fps, query.name, None, keyframes, thumb_height,
                   max_frames, missing))
        body.append('<table class="results"><thead><tr><th>rank</th>'
                    '<th>video</th><th>HAP-VR</th><th>global</th>'
                    '<th>best aligned segment</th><th>keyframes of the '
                    'segment</th></tr></thead><tbody>')
        glob = res.global_scores
        for rank, row in enumerate(res.rows, 1):
            row = int(row)
            vid, path = index.ids[row], index.paths[row]
            expl = compare_pair(model, query.features, index.features(row))
            seg = expl.segment
            positions = None if seg is None else frame_positions(
                seg.b_start, seg.b_end, keyframes)
            g = None if glob is None else glob[rank - 1]
            strip = _strip(path, fps, vid, positions, keyframes, thumb_height,
                           max_frames, missing)
            body.append(f'<tr class="result" data-rank="{rank}">'
                        f'<td class="num">{rank}</td>'
                        f'<td><b>{_esc(vid)}</b><div class="path">{_esc(path)}'
                        f'</div></td>'
                        f'<td class="num">{_score(res.scores[rank - 1])}</td>'
                        f'<td class="num">{_score(g)}</td>'
                        f'<td>{_segment_text(expl, fps)}</td>'
                        f'<td>{strip}</td>'
                        '</tr>')
            n_rows += 1
            if rank <= compare_top:
                fig = plot_comparison(
                    expl,
                    None,
                    fps=fps,
                    names=(_label(query.name), _label(vid)),
                    dpi=dpi)
                png = figure_png(fig, dpi)
                body.append(
                    f'<tr class="comparison" data-rank="{rank}">'
                    '<td colspan="6"><img src="'
                    f'{_data_uri(png, "image/png")}" alt="comparison of '
                    f'{_esc(query.name)} and {_esc(vid)}"></td></tr>')
                n_pics += 1
        if not len(res.rows):
            body.append('<tr><td colspan="6">no result</td></tr>')
        body.append('</tbody></table></section>')
    page = ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<title>{_esc(title)}</title><style>{_STYLE}</style>'
            f'<script>{_CHECK_SCRIPT}</script></head>\n<body '
            'data-check="pending">\n' + '\n'.join(body) + '\n</body></html>\n')
    out_file = osp.abspath(out_file)
    os.makedirs(osp.dirname(out_file), exist_ok=True)
    tmp = out_file + '.part'
    with open(tmp, 'w', encoding='utf-8') as f:
        f.write(page)
    os.replace(tmp, out_file)
    return dict(
        file=out_file,
        queries=len(queries),
        results=n_rows,
        comparisons=n_pics,
        missing=missing)
