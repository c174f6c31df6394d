"""StrictPretrained: local weight files into mmaction2's ResNet, checked."""
import math

import pytest
import torch
from mmaction.registry import MODELS

import hapvr_mm  # noqa: F401  (compat fixes before mmaction.models)
from hapvr_mm.models.weight_init import torchvision_to_mmaction_resnet_key

R50 = dict(type='ResNet', depth=50, pretrained=None, out_indices=(0, 1, 2, 3))


def torchvision_resnet50_state_dict(seed=0):
    """Fake torchvision ResNet-50 ImageNet state dict (random values)."""
    gen = torch.Generator().manual_seed(seed)
    sd = {}

    def conv(name, cout, cin, k):
        sd[f'{name}.weight'] = torch.randn(
            cout, cin, k, k, generator=gen) / math.sqrt(cin * k * k)

    def bn(name, ch):
        sd[f'{name}.weight'] = 0.5 + 0.5 * torch.rand(ch, generator=gen)
        sd[f'{name}.bias'] = 0.1 * torch.randn(ch, generator=gen)
        sd[f'{name}.running_mean'] = 0.1 * torch.randn(ch, generator=gen)
        sd[f'{name}.running_var'] = 0.5 + torch.rand(ch, generator=gen)
        sd[f'{name}.num_batches_tracked'] = torch.tensor(0)

    conv('conv1', 64, 3, 7)
    bn('bn1', 64)
    inplanes = 64
    for stage, blocks in enumerate((3, 4, 6, 3), start=1):
        planes = 64 * 2**(stage - 1)
        for b in range(blocks):
            pre = f'layer{stage}.{b}'
            conv(f'{pre}.conv1', planes, inplanes, 1)
            bn(f'{pre}.bn1', planes)
            conv(f'{pre}.conv2', planes, planes, 3)
            bn(f'{pre}.bn2', planes)
            conv(f'{pre}.conv3', planes * 4, planes, 1)
            bn(f'{pre}.bn3', planes * 4)
            if b == 0:
                conv(f'{pre}.downsample.0', planes * 4, inplanes, 1)
                bn(f'{pre}.downsample.1', planes * 4)
            inplanes = planes * 4
    sd['fc.weight'] = torch.randn(1000, 2048, generator=gen) * 0.01
    sd['fc.bias'] = torch.zeros(1000)
    return sd


@pytest.fixture(scope='module')
def tv_checkpoint(tmp_path_factory):
    sd = torchvision_resnet50_state_dict()
    path = tmp_path_factory.mktemp('ckpt') / 'resnet50_tv.pth'
    torch.save(sd, str(path))
    return str(path), sd


def resnet50(path):
    return MODELS.build(
        dict(R50, init_cfg=dict(type='StrictPretrained', checkpoint=path)))


@pytest.fixture(scope='module')
def loaded_model(tv_checkpoint):
    path, _ = tv_checkpoint
    model = resnet50(path)
    model.init_weights()
    return model


# --------------------------------------------------------------------------
# Weights
# --------------------------------------------------------------------------


def test_key_mapping():
    m = torchvision_to_mmaction_resnet_key
    assert m('conv1.weight') == 'conv1.conv.weight'
    assert m('bn1.running_mean') == 'conv1.bn.running_mean'
    assert m('layer1.0.conv2.weight') == 'layer1.0.conv2.conv.weight'
    assert m('layer3.5.bn3.bias') == 'layer3.5.conv3.bn.bias'
    assert m('layer2.0.downsample.0.weight') == \
        'layer2.0.downsample.conv.weight'
    assert m('layer4.0.downsample.1.running_var') == \
        'layer4.0.downsample.bn.running_var'


def test_torchvision_weights_land(tv_checkpoint, loaded_model):
    _, sd = tv_checkpoint
    own = loaded_model.state_dict()
    pairs = {
        'conv1.weight': 'conv1.conv.weight',
        'bn1.running_var': 'conv1.bn.running_var',
        'layer1.0.downsample.0.weight': 'layer1.0.downsample.conv.weight',
        'layer2.3.bn2.weight': 'layer2.3.conv2.bn.weight',
        'layer3.5.conv3.weight': 'layer3.5.conv3.conv.weight',
        'layer4.2.bn1.running_mean': 'layer4.2.conv1.bn.running_mean',
        'layer4.0.downsample.1.bias': 'layer4.0.downsample.bn.bias',
    }
    for tv_key, mm_key in pairs.items():
        torch.testing.assert_close(own[mm_key], sd[tv_key])
    # every torchvision tensor but fc.* landed somewhere
    n_loaded = sum(1 for k in sd if not k.startswith('fc.'))
    assert n_loaded == len(own)


def test_mmaction_naming_checkpoint(tmp_path, loaded_model):
    nested = {
        'state_dict': {
            f'backbone.{k}': v
            for k, v in loaded_model.state_dict().items()
        },
        'meta': {}
    }
    path = str(tmp_path / 'mm.pth')
    torch.save(nested, path)
    model = resnet50(path)
    model.init_weights()
    for k, v in loaded_model.state_dict().items():
        torch.testing.assert_close(model.state_dict()[k], v)


def test_bad_checkpoint_errors(tmp_path, tv_checkpoint):
    _, sd = tv_checkpoint
    bad = dict(sd)
    del bad['layer2.1.conv1.weight']
    bad['layer5.0.conv1.weight'] = torch.zeros(1)
    bad['layer1.0.bn1.weight'] = torch.zeros(7)
    path = str(tmp_path / 'bad.pth')
    torch.save(bad, path)
    model = resnet50(path)
    with pytest.raises(ValueError) as err:
        model.init_weights()
    msg = str(err.value)
    assert 'layer2.1.conv1.conv.weight' in msg  # missing
    assert 'layer5.0.conv1.conv.weight' in msg  # unexpected
    assert 'layer1.0.conv1.bn.weight' in msg  # shape mismatch
    assert path in msg
    missing = resnet50(str(tmp_path / 'no.pth'))
    with pytest.raises(FileNotFoundError, match='no.pth'):
        missing.init_weights()


def test_registry_build_and_parent_init(tv_checkpoint):
    from mmengine.model import BaseModule

    path, sd = tv_checkpoint

    class Parent(BaseModule):

        def __init__(self):
            super().__init__()
            self.backbone = resnet50(path)
            self.head = torch.nn.Linear(2, 2)

    parent = Parent()
    parent.init_weights()
    torch.testing.assert_close(parent.backbone.conv1.conv.weight,
                               sd['conv1.weight'])
    torch.testing.assert_close(
        parent.backbone.layer2[0].downsample.bn.running_var,
        sd['layer2.0.downsample.1.running_var'])
    parent.train()
    assert parent.head.training
