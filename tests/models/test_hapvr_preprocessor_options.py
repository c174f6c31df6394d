"""HAPVRDataPreprocessor rejects ActionDataPreprocessor options it
ignores."""
import pytest
from mmaction.registry import MODELS

import hapvr_mm  # noqa: F401


@pytest.mark.parametrize('option', [
    dict(to_rgb=True),
    dict(blending=dict(type='MixupBlending', num_classes=2)),
    dict(to_float32=False),
    dict(format_shape='NCTHW'),
])
def test_unsupported_options_are_rejected(option):
    name = next(iter(option))
    with pytest.raises(ValueError, match=name):
        MODELS.build(dict(type='HAPVRDataPreprocessor', **option))


def test_defaults_and_honoured_options_build():
    pre = MODELS.build(
        dict(
            type='HAPVRDataPreprocessor',
            mean=(0, 0, 0),
            std=(1, 1, 1),
            to_rgb=False,
            format_shape='NCHW'))
    assert pre.mean.flatten().tolist() == [0, 0, 0]
    with pytest.raises(TypeError):
        MODELS.build(dict(type='HAPVRDataPreprocessor', unknown=1))
