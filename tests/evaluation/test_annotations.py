"""Protocol metrics vs. loop transcriptions of docs/method.md section 5."""
import json
import pickle

import numpy as np
import pytest

from hapvr_mm.evaluation.annotations import (ANNOTATIONS, CCWebAnnotation,
                                             EVVEAnnotation, FIVRAnnotation,
                                             JSONAnnotation, SVDAnnotation,
                                             load_annotation)

# ---------------------------------------------------------------- helpers


def dedupe(ids, scores):
    seen, out = set(), []
    for t, s in zip(ids, scores):
        if t not in seen:
            seen.add(t)
            out.append((t, float(s)))
    return out


def stable_ranking(pairs):
    """Python's sorted is stable: ties keep the given order."""
    return sorted(pairs, key=lambda p: -p[1])


def step_ap(ranked_flags, g):
    hits, total = 0, 0.0
    for k, flag in enumerate(ranked_flags, 1):
        if flag:
            hits += 1
            total += hits / k
    return total / g


def mean_or_nan(values):
    return float(np.mean(values)) if values else float('nan')


def make_scores(rng, queries, targets, drop=0.15, levels=4, extra=()):
    """Random scores with ties; some targets missing, some unknown ids."""
    scores = {}
    for q in queries:
        ids = [t for t in targets if rng.random() > drop] + list(extra)
        ids = [ids[i] for i in rng.permutation(len(ids))]
        if ids:
            ids.append(ids[0])  # a duplicate: its first occurrence counts
        vals = rng.integers(0, levels, len(ids)).astype(np.float32)
        scores[q] = (np.array(ids), vals)
    return scores


def assert_metrics(got, expected):
    assert set(got) == set(expected)
    for k, v in expected.items():
        if np.isnan(v):
            assert np.isnan(got[k]), k
        else:
            assert got[k] == pytest.approx(v, abs=1e-9), k


# ------------------------------------------------------------------- FIVR

FIVR_LABELS = {
    'DSVR': ('ND', 'DS'),
    'CSVR': ('ND', 'DS', 'CS'),
    'ISVR': ('ND', 'DS', 'CS', 'IS')
}


def loop_fivr(data, version, scores, easy=()):
    out = {}
    for suffix, removed in [('', set())
                            ] + ([('_hard', set(easy))] if easy else []):
        database = set(data[version]['database']) - removed
        for task, labels in FIVR_LABELS.items():
            aps, pairs, g_total = [], [], 0
            for q in data[version]['queries']:
                if q not in scores:
                    continue
                items = [(t, s) for t, s in dedupe(*scores[q])
                         if t in database and t != q]
                scored = {t for t, _ in items}
                ann = data['annotation'].get(q, {})
                relevant = set()
                for label in labels:
                    relevant |= set(ann.get(label, []))
                relevant = (relevant & scored) - {q}
                ranked = stable_ranking(items)
                if relevant:
                    aps.append(
                        step_ap([t in relevant for t, _ in ranked],
                                len(relevant)))
                pairs += [(t in relevant, s) for t, s in items]
                g_total += len(relevant)
            out[task + suffix] = mean_or_nan(aps)
            pooled = sorted(pairs, key=lambda p: -p[1])
            out[task.replace('R', 'D') + suffix] = (
                step_ap([f for f, _ in pooled], g_total)
                if g_total else float('nan'))
    return out


def make_fivr(rng, tmp_path):
    db = [f'v{i}' for i in range(40)]
    queries = ['q0', 'q1', 'q2', 'q3', 'q4']
    annotation = {}
    for q in queries[:-1]:  # q4 has no annotation at all
        labels = {}
        for label in ('ND', 'DS', 'CS', 'IS'):
            ids = list(rng.choice(db, int(rng.integers(0, 5)), replace=False))
            labels[label] = ids + (['outside1'] if label == 'CS' else [])
        annotation[q] = labels
    annotation['q0']['ND'].append('q0')  # the query itself is never relevant
    annotation['q3'] = {'IS': ['v1', 'v2'], 'XX': ['v3']}  # unknown label
    data = {
        'annotation': annotation,
        '5k': {
            'queries': queries,
            'database': db + ['q0']  # a query that is also a database video
        },
        '200k': {
            'queries': queries[:2],
            'database': db[:20]
        }
    }
    path = tmp_path / 'fivr.pk'
    with open(path, 'wb') as f:
        pickle.dump(data, f)
    easy = list(rng.choice(db, 8, replace=False))
    easy_path = tmp_path / 'easy.txt'
    easy_path.write_text('\n'.join(easy) + '\n')
    return data, str(path), str(easy_path), easy


