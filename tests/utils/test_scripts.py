"""load_script: a repository script as a module."""
import pytest

from hapvr_mm.utils import load_script


def test_load_script_runs_the_file_not_its_main(tmp_path):
    path = tmp_path / 'tool.py'
    path.write_text('VALUE = 41 + 1\n'
                    'if __name__ == "__main__":\n'
                    '    raise SystemExit("main ran")\n')
    module = load_script(str(path))
    assert module.VALUE == 42 and module.__name__ == '_hapvr_script_tool'
    assert load_script(str(path), name='other').__name__ == 'other'
    with pytest.raises(FileNotFoundError, match='missing.py'):
        load_script(str(tmp_path / 'missing.py'))
