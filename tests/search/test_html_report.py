"""The results page of ``tools/search.py --html``.

A small collection of demo videos (tools/data/make_demo_dataset.py: one
query, three transformed copies, three distractors, plus a copy whose name
holds ``<b>&"`` and a video deleted after indexing) is indexed with the
untrained demo model, searched with ``--html``, and the page is checked
as HTML (one row per result, every image a decodable ``data:`` URI, no web
address, text escaped, a placeholder for the missing video) and in
headless Chromium (no console or script error, every image decoded, one
row per result, a screenshot of the requested size).

The Chromium test skips when no browser is on PATH, and fails instead
when ``HAPVR_REQUIRE_CHROMIUM=1`` (set by .ci/run once it has installed
Debian's ``chromium``). ``HAPVR_SCREENSHOT=PATH`` keeps its screenshot::

    HAPVR_SCREENSHOT=docs/images/search_results.png \\
        HAPVR_SCREENSHOT_CHECKPOINT=work_dirs/hapvr_demo/iter_80.pth \\
        python -m pytest tests/search/test_html_report.py -k chromium

(``HAPVR_SCREENSHOT_CHECKPOINT``: index with that demo checkpoint instead
of the untrained model.)
"""
import base64
import html
import json
import os
import os.path as osp
import re
import shutil
import struct
import subprocess
import sys
from html.parser import HTMLParser

import cv2
import numpy as np
import pytest

from hapvr_mm.utils import load_script

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs', 'demo', 'hapvr_demo.py')
ODD_NAME = 'odd <b>&"copy'
TOPK = 7
COMPARE = 2
SHOT_SIZE = (1200, 1500)


class PageParser(HTMLParser):
    """Collects result rows, comparison rows, images, links and text."""

    def __init__(self):
        super().__init__()
        self.rows, self.comparisons, self.images = [], [], []
        self.urls, self.text = [], []
        self._row = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        cls = attrs.get('class', '')
        if tag == 'tr' and cls == 'result':
            self._row = dict(rank=int(attrs['data-rank']), text=[], imgs=0)
            self.rows.append(self._row)
        elif tag == 'tr':
            self._row = None
            if cls == 'comparison':
                self.comparisons.append(int(attrs['data-rank']))
        if tag == 'img':
            self.images.append(attrs)
            if self._row is not None:
                self._row['imgs'] += 1
        for key in ('href', 'src', 'action', 'poster'):
            if key in attrs:
                self.urls.append(attrs[key])

    def handle_data(self, data):
        self.text.append(data)
        if self._row is not None:
            self._row['text'].append(data)


def load_search_tool():
    """tools/search.py as a module (its ``main`` runs in this process)."""
    return load_script(osp.join(ROOT, 'tools', 'search.py'))


def write_index(videos, out):
    """Index ``{id: path}`` with the demo model, as
    tools/extract_features.py --videos does: untrained (checkpoint 'none'),
    or the checkpoint ``HAPVR_SCREENSHOT_CHECKPOINT`` names (the README's
    screenshot uses the quick start's trained model)."""
    from mmengine.config import Config

    from hapvr_mm.search import (IndexWriter, build_search_model,
                                 config_to_json, decode_settings, embed_files,
                                 model_fingerprint)
    cfg = Config.fromfile(CONFIG)
    ckpt = os.environ.get('HAPVR_SCREENSHOT_CHECKPOINT') or 'none'
    model = build_search_model(cfg, ckpt, 'cpu')
    settings = decode_settings(cfg)
    embedded = embed_files(model, list(videos.values()), settings)
    with IndexWriter(
            str(out),
            model.feature_dims,
            attrs=dict(
                config=CONFIG,
                config_json=config_to_json(cfg),
                checkpoint=osp.abspath(ckpt) if ckpt != 'none' else ckpt,
                fingerprint=model_fingerprint(model),
                **settings)) as writer:
        for (vid, path), (feats, glob, reason) in zip(videos.items(),
                                                      embedded):
            assert reason is None, (path, reason)
            writer.add(vid, feats, glob, path)