@pytest.mark.parametrize('seed', range(4))
def test_fivr_matches_loop(tmp_path, seed):
    rng = np.random.default_rng(seed)
    data, path, easy_path, easy = make_fivr(rng, tmp_path)
    for version in ('5k', '200k'):
        ann = FIVRAnnotation(path, version=version, easy_duplicates=easy_path)
        assert ann.name == f'FIVR-{version.upper()}'
        targets = data[version]['database'] + ['q1', 'unknown_video']
        scores = make_scores(rng, ann.queries[:-1] + ['not_a_query'],
                             targets)  # the last query is not scored
        got = ann.evaluate(scores)
        expected = loop_fivr(data, version, scores, easy)
        assert len(got) == 12
        assert_metrics(got, expected)
        plain = FIVRAnnotation(path, version=version)
        assert_metrics(
            plain.evaluate(scores), loop_fivr(data, version, scores))


def test_fivr_easy_list_as_pickle_and_known_value(tmp_path):
    data = {
        'annotation': {
            'q': {
                'ND': ['a'],
                'CS': ['c']
            }
        },
        '5k': {
            'queries': ['q'],
            'database': ['a', 'b', 'c', 'd']
        },
        '200k': {
            'queries': [],
            'database': []
        }
    }
    with open(tmp_path / 'f.pk', 'wb') as f:
        pickle.dump(data, f)
    with open(tmp_path / 'easy.pk', 'wb') as f:
        pickle.dump({'a'}, f)
    ann = FIVRAnnotation(
        str(tmp_path / 'f.pk'), '5k', str(tmp_path / 'easy.pk'))
    scores = {'q': (['b', 'a', 'd', 'c'], [0.9, 0.8, 0.7, 0.6])}
    m = ann.evaluate(scores)
    assert m['DSVR'] == pytest.approx(1 / 2)
    assert m['CSVR'] == pytest.approx((1 / 2 + 2 / 4) / 2)
    assert np.isnan(m['DSVR_hard'])  # no relevant left: query skipped
    assert m['CSVR_hard'] == pytest.approx(1 / 3)  # b, d, c


def test_fivr_wrong_format(tmp_path):
    with pytest.raises(FileNotFoundError, match='missing.pk'):
        FIVRAnnotation(str(tmp_path / 'missing.pk'))
    bad = tmp_path / 'bad.pk'
    with open(bad, 'wb') as f:
        pickle.dump({'queries': []}, f)
    with pytest.raises(ValueError, match='bad.pk.*annotation'):
        FIVRAnnotation(str(bad))
    text = tmp_path / 'text.pk'
    text.write_text('not a pickle')
    with pytest.raises(ValueError, match='text.pk'):
        FIVRAnnotation(str(text))
    good = tmp_path / 'good.pk'
    with open(good, 'wb') as f:
        pickle.dump({
            'annotation': {},
            '5k': {
                'queries': [],
                'database': []
            }
        }, f)
    with pytest.raises(ValueError, match="'200k'"):
        FIVRAnnotation(str(good), version='200k')
    with pytest.raises(ValueError, match='version'):
        FIVRAnnotation(str(good), version='1k')
    easy = tmp_path / 'easy.txt'
    easy.write_text('a b\n')
    with pytest.raises(ValueError, match='easy.txt:1'):
        FIVRAnnotation(str(good), easy_duplicates=str(easy))


# ------------------------------------------------------------------- EVVE


