"""configs/README.md and configs/metafile.yml list every config."""
import os
import os.path as osp

import yaml

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = osp.join(REPO, 'configs')


def _configs():
    out = []
    for root, dirs, files in os.walk(CONFIGS):
        dirs[:] = [d for d in dirs if d != '_base_']
        out += [
            osp.relpath(osp.join(root, f), REPO) for f in files
            if f.endswith('.py')
        ]
    return sorted(out)


def _metafile():
    with open(osp.join(CONFIGS, 'metafile.yml'), encoding='utf-8') as f:
        return yaml.safe_load(f)


def test_metafile_lists_every_config_and_nothing_else():
    models = _metafile()['Models']
    listed = sorted(m['Config'] for m in models)
    assert listed == _configs()
    names = [m['Name'] for m in models]
    assert len(set(names)) == len(names)
    collections = {c['Name'] for c in _metafile()['Collections']}
    for m in models:
        assert m['In Collection'] in collections, m['Name']
        assert isinstance(m['Metadata']['Trained Here'], bool)


def test_readme_lists_every_config():
    with open(osp.join(CONFIGS, 'README.md'), encoding='utf-8') as f:
        text = f.read()
    missing = [
        c for c in _configs()
        if '(' + osp.relpath(c, 'configs') + ')' not in text
    ]
    assert not missing, f'configs/README.md does not link {missing}'


def test_measured_results_only_for_configs_trained_here():
    for m in _metafile()['Models']:
        results = m.get('Results') or []
        metrics = [r['Metrics'] for r in results if r.get('Metrics')]
        if m['Metadata']['Trained Here']:
            assert metrics, f'{m["Name"]}: trained here but no numbers'
            for values in metrics:
                assert all(0.0 <= v <= 1.0 for v in values.values())
        else:
            assert not metrics, f'{m["Name"]}: numbers for a config ' \
                'that was not trained here'
