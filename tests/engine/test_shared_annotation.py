"""A benchmark's annotation is written once (in the dataset), loaded once,
and used by the metric: a ``--cfg-options`` change of the dataset's
``ann_file`` changes what is evaluated."""
import json

from mmengine.runner import Runner
from test_retrieval_loop import loop_config, make_hdf5_fixture

from hapvr_mm.engine.runner import read_scores
from hapvr_mm.evaluation.annotations import JSONAnnotation, load_annotation


def _shared_config(root, work_dir, **loop_kw):
    cfg = loop_config(root, work_dir, **loop_kw)
    cfg.test_evaluator = dict(type='RetrievalAPMetric')  # no annotation
    return cfg


def _count_loads(monkeypatch):
    loads = []
    init = JSONAnnotation.__init__

    def counting(self, ann_file, *args, **kwargs):
        loads.append(ann_file)
        init(self, ann_file, *args, **kwargs)

    monkeypatch.setattr(JSONAnnotation, '__init__', counting)
    return loads


def test_annotation_loaded_once_and_shared(tmp_path, monkeypatch):
    make_hdf5_fixture(tmp_path)
    loads = _count_loads(monkeypatch)
    runner = Runner.from_cfg(
        _shared_config(tmp_path, tmp_path / 'w', save_similarities=True))
    metrics = runner.test()
    assert loads == [str(tmp_path / 'ann.json')]
    loop = runner.test_loop
    metric = loop.evaluator.metrics[0]
    assert metric.annotation is loop.annotation
    assert loop.query_dataloader.dataset.annotation is loop.annotation
    scores = read_scores(str(tmp_path / 'w' / 'similarities.npz'))
    for key, value in loop.annotation.evaluate(scores).items():
        assert metrics[f'JSON/{key}'] == value


def test_dataset_override_reaches_the_metric(tmp_path):
    queries, database = make_hdf5_fixture(tmp_path)
    other = tmp_path / 'other.json'
    other.write_text(
        json.dumps(
            dict(
                name='other',
                queries=queries[:2],
                database=database,
                relevance={
                    'q0': ['d4'],
                    'q1': ['d0', 'd1']
                })))
    cfg = _shared_config(tmp_path, tmp_path / 'w', save_similarities=True)
    # what `--cfg-options test_dataloader.dataset.annotation.ann_file=...`
    # does
    cfg.merge_from_dict(
        {'test_dataloader.dataset.annotation.ann_file': str(other)})
    metrics = Runner.from_cfg(cfg).test()
    assert 'other/mAP' in metrics and 'JSON/mAP' not in metrics
    scores = read_scores(str(tmp_path / 'w' / 'similarities.npz'))
    assert set(scores) == {'q0', 'q1'}
    expected = load_annotation(dict(type='JSON',
                                    ann_file=str(other))).evaluate(scores)
    for key, value in expected.items():
        assert metrics[f'other/{key}'] == value


def test_evaluator_with_its_own_annotation(tmp_path, monkeypatch):
    make_hdf5_fixture(tmp_path)
    loads = _count_loads(monkeypatch)
    cfg = loop_config(tmp_path, tmp_path / 'w')  # evaluator has its own
    metrics = Runner.from_cfg(cfg).test()
    assert 'JSON/mAP' in metrics
    assert len(loads) == 2  # the dataset's and the metric's