def loop_evve(data, scores):
    queries, database = data['queries'], data['database']
    targets = set(database)  # the other queries are never targets
    event_of = {
        q: e
        for e, (qs, _, _) in data['annotation'].items()
        for q in qs
    }
    aps, per_event, pairs, g_total = [], {}, [], 0
    for q in queries:
        if q not in scores:
            continue
        event = event_of[q]
        positives = set(data['annotation'][event][1]) - {q}
        if not positives:
            continue
        items = [(t, s) for t, s in dedupe(*scores[q])
                 if t in targets and t != q]
        ranked = stable_ranking(items)
        ap, ntp = 0.0, 0
        for rank, (t, _) in enumerate(ranked):
            if t in positives:
                p0 = 1.0 if rank == 0 else ntp / rank
                p1 = (ntp + 1) / (rank + 1)
                ap += (p0 + p1) / 2 / len(positives)
                ntp += 1
        aps.append(ap)
        per_event.setdefault(event, []).append(ap)
        pairs += [(t in positives, s) for t, s in items]
        g_total += len(positives)
    out = {'mAP': mean_or_nan(aps)}
    pooled = sorted(pairs, key=lambda p: -p[1])
    out['uAP'] = step_ap([f for f, _ in pooled], g_total)
    for event in data['annotation']:
        out[f'mAP_{event}'] = mean_or_nan(per_event.get(event, []))
    return out


@pytest.mark.parametrize('seed', range(4))
def test_evve_matches_loop(tmp_path, seed):
    rng = np.random.default_rng(100 + seed)
    database = [f'd{i}' for i in range(30)]
    events = {}
    queries = []
    for e in range(3):
        qs = [f'e{e}q{i}' for i in range(3)]
        queries += qs
        positives = list(rng.choice(database, 5, replace=False))
        positives += [qs[1], 'not_in_targets']  # a query, an absent video
        nulls = list(rng.choice(database, 4, replace=False))
        events[f'ev{e}'] = (qs, positives, nulls)
    events['empty'] = ([], [], [])
    data = {'annotation': events, 'queries': queries, 'database': database}
    events['ev0'][1].append('e0q0')  # a query among its own positives
    path = tmp_path / 'evve.pk'
    with open(path, 'wb') as f:
        pickle.dump(data, f)
    ann = EVVEAnnotation(str(path))
    # each query is scored against the database only
    assert ann.targets == database
    assert ann.targets_of(queries[0]) == database
    assert set(ann.all_ids) == set(database) | set(queries)
    # scores against the other queries (and unknown ids) are ignored
    scores = make_scores(rng, queries[1:], database + queries, levels=6)
    got = ann.evaluate(scores)
    assert np.isnan(got['mAP_empty'])
    assert_metrics(got, loop_evve(data, scores))
    database_only = {}
    for q, (ids, vals) in scores.items():
        keep = np.isin(ids, database)
        database_only[q] = (ids[keep], vals[keep])
    assert_metrics(ann.evaluate(database_only), got)


def test_evve_queries_never_rank_as_negatives(tmp_path):
    data = {
        'annotation': {
            'ev': (['q0', 'q1'], ['d0'], [])
        },
        'queries': ['q0', 'q1'],
        'database': ['d0', 'd1']
    }
    path = tmp_path / 'evve.pk'
    with open(path, 'wb') as f:
        pickle.dump(data, f)
    ann = EVVEAnnotation(str(path))
    # q1 outscores the positive d0; were it a target, AP would be
    # (1/1 + 1/2) / 2 = 0.75 instead of 1 (first rank, precision 1)
    scores = {'q0': (np.array(['q1', 'd0', 'd1']), np.array([0.9, 0.5, 0.1]))}
    got = ann.evaluate(scores)
    assert got['mAP'] == 1.0
    assert got['uAP'] == 1.0


