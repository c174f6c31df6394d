"""Shared pytest set-up: import the plugin and use mmaction's scope."""
import os.path as osp
import sys

# helpers of the launch / resume / checkpoint tests (``import launch_utils``)
sys.path.insert(
    0, osp.join(osp.dirname(osp.abspath(__file__)), 'fixtures', 'toy_launch'))

from mmengine.registry import init_default_scope

import hapvr_mm  # noqa: F401

init_default_scope('mmaction')

import pytest
import torch


@pytest.fixture(autouse=True)
def _no_default_dtype_leak():
    """Fail a test that changes torch's default dtype without restoring it."""
    before = torch.get_default_dtype()
    yield
    after = torch.get_default_dtype()
    torch.set_default_dtype(before)
    assert after == before, (
        f'the test left torch default dtype {after} (was {before})')