@pytest.fixture(scope='module')
def page(tmp_path_factory):
    """Index the collection, search it with --html; the page, the JSON
    results, and the ids of the odd-named and the deleted video."""
    root = tmp_path_factory.mktemp('html_report')
    subprocess.run([
        sys.executable,
        osp.join(ROOT, 'tools', 'data', 'make_demo_dataset.py'), '--out',
        str(root / 'demo'), '--num-train', '0', '--num-queries', '1',
        '--copies-per-query', '3', '--num-distractors', '3', '--min-seconds',
        '6', '--max-seconds', '10', '--quiet'
    ],
                   check=True,
                   env=dict(os.environ, OMP_NUM_THREADS='1'),
                   timeout=120)
    folder = root / 'demo' / 'eval' / 'videos'
    truth = json.loads(
        (root / 'demo' / 'eval' / 'metadata.json').read_text())['videos']
    copies = sorted(vid for vid, m in truth.items() if m.get('query'))
    videos = {p.name: str(p) for p in sorted(folder.glob('*.mp4'))}
    odd = folder / f'{ODD_NAME}.mp4'
    shutil.copy(folder / f'{copies[0]}.mp4', odd)
    videos[odd.name] = str(odd)
    write_index(videos, root / 'index.h5')
    distractors = sorted(f'{vid}.mp4' for vid, m in truth.items()
                         if not m.get('query'))
    gone = distractors[0]
    os.remove(videos[gone])
    out_html = root / 'out' / 'results.html'
    table = load_search_tool().main([
        str(root / 'index.h5'),
        str(folder / 'q000.mp4'), '--topk',
        str(TOPK), '--out',
        str(root / 'out' / 'results'), '--html',
        str(out_html), '--html-compare',
        str(COMPARE), '--device', 'cpu'
    ])
    return dict(
        root=root,
        html=out_html,
        text=out_html.read_text(encoding='utf-8'),
        table=table,
        odd=odd.name,
        gone=gone,
        gone_path=videos[gone])


def decode_data_uri(uri):
    match = re.fullmatch(r'data:(image/(?:jpeg|png));base64,([A-Za-z0-9+/=]+)',
                         uri)
    assert match, uri[:80]
    data = base64.b64decode(match.group(2), validate=True)
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None and img.size > 0, uri[:80]
    return match.group(1), data, img


def test_page_rows_images_and_escaping(page):
    parser = PageParser()
    parser.feed(page['text'])
    results = page['table'][0]['results']
    assert len(results) == TOPK  # 8 videos, the query left out
    # one row per result, in rank order, with its id
    assert [r['rank'] for r in parser.rows] == list(range(1, TOPK + 1))
    for row, res in zip(parser.rows, results):
        assert res['id'] in row['text']
        assert f'{res["score"]:.3f}' in row['text']
        assert f'{res["global_score"]:.3f}' in row['text']
    assert parser.comparisons == list(range(1, COMPARE + 1))
    # every picture is embedded and decodes: query strip (6), result
    # strips, comparison pictures (PNG)
    kinds = [decode_data_uri(img['src'])[0] for img in parser.images]
    assert kinds.count('image/png') == COMPARE
    assert kinds[:6] == ['image/jpeg'] * 6
    assert all(img.get('alt') for img in parser.images)
    assert all(u.startswith('data:') for u in parser.urls)
    assert not re.search(r'https?:', page['text'])
    assert '<link' not in page['text']
    # user text is escaped: the odd id reads back as itself, never as markup
    assert ODD_NAME not in page['text']
    assert html.escape(ODD_NAME) in page['text']
    odd_row = [r for r in parser.rows if page['odd'] in r['text']]
    assert len(odd_row) == 1 and odd_row[0]['imgs'] >= 1
    # the deleted video: a row with a placeholder, no picture
    gone = [r for r in parser.rows if page['gone'] in r['text']]
    assert len(gone) == 1 and gone[0]['imgs'] == 0
    assert any('keyframes unavailable' in t for t in gone[0]['text'])
    # the other rows have keyframes; the segment is in seconds
    others = [r for r in parser.rows if page['gone'] not in r['text']]
    assert all(r['imgs'] >= 1 for r in others)
    assert all(
        re.search(r'query [\d.]+\u2013[\d.]+ s', ''.join(r['text']))
        for r in parser.rows)
    # the JSON and CSV outputs are still written
    assert (page['root'] / 'out' / 'results.json').is_file()
    assert (page['root'] / 'out' / 'results.csv').is_file()
    assert not list(page['html'].parent.glob('*.part'))