def test_evve_wrong_format(tmp_path):
    path = tmp_path / 'evve.pk'
    with open(path, 'wb') as f:
        pickle.dump(
            {
                'annotation': {
                    'e': (['q'], ['a'])
                },
                'queries': ['q'],
                'database': ['a']
            }, f)
    with pytest.raises(ValueError, match='evve.pk.*positives, nulls'):
        EVVEAnnotation(str(path))
    with open(path, 'wb') as f:
        pickle.dump([1, 2], f)
    with pytest.raises(ValueError, match='evve.pk'):
        EVVEAnnotation(str(path))


# -------------------------------------------------------------------- SVD


def loop_svd(labels, unlabeled, scores):
    aps, pairs = [], []
    for q, cands in labels.items():
        if q not in scores:
            continue
        items = []
        for t, s in dedupe(*scores[q]):
            if t == q:
                continue
            if t in cands:
                items.append((cands[t] == 1, s))
            elif t in unlabeled:
                items.append((False, s))
        pairs += items
        if any(f for f, _ in items):
            aps.append(sk_ap(items))
    return {'mAP': mean_or_nan(aps), 'uAP': sk_ap(pairs)}


def sk_ap(items):
    n_pos = sum(f for f, _ in items)
    ap, prev = 0.0, 0.0
    for t in sorted({s for _, s in items}, reverse=True):
        above = [f for f, s in items if s >= t]
        recall = sum(above) / n_pos
        ap += (recall - prev) * sum(above) / len(above)
        prev = recall
    return ap


@pytest.mark.parametrize('seed', range(4))
def test_svd_matches_loop(tmp_path, seed):
    rng = np.random.default_rng(200 + seed)
    videos = [f'c{i}' for i in range(25)]
    unlabeled = [f'u{i}' for i in range(10)] + ['c0']
    labels, lines = {}, []
    for q in ('qa', 'qb', 'qc', 'qd'):
        cands = rng.choice(videos, 8, replace=False)
        labels[q] = {}
        for c in cands:
            lab = int(rng.random() < 0.4) if q != 'qd' else 0
            labels[q][c] = lab
            lines.append(f'{q} {c} {lab}')
    lines.insert(3, '')
    gt = tmp_path / 'gt.txt'
    gt.write_text('\n'.join(lines) + '\n')
    ul = tmp_path / 'unlabeled.txt'
    ul.write_text('\n'.join(unlabeled) + '\n')
    ann = SVDAnnotation(str(gt), str(ul))
    assert ann.queries == ['qa', 'qb', 'qc', 'qd']
    assert set(ann.targets_of('qa')) == set(labels['qa']) | set(unlabeled)
    scores = make_scores(
        rng, ann.queries, videos + unlabeled + ['qa'], levels=5)
    got = ann.evaluate(scores)
    # positive wins when a candidate is also unlabeled
    assert_metrics(got, loop_svd(labels, set(unlabeled), scores))
    ann2 = SVDAnnotation(str(gt))
    assert_metrics(ann2.evaluate(scores), loop_svd(labels, set(), scores))


def test_svd_wrong_format(tmp_path):
    gt = tmp_path / 'gt.txt'
    gt.write_text('q a 1\nq b\n')
    with pytest.raises(ValueError, match='gt.txt:2'):
        SVDAnnotation(str(gt))
    gt.write_text('q a 2\n')
    with pytest.raises(ValueError, match='gt.txt:1'):
        SVDAnnotation(str(gt))
    gt.write_bytes(pickle.dumps({'a': 1}))
    with pytest.raises(ValueError, match='gt.txt'):
        SVDAnnotation(str(gt))
    with pytest.raises(FileNotFoundError, match='nope.txt'):
        SVDAnnotation(str(tmp_path / 'nope.txt'))


# ----------------------------------------------------------------- CC_WEB


