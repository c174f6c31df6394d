"""Install script for hapvr_mm (reads ``requirements/*.txt``)."""
import os.path as osp
import re
from importlib import metadata

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))


def read_version() -> str:
    """Return ``__version__`` from ``hapvr_mm/version.py``."""
    with open(osp.join(HERE, 'hapvr_mm', 'version.py')) as f:
        return re.search(r"__version__ = '([^']+)'", f.read()).group(1)


def parse_requirements(name: str) -> list:
    """Read one requirements file, following ``-r`` includes.

    Full ``mmcv`` in the accepted range is kept when it is already
    installed, so pip never swaps it for ``mmcv-lite`` (and never builds full
    mmcv from source).
    """
    reqs = []
    with open(osp.join(HERE, 'requirements', name)) as f:
        for line in f:
            line = line.split('#')[0].strip()
            if not line:
                continue
            if line.startswith('-r '):
                reqs += parse_requirements(osp.basename(line[3:].strip()))
                continue
            if line.startswith('mmcv-lite') and _has_full_mmcv():
                line = 'mmcv' + line[len('mmcv-lite'):]
            reqs.append(line)
    return reqs


def _has_full_mmcv() -> bool:
    try:
        version = metadata.version('mmcv')
    except metadata.PackageNotFoundError:
        return False
    major, minor = (int(v) for v in version.split('.')[:2])
    return major == 2 and minor < 2


def read_readme() -> str:
    """Return README.md, the long description shown on package indexes."""
    with open(osp.join(HERE, 'README.md'), encoding='utf-8') as f:
        return f.read()


CLASSIFIERS = [
    'Development Status :: 4 - Beta',
    'Intended Audience :: Science/Research',
    'License :: OSI Approved :: Apache Software License',
    'Operating System :: POSIX :: Linux',
    'Programming Language :: Python :: 3',
    'Programming Language :: Python :: 3 :: Only',
    'Programming Language :: Python :: 3.9',
    'Programming Language :: Python :: 3.10',
    'Programming Language :: Python :: 3.11',
    'Topic :: Scientific/Engineering :: Artificial Intelligence',
    'Topic :: Scientific/Engineering :: Image Recognition',
]

if __name__ == '__main__':
    setup(
        name='hapvr_mm',
        version=read_version(),
        description='HAP-VR self-supervised near-duplicate video retrieval '
        'as an mmaction2 plugin',
        long_description=read_readme(),
        long_description_content_type='text/markdown',
        author='hapvr_mm authors',
        keywords='video retrieval, near-duplicate video, self-supervised '
        'learning, average precision, mmaction2',
        packages=find_packages(
            exclude=('configs', 'tools', 'tests', 'benchmarks')),
        python_requires='>=3.9',
        install_requires=parse_requirements('runtime.txt') +
        parse_requirements('mminstall.txt'),
        extras_require={
            'tests': parse_requirements('tests.txt'),
            'optional': parse_requirements('optional.txt'),
        },
        license='Apache License 2.0',
        license_files=['LICENSE'],
        classifiers=CLASSIFIERS,
        zip_safe=False)
