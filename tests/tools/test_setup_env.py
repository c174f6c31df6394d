"""tools/setup_env.sh installs torch only when none is importable.

Runs the script against a stand-in virtual environment whose ``python``
records the pip commands instead of running them (no network, no install).
"""
import os
import os.path as osp
import stat
import subprocess

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SCRIPT = osp.join(REPO, 'tools', 'setup_env.sh')

FAKE_PYTHON = '''#!/bin/sh
# stand-in interpreter: "import torch" succeeds when $FAKE_HAS_TORCH=1,
# "import hapvr_mm ..." always fails, pip commands are logged
if [ "$1" = "-m" ] && [ "$2" = "pip" ]; then
    shift 2
    echo "PIP $*" >> "$FAKE_LOG"
    exit 0
fi
if [ "$1" = "-c" ]; then
    case "$2" in
        "import torch") [ "$FAKE_HAS_TORCH" = 1 ] && exit 0 || exit 1 ;;
        "import torch; print(torch.__version__)") echo 9.9.9+cu999; exit 0 ;;
        *) exit 1 ;;
    esac
fi
exit 0
'''


def _run(tmp_path, has_torch: bool, **env_extra):
    venv = tmp_path / 'venv'
    (venv / 'bin').mkdir(parents=True, exist_ok=True)
    python = venv / 'bin' / 'python'
    python.write_text(FAKE_PYTHON)
    python.chmod(python.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / 'pip.log'
    if log.exists():
        log.unlink()
    env = dict(
        os.environ,
        VENV=str(venv),
        FAKE_LOG=str(log),
        FAKE_HAS_TORCH='1' if has_torch else '0')
    for key in ('TORCH_SPEC', 'TORCH_INDEX_URL'):
        env.pop(key, None)
    env.update(env_extra)
    res = subprocess.run(['bash', SCRIPT],
                         env=env,
                         capture_output=True,
                         text=True,
                         timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    pip = log.read_text().splitlines() if log.exists() else []
    return res.stdout, pip


def test_existing_torch_is_kept(tmp_path):
    out, pip = _run(tmp_path, has_torch=True)
    assert not any('torch' in line for line in pip), pip
    assert 'keeping the installed torch 9.9.9+cu999' in out
    assert any('-e' in line and '[tests]' in line for line in pip), pip


def test_fresh_environment_gets_the_cpu_pin(tmp_path):
    out, pip = _run(tmp_path, has_torch=False)
    torch_lines = [line for line in pip if 'torch' in line]
    assert len(torch_lines) == 1
    assert torch_lines[0].endswith('torch==2.13.0')
    assert '--index-url' not in torch_lines[0]
    # torch before the package, so pip keeps it
    assert pip.index(torch_lines[0]) < next(i for i, line in enumerate(pip)
                                            if '[tests]' in line)


@pytest.mark.parametrize('spec', ['torch', 'torch==2.5.1'])
def test_cuda_build_by_index_url(tmp_path, spec):
    url = 'https://download.pytorch.org/whl/cu124'
    _, pip = _run(
        tmp_path, has_torch=False, TORCH_SPEC=spec, TORCH_INDEX_URL=url)
    torch_lines = [line for line in pip if 'torch' in line]
    assert len(torch_lines) == 1
    assert torch_lines[0].endswith(f'install -q --index-url {url} {spec}')