def loop_cc_web(data, scores):
    out = {}
    for name, all_videos, clean in [('mAP', False, False),
                                    ('mAP*', True, False),
                                    ('mAP_clean', False, True),
                                    ('mAP*_clean', True, True)]:
        aps = []
        for s_idx, q in enumerate(data['queries']):
            if q not in scores:
                continue
            labels = data['ground_truth'][s_idx]
            excluded = data['excluded'][s_idx]
            items = [(t, s) for t, s in dedupe(*scores[q])
                     if t in data['index']]
            i = ri = 0
            total = 0.0
            for t, _ in stable_ranking(items):
                video = data['index'][t]
                if ((all_videos or video in labels)
                        and (not clean or video not in excluded)):
                    ri += 1
                    if video in labels and labels[video] in 'ESLMV':
                        i += 1
                        total += i / ri
            positives = sum(
                1 for v, lab in labels.items()
                if lab in 'ESLMV' and (not clean or v not in excluded))
            if positives:
                aps.append(total / positives)
        out[name] = mean_or_nan(aps)
    return out


@pytest.mark.parametrize('seed', range(4))
def test_cc_web_matches_loop(tmp_path, seed):
    rng = np.random.default_rng(300 + seed)
    videos = [f'{i}_vid' for i in range(40)]
    index = {v: i + 1 for i, v in enumerate(videos)}
    queries = ['0_vid', '10_vid', '20_vid']
    gt, excluded = [], []
    for q in queries:
        chosen = rng.choice(40, 15, replace=False) + 1
        gt.append({int(n): str(rng.choice(list('ESLMVX-'))) for n in chosen})
        gt[-1][index[q]] = 'E'
        excluded.append({int(n) for n in rng.choice(chosen, 4)})
    data = {
        'index': index,
        'queries': queries,
        'ground_truth': gt,
        'excluded': excluded
    }
    path = tmp_path / 'cc.pk'
    with open(path, 'wb') as f:
        pickle.dump(data, f)
    ann = CCWebAnnotation(str(path))
    scores = make_scores(rng, queries[:2], videos + ['stranger'], levels=6)
    assert_metrics(ann.evaluate(scores), loop_cc_web(data, scores))


def test_cc_web_wrong_format(tmp_path):
    path = tmp_path / 'cc.pk'
    with open(path, 'wb') as f:
        pickle.dump({'index': {}, 'queries': ['a']}, f)
    with pytest.raises(ValueError, match='cc.pk.*ground_truth'):
        CCWebAnnotation(str(path))
    with open(path, 'wb') as f:
        pickle.dump(
            {
                'index': {
                    'a': 1
                },
                'queries': ['a'],
                'ground_truth': [],
                'excluded': []
            }, f)
    with pytest.raises(ValueError, match='one entry per query set'):
        CCWebAnnotation(str(path))


# ------------------------------------------------------------------- JSON


def test_json_matches_loop_and_builder(tmp_path):
    rng = np.random.default_rng(7)
    db = [f'v{i}' for i in range(30)]
    queries = ['qa', 'qb', 'qc']
    relevance = {
        'qa': list(rng.choice(db, 5, replace=False)) + ['qa', 'gone'],
        'qb': [],
    }
    path = tmp_path / 'ann.json'
    db.append('qa')  # the query is also a database video
    path.write_text(
        json.dumps({
            'name': 'mine',
            'queries': queries,
            'database': db,
            'relevance': relevance
        }))
    ann = load_annotation(dict(type='JSON', ann_file=str(path)))
    assert isinstance(ann, JSONAnnotation) and ann.name == 'mine'
    scores = make_scores(rng, queries, db + ['qb'], levels=4)
    assert 'qa' in scores['qa'][0]
    fivr_like = {
        'annotation': {
            q: {
                'ND': v
            }
            for q, v in relevance.items()
        },
        '5k': {
            'queries': queries,
            'database': db
        }
    }
    expected = loop_fivr(fivr_like, '5k', scores)
    got = ann.evaluate(scores)
    assert_metrics(got, {'mAP': expected['DSVR'], 'uAP': expected['DSVD']})


def test_json_wrong_format(tmp_path):
    path = tmp_path / 'ann.json'
    path.write_text('{not json')
    with pytest.raises(ValueError, match='ann.json'):
        JSONAnnotation(str(path))
    path.write_text(json.dumps({'queries': ['a']}))
    with pytest.raises(ValueError, match='ann.json.*database'):
        JSONAnnotation(str(path))
    path.write_text(
        json.dumps({
            'queries': ['a'],
            'database': ['b'],
            'relevance': {
                'x': ['b']
            }
        }))
    with pytest.raises(ValueError, match='not queries'):
        JSONAnnotation(str(path))