def test_keyframes_are_frames_at_the_index_fps(tmp_path):
    """Keyframe ``i`` is second ``i / fps`` (frame ``i`` of the matrix),
    and a position past the end wraps around."""
    from hapvr_mm.search import frame_positions, keyframe_thumbnails
    path = str(tmp_path / 'grey.mp4')
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'mp4v'), 4,
                             (64, 48))
    for sec in range(6):  # second s: grey level 40 * s
        for _ in range(4):
            writer.write(np.full((48, 64, 3), 40 * sec, np.uint8))
    writer.release()
    thumbs = keyframe_thumbnails(path, 1.0, [0, 3, 5, 7], height=24)
    positions = [p for p, _ in thumbs]
    assert positions == [0, 1, 3, 5]  # 7 wraps to 1 in 6 frames
    for pos, jpeg in thumbs:
        img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert img.shape == (24, 32, 3)
        assert abs(float(img.mean()) - 40 * pos) < 6, (pos, img.mean())
    # at 2 fps, frame 4 is second 2
    (pos, jpeg), = keyframe_thumbnails(path, 2.0, [4], height=24)
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert abs(float(img.mean()) - 80) < 6
    assert len(keyframe_thumbnails(path, 1.0, count=3)) == 3
    assert frame_positions(2, 9, 4) == [2, 4, 7, 9]
    assert frame_positions(3, 4, 6) == [3, 4]
    with pytest.raises(ValueError, match='start <= end'):
        frame_positions(5, 2, 3)


class FeatureIndex:
    """An index of features only: no video files are known."""

    def __init__(self, feats):
        self.feats = feats
        self.ids = [f'clip{i}' for i in range(len(feats))]
        self.paths = [''] * len(feats)
        self.fps = 2.0
        self.attrs = {}

    def features(self, row):
        return self.feats[row]


def test_page_without_video_files_and_unscored_rows(tmp_path):
    """An index with no paths (placeholders), a row ranked by the global
    descriptor only (NaN score) and no global scores ('n/a'); segments in
    seconds at the index's fps; figures are closed."""
    import matplotlib.pyplot as plt
    import torch
    from search_utils import make_model, random_videos

    from hapvr_mm.search import (Query, QueryResult, compare_pair,
                                 write_html_report)
    model = make_model()
    with torch.no_grad():
        feats = [model.index_video(v) for v in random_videos(4, seed=2)]
    index = FeatureIndex(feats)
    query = Query('clip0', feats[0], torch.zeros(8), 0, '')
    open_figures = plt.get_fignums()  # other tests may leave some open
    res = QueryResult(np.array([2, 1, 3]), np.array([0.5, 0.25, np.nan]), None)
    out = write_html_report(
        str(tmp_path / 'sub' / 'p.html'),
        model,
        index, [query], [res],
        compare_top=1)
    assert out['results'] == 3 and out['comparisons'] == 1
    assert out['missing'] == ['clip0', 'clip2', 'clip1', 'clip3']
    assert plt.get_fignums() == open_figures
    text = (tmp_path / 'sub' / 'p.html').read_text(encoding='utf-8')
    parser = PageParser()
    parser.feed(text)
    assert [r['rank'] for r in parser.rows] == [1, 2, 3]
    assert [r['imgs'] for r in parser.rows] == [0, 0, 0]
    assert len(parser.images) == 1  # the comparison picture
    assert decode_data_uri(parser.images[0]['src'])[0] == 'image/png'
    assert text.count('the index stores no path') == 4
    cells = [''.join(r['text']) for r in parser.rows]
    assert '0.500' in cells[0] and 'n/a' in cells[2]
    assert all(c.count('n/a') >= 1 for c in cells)  # no global scores
    seg = compare_pair(model, feats[0], feats[2]).segment
    assert (f'result {seg.b_start / 2:g}–{(seg.b_end + 1) / 2:g} s'
            in cells[0])


