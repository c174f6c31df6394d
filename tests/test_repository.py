"""The repository stands on its own.

* No tracked file names a path outside the repository: no link into a
  neighbouring ``shared`` folder, no relative ``../`` path that climbs above
  the repository root from the file that holds it, no absolute path of
  this checkout.
* ``docs/method.md`` (the method document the code cites) exists, has the
  numbered sections the code refers to, and every class or function it
  names exists.
* Nothing in the package registers with ``force=True`` (it would silently
  replace another component of the same name).
"""
import os
import os.path as osp
import posixpath
import re
import subprocess

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
METHOD_DOC = osp.join(REPO, 'docs', 'method.md')

# spelled in pieces so that this file does not match itself
FORBIDDEN = ('..' + '/shared', 'shared' + '/docs/')
# a relative path that starts with ../ (not inside another path)
_RELATIVE = re.compile(r'''(?<![\w./$-])((?:\.\./)+[^\s'"`)\]>,;]*)''')
_BINARY_SUFFIXES = ('.mp4', '.pth', '.png', '.jpg', '.h5', '.hdf5', '.npz',
                    '.pkl', '.pickle')


def _tracked_files():
    try:
        out = subprocess.run(['git', 'ls-files', '-z'],
                             cwd=REPO,
                             capture_output=True,
                             check=True,
                             timeout=60).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip('not a git checkout')
    files = [f for f in out.decode().split('\0') if f]
    if not files:
        pytest.skip('no tracked files')
    return files


def _texts():
    for rel in _tracked_files():
        path = osp.join(REPO, rel)
        if rel.endswith(_BINARY_SUFFIXES) or not osp.isfile(path):
            continue
        try:
            with open(path, encoding='utf-8') as f:
                yield rel, f.read()
        except UnicodeDecodeError:
            continue


def outside_references(rel: str, text: str, root: str = REPO):
    """``(line number, text)`` of every path in ``text`` that leaves the
    repository (``rel`` is the file's path inside it)."""
    found = []
    here = posixpath.dirname(rel)
    absolute_root = osp.abspath(root)
    for num, line in enumerate(text.splitlines(), 1):
        if any(bad in line for bad in FORBIDDEN):
            found.append((num, line.strip()))
            continue
        if len(absolute_root) > 1 and absolute_root + '/' in line:
            found.append((num, line.strip()))
            continue
        for match in _RELATIVE.finditer(line):
            target = posixpath.normpath(posixpath.join(here, match.group(1)))
            if target == '..' or target.startswith('../'):
                found.append((num, line.strip()))
                break
    return found


def test_detector_catches_outside_paths():
    up = '..' + '/'  # built in pieces: this file must not match itself
    cases = {
        'README.md': ['see [the spec](' + up + 'shared/x.md)'],
        'docs/a.md': ['[up](' + up + up + 'elsewhere/file.md)'],
        'configs/x.py': ["_base_ = ['" + up + up + "outside.py']"],
        'hapvr_mm/m.py': ['# spec: /tmp/' + 'shared' + '/docs/METHOD.md'],
    }
    for rel, lines in cases.items():
        assert outside_references(rel, '\n'.join(lines)), (rel, lines)
    inside = {
        'configs/hapvr/a.py': ["_base_ = ['" + up + "hapvr_fivr.py']"],
        'docs/mixing.md': ['[cfg](' + up + 'configs/mixing/README.md)'],
        'configs/mixing/README.md': ['[doc](' + up + up + 'docs/mixing.md)'],
        'tools/slurm/s.sh':
        ['repo=$(cd "$(dirname "$0")/' + up + '.." && pwd)'],
        'README.md': ['work_dirs/.../iter_30000.pth'],
    }
    for rel, lines in inside.items():
        assert not outside_references(rel, '\n'.join(lines)), (rel, lines)


def test_no_tracked_file_names_a_path_outside_the_repository():
    bad = []
    for rel, text in _texts():
        bad += [
            f'{rel}:{num}: {line}'
            for num, line in outside_references(rel, text)
        ]
    assert not bad, ('paths outside the repository (write "docs/method.md '
                     'section N" for the method):\n' + '\n'.join(bad))


def test_method_document_has_the_cited_sections():
    assert osp.isfile(METHOD_DOC)
    with open(METHOD_DOC, encoding='utf-8') as f:
        text = f.read()
    titles = re.findall(r'^## (\d+)\. (.+)$', text, flags=re.M)
    assert [int(n) for n, _ in titles] == [1, 2, 3, 4, 5]
    words = ' '.join(t.lower() for _, t in titles)
    for topic in ('self-supervised', 'frame features', 'similarity', 'losses',
                  'evaluation'):
        assert topic in words, titles


def _python_sources():
    out = []
    for base in ('hapvr_mm', 'configs'):
        for root, _, files in os.walk(osp.join(REPO, base)):
            for name in files:
                if name.endswith('.py'):
                    with open(osp.join(root, name), encoding='utf-8') as f:
                        out.append((osp.join(root, name), f.read()))
    return out


def test_method_document_names_existing_code():
    """Every class / function in backticks in docs/method.md exists."""
    with open(METHOD_DOC, encoding='utf-8') as f:
        text = f.read()
    sources = _python_sources()
    code = '\n'.join(s for _, s in sources)
    modules = {osp.splitext(osp.basename(p))[0] for p, _ in sources}
    from mmaction.registry import MODELS
    missing = []
    for name in sorted(set(re.findall(r'`([A-Za-z_]\w*)`', text))):
        if len(name) <= 3:
            continue  # a symbol of the equations (N, T, k_f, ...)
        if name in modules:
            continue
        defined = re.search(rf'^\s*(?:def|class) {name}\b', code, re.M)
        if name[0].isupper() and name[1:].lower() != name[1:]:
            # CamelCase: a class here or a registered mmaction2 component
            if not defined and MODELS.get(name) is None:
                missing.append(name)
            continue
        # snake_case: a function here, or a config key / argument
        used = re.search(rf'\b{name}\s*[=:]|[\'"]{name}[\'"]', code)
        if not (defined or used):
            missing.append(name)
    assert not missing, f'docs/method.md names unknown code: {missing}'


def test_nothing_registered_with_force():
    bad = []
    for path, text in _python_sources():
        if not path.startswith(osp.join(REPO, 'hapvr_mm')):
            continue
        for num, line in enumerate(text.splitlines(), 1):
            code = line.split('#', 1)[0]
            if 'force=True' in code.replace(' ', ''):
                bad.append(f'{osp.relpath(path, REPO)}:{num}: {line.strip()}')
    assert not bad, 'registrations with force=True:\n' + '\n'.join(bad)
