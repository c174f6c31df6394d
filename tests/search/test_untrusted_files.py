"""Files from someone else cannot run code, at every entry point.

Each test plants a payload that would create a marker file if it ran
(``__reduce__`` returning ``(open, (marker, 'w'))`` or ``os.system``,
Python config text, a config file named by an index) and checks that
nothing is created and that the error names the file.
"""
import json
import os
import os.path as osp
import pickle
import re
import runpy

import numpy as np
import pytest
import torch

from hapvr_mm.datasets.annotations import load_annotation, read_id_list
from hapvr_mm.engine.runner.similarity_io import read_scores
from hapvr_mm.search import IndexWriter
from hapvr_mm.utils.safe_io import UnsafePickleError

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs', 'demo', 'hapvr_demo.py')


def tool(name):
    """``main`` of ``tools/<name>.py``, run in this process."""
    return runpy.run_path(osp.join(ROOT, 'tools', f'{name}.py'))['main']


class OpenMarker:
    """Unpickling it would call ``open(marker, 'w')``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, 'w')


class SystemMarker:
    """Unpickling it would call ``os.system('touch marker')``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f'touch {self.marker}', )


def dump(path, obj):
    with open(path, 'wb') as f:
        pickle.dump(obj, f)
    return str(path)


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / 'PWNED'
    yield path
    assert not path.exists(), 'a payload ran'


# ---------------------------------------------------------------- index


def planted_index(tmp_path, marker, **attrs):
    """An index of one video whose attributes carry payloads."""
    evil_py = tmp_path / 'evil_config.py'
    evil_py.write_text(f'open({str(marker)!r}, "w").close()\n'
                       "model = dict(type='HAPVR')\n")
    base = dict(
        config=str(evil_py),
        checkpoint='none',
        fingerprint='0' * 40,
        fps=1.0,
        short_side=8,
        crop=8,
        max_frames=None)
    base.update(attrs)
    path = tmp_path / 'planted.h5'
    with IndexWriter(str(path), 4, base) as w:
        w.add('a.mp4', torch.zeros(3, 2, 4), torch.ones(4), '/v/a.mp4')
    return str(path)


PY_TEXT = "open('{marker}', 'w').close()\nmodel = dict(type='HAPVR')\n"


@pytest.mark.parametrize('with_text', [True, False])
def test_search_refuses_an_index_with_code(tmp_path, marker, with_text):
    attrs = dict(config_text=PY_TEXT.format(marker=marker)) \
        if with_text else {}
    index = planted_index(tmp_path, marker, **attrs)
    with pytest.raises(ValueError, match=re.escape(index)) as err:
        tool('search')([index, 'a.mp4', '--out', str(tmp_path / 'r')])
    assert '--config' in str(err.value)
    if with_text:
        assert 'tools/extract_features.py' in str(err.value)
    assert not (tmp_path / 'r.json').exists()


def test_compare_refuses_an_index_with_code(tmp_path, marker):
    index = planted_index(
        tmp_path, marker, config_text=PY_TEXT.format(marker=marker))
    with pytest.raises(ValueError, match=re.escape(index)) as err:
        tool('compare_videos')([
            'a.mp4', 'a.mp4', '--index', index, '--out',
            str(tmp_path / 'p.png')
        ])
    assert 'tools/extract_features.py' in str(err.value)
    assert not (tmp_path / 'p.png').exists()


# --------------------------------------------------------- similarities


@pytest.fixture
def eval_config(tmp_path):
    ann = tmp_path / 'ann.json'
    ann.write_text(
        json.dumps(
            dict(queries=['q'], database=['a', 'b'], relevance={'q': ['a']})))
    cfg = tmp_path / 'eval_cfg.py'
    cfg.write_text("test_evaluator = dict(type='RetrievalAPMetric', "
                   f"annotation=dict(type='JSON', ann_file={str(ann)!r}))\n")
    return str(cfg)


@pytest.mark.parametrize('payload', [OpenMarker, SystemMarker])
def test_eval_similarities_refuses_pickle_payloads(tmp_path, marker,
                                                   eval_config, payload):
    main = tool('eval_similarities')
    alone = dump(tmp_path / 'sims.pkl', payload(marker))
    with pytest.raises(UnsafePickleError, match=re.escape(alone)):
        main([eval_config, alone])
    hidden = dump(tmp_path / 'hidden.pickle',
                  {'q': {
                      'a': 0.9,
                      'b': [0.1, payload(marker)]
                  }})
    with pytest.raises(UnsafePickleError, match=re.escape(hidden)):
        main([eval_config, hidden])
    # a pickle named .json is bad JSON, never unpickled
    fake = dump(tmp_path / 'sims.json', {'q': {'a': payload(marker)}})
    with pytest.raises(ValueError, match=re.escape(fake) + '.*json'):
        main([eval_config, fake])


def test_eval_similarities_reads_legit_files(tmp_path, eval_config):
    main = tool('eval_similarities')
    for name in ('s.pkl', 's.pk', 's.pickle'):
        path = dump(tmp_path / name, {'q': {'a': 0.9, 'b': 0.1}})
        assert main([eval_config, path])['JSON/mAP'] == 1.0
    pairs = dump(tmp_path / 'pairs.pkl',
                 {'q': (np.array(['a', 'b']), np.array([0.2, 0.7]))})
    assert main([eval_config, pairs])['JSON/mAP'] == 0.5
    npz = tmp_path / 's.npz'
    np.savez(
        npz,
        query_ids=np.array(['q']),
        target_ids=np.array(['a', 'b']),
        scores=np.array([[0.9, 0.1]], dtype=np.float32))
    assert main([eval_config, str(npz)])['JSON/mAP'] == 1.0