def test_builder_and_bad_scores(tmp_path):
    assert {'FIVR', 'EVVE', 'SVD', 'CC_WEB_VIDEO',
            'JSON'} <= set(ANNOTATIONS.module_dict)
    with pytest.raises(ValueError, match='unknown annotation type'):
        load_annotation(dict(type='Nope'))
    with pytest.raises(ValueError, match='"type"'):
        load_annotation(dict(ann_file='x'))
    path = tmp_path / 'ann.json'
    path.write_text(
        json.dumps({
            'queries': ['a'],
            'database': ['b', 'c'],
            'relevance': {
                'a': ['b']
            }
        }))
    ann = load_annotation(type='JSON', ann_file=str(path))
    assert load_annotation(ann) is ann
    with pytest.raises(ValueError, match="query 'a'.*2 entries"):
        ann.evaluate({'a': (['b', 'c'], [1.0])})
    with pytest.raises(ValueError, match='finite'):
        ann.evaluate({'a': (['b', 'c'], [1.0, np.inf])})
    assert ann.evaluate({'a': (['b', 'c'], [1.0, 2.0])}) == {
        'mAP': 0.5,
        'uAP': 0.5
    }


def test_nan_metrics_are_logged_with_their_reason(tmp_path, monkeypatch):
    import hapvr_mm.evaluation.annotations.base as base
    logged = []
    monkeypatch.setattr(base, 'print_log',
                        lambda msg, **kw: logged.append(msg))
    path = tmp_path / 'ann.json'
    path.write_text(
        json.dumps(
            dict(
                name='T',
                queries=['q0', 'q1'],
                database=['a', 'b'],
                relevance={'q0': ['a']})))
    ann = JSONAnnotation(str(path))
    # no query scored
    got = ann.evaluate({})
    assert np.isnan(got['mAP']) and np.isnan(got['uAP'])
    assert any('T/mAP is NaN: no query could be evaluated' in m
               for m in logged), logged
    # scored, but no scored target is a database video
    logged.clear()
    ann.evaluate({'q0': (np.array(['q1']), np.array([0.5]))})
    assert any('T/uAP is NaN: empty database' in m for m in logged), logged
    # scored database videos, none relevant
    logged.clear()
    got = ann.evaluate({'q1': (np.array(['a', 'b']), np.array([0.5, 0.1]))})
    assert np.isnan(got['mAP'])
    assert any('T/mAP is NaN: no positive for any query' in m
               for m in logged), logged
    # a metric with a value is not reported
    logged.clear()
    got = ann.evaluate({'q0': (np.array(['a', 'b']), np.array([0.5, 0.1]))})
    assert got['mAP'] == 1.0 and logged == []


def test_annotations_registry(tmp_path):
    """Annotations live in an mmengine Registry and build through it, in any
    default scope; an unknown type lists the registered ones."""
    from mmengine.registry import DefaultScope, Registry

    from hapvr_mm.registry import ANNOTATIONS as REGISTRY
    assert REGISTRY is ANNOTATIONS and isinstance(REGISTRY, Registry)
    assert REGISTRY.get('FIVR') is FIVRAnnotation
    assert REGISTRY.get('CC_WEB_VIDEO') is CCWebAnnotation
    path = tmp_path / 'ann.json'
    path.write_text(
        json.dumps({
            'queries': ['a'],
            'database': ['b'],
            'relevance': {
                'a': ['b']
            }
        }))
    assert DefaultScope.get_current_instance().scope_name == 'mmaction'
    ann = REGISTRY.build(dict(type='JSON', ann_file=str(path)))
    assert ann.queries == ['a']
    with pytest.raises(ValueError) as info:
        REGISTRY.build(dict(type='FIRV', ann_file=str(path)))
    for name in ('CC_WEB_VIDEO', 'EVVE', 'FIVR', 'JSON', 'SVD'):
        assert name in str(info.value)