def test_bad_arguments(tmp_path):
    from hapvr_mm.search import write_html_report
    with pytest.raises(ValueError, match='1 queries but 0 result'):
        write_html_report(str(tmp_path / 'x.html'), None, None, [object()], [])
    tool = load_search_tool()
    with pytest.raises(SystemExit):
        tool.parse_args(['i.h5', 'q.mp4', '--html-compare', '-1'])


# ------------------------------------------------------------ Chromium
def find_browser():
    for name in ('chromium', 'chromium-browser', 'google-chrome'):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture
def browser():
    """The headless browser; skips (before the collection is built) when
    there is none, fails instead with HAPVR_REQUIRE_CHROMIUM=1."""
    path = find_browser()
    if path is None:
        if os.environ.get('HAPVR_REQUIRE_CHROMIUM') == '1':
            pytest.fail('HAPVR_REQUIRE_CHROMIUM=1 but no chromium, '
                        'chromium-browser or google-chrome is on PATH')
        pytest.skip('no headless browser (chromium, chromium-browser or '
                    'google-chrome) on PATH; .ci/run installs Debian\'s '
                    'chromium')
    return path


def run_browser(browser, tmp_path, url, *extra):
    """Run headless Chromium on ``url``; (stdout, stderr)."""
    cmd = [
        browser, '--headless', '--disable-gpu', '--hide-scrollbars',
        '--no-first-run', '--disable-extensions',
        f'--user-data-dir={tmp_path / "chromium-profile"}',
        '--enable-logging=stderr', '--v=0', '--virtual-time-budget=5000',
        *extra, url
    ]
    if hasattr(os, 'geteuid') and os.geteuid() == 0:
        cmd.insert(1, '--no-sandbox')
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout, proc.stderr


def page_check(browser, tmp_path, path):
    """The page's own check (body attributes) and its console lines."""
    dom, log = run_browser(browser, tmp_path, 'file://' + str(path),
                           '--dump-dom')
    body = re.search(r'<body([^>]*)>', dom)
    assert body, dom[:500]
    attrs = dict(re.findall(r'(data-[\w-]+)="([^"]*)"', body.group(1)))
    console = [ln for ln in log.splitlines() if ':CONSOLE' in ln]
    return dom, attrs, console


def test_page_in_headless_chromium(browser, page, tmp_path):
    parser = PageParser()
    parser.feed(page['text'])
    dom, attrs, console = page_check(browser, tmp_path, page['html'])
    assert attrs.get('data-check') == 'done', attrs
    assert attrs['data-errors'] == ''
    assert console == []  # the page logs nothing: any line is an error
    assert int(attrs['data-images']) == len(parser.images) > TOPK
    assert attrs['data-images-loaded'] == attrs['data-images']
    assert len(re.findall(r'<tr class="result"', dom)) == TOPK
    # the same check catches a broken image and a script error
    bad = tmp_path / 'bad.html'
    bad.write_text(
        page['text'].replace(
            '</body>', '<img src="data:image/png;base64,AAAA" alt="bad">'
            '<script>no_such_function();</script></body>'),
        encoding='utf-8')
    _, bad_attrs, bad_console = page_check(browser, tmp_path, bad)
    assert 'image failed to load: bad' in bad_attrs['data-errors']
    assert 'no_such_function' in bad_attrs['data-errors']
    assert int(bad_attrs['data-images-loaded']) == len(parser.images)
    assert any('no_such_function' in ln for ln in bad_console)
    # a screenshot of the requested size (kept with HAPVR_SCREENSHOT)
    shot = os.environ.get('HAPVR_SCREENSHOT') or str(tmp_path / 'page.png')
    shot = osp.abspath(shot)
    os.makedirs(osp.dirname(shot), exist_ok=True)
    run_browser(browser, tmp_path, 'file://' + str(page['html']),
                f'--screenshot={shot}',
                f'--window-size={SHOT_SIZE[0]},{SHOT_SIZE[1]}')
    with open(shot, 'rb') as f:
        head = f.read(24)
    assert head[:8] == b'\x89PNG\r\n\x1a\n'
    assert struct.unpack('>II', head[16:24]) == SHOT_SIZE