def test_npz_with_pickled_objects_is_refused(tmp_path, marker):
    npz = tmp_path / 's.npz'
    np.savez(
        npz,
        query_ids=np.array([OpenMarker(marker)], dtype=object),
        target_ids=np.array(['a']),
        scores=np.zeros((1, 1)))
    with pytest.raises(ValueError, match=re.escape(str(npz))):
        read_scores(str(npz))


# ----------------------------------------------------------- annotations


def fivr_data(extra=None):
    data = {
        'annotation': {
            'q': {
                'ND': ['a'],
                'DS': ['b']
            }
        },
        '5k': {
            'queries': ['q'],
            'database': ['a', 'b', 'c']
        },
        '200k': {
            'queries': ['q'],
            'database': ['a', 'b', 'c']
        },
    }
    if extra is not None:
        data['annotation']['q']['CS'] = ['c', extra]
    return data


ANNOTATIONS = {
    'FIVR': fivr_data,
    'EVVE': lambda extra=None: {
        'annotation': {
            'e': (['q'], ['a'] + ([extra] if extra else []), ['b'])
        },
        'queries': ['q'],
        'database': ['a', 'b']
    },
    'CC_WEB_VIDEO': lambda extra=None: {
        'index': {
            'q': 0,
            'a': 1,
            'b': 2
        },
        'queries': ['q'],
        'ground_truth': [{
            1: 'E',
            2: 'X'
        }],
        'excluded': [set() if extra is None else {extra}]
    },
}


@pytest.mark.parametrize('kind', sorted(ANNOTATIONS))
@pytest.mark.parametrize('payload', [OpenMarker, SystemMarker])
def test_annotation_pickles_refuse_payloads(tmp_path, marker, kind, payload):
    make = ANNOTATIONS[kind]
    good = dump(tmp_path / 'good.pk', make())
    assert load_annotation(dict(type=kind, ann_file=good)).queries == ['q']
    for name, obj in (('alone.pk', payload(marker)), ('hidden.pickle',
                                                      make(payload(marker)))):
        path = dump(tmp_path / name, obj)
        with pytest.raises(ValueError, match=re.escape(path)) as err:
            load_annotation(dict(type=kind, ann_file=path))
        assert 'refused' in str(err.value)


def test_annotation_pickle_with_numpy_arrays_and_protocol_2(tmp_path):
    data = fivr_data()
    data['5k'] = {
        'queries': np.array(['q']),
        'database': np.array(['a', 'b', 'c'])
    }
    path = tmp_path / 'fivr.pickle'
    with open(path, 'wb') as f:
        pickle.dump(data, f, protocol=2)
    ann = load_annotation(dict(type='FIVR', ann_file=str(path)))
    assert ann.queries == ['q'] and ann.database == ['a', 'b', 'c']


def test_json_annotation_that_is_a_pickle(tmp_path, marker):
    path = dump(tmp_path / 'ann.json', {'queries': OpenMarker(marker)})
    with pytest.raises(ValueError, match=re.escape(path)):
        load_annotation(dict(type='JSON', ann_file=path))


def test_svd_and_fivr_id_lists_refuse_payloads(tmp_path, marker):
    gt = tmp_path / 'gt.txt'
    gt.write_text('q a 1\nq b 0\n')
    evil = dump(tmp_path / 'unlabeled.pk', ['x', SystemMarker(marker)])
    with pytest.raises(ValueError, match=re.escape(evil)):
        load_annotation(
            dict(type='SVD', ann_file=str(gt), unlabeled_file=evil))
    good = dump(tmp_path / 'fivr.pk', fivr_data())
    with pytest.raises(ValueError, match=re.escape(evil)):
        load_annotation(dict(type='FIVR', ann_file=good, easy_duplicates=evil))


# -------------------------------------------------------------- id lists


def test_id_lists(tmp_path, marker):
    assert read_id_list(dump(tmp_path / 'ids.pk', {'b', 'a'}),
                        'ids') == ['a', 'b']
    listed = dump(tmp_path / 'ids.pickle', ('v1', 'v2'))
    assert read_id_list(listed, 'ids') == ['v1', 'v2']
    evil = dump(tmp_path / 'evil.pk', [OpenMarker(marker)])
    with pytest.raises(UnsafePickleError, match=re.escape(evil)):
        read_id_list(evil, 'video ids')
    # a pickle under a text name is not unpickled (and says so)
    disguised = dump(tmp_path / 'ids.txt', [OpenMarker(marker)])
    with pytest.raises(ValueError, match=re.escape(disguised) + '.*pk'):
        read_id_list(disguised, 'video ids')


def test_extract_features_ids_pickle(tmp_path, marker):
    evil = dump(tmp_path / 'ids.pk', ['v1', SystemMarker(marker)])
    with pytest.raises(UnsafePickleError, match=re.escape(evil)):
        tool('extract_features')([
            CONFIG, 'none', '--ids', evil, '--video-pattern',
            str(tmp_path / '{id}.mp4'), '--out',
            str(tmp_path / 'f.h5')
        ])
    assert not (tmp_path / 'f.h5').exists()
