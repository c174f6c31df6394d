import math

import pytest
import torch

import hapvr_mm  # noqa: F401  (compat fixes before mmaction.models)
from hapvr_mm.models.backbones.region_resnet import (
    RegionResNet, region_pooling, torchvision_to_mmaction_resnet_key)

# --------------------------------------------------------------------------
# Independent transcriptions
# --------------------------------------------------------------------------


def loop_region_pooling(stages, kernels=(28, 14, 6, 3)):
    """Direct loop transcription of METHOD.md section 2 pooling."""
    batch = stages[0].shape[0]
    pooled = []
    for feat, s in zip(stages, kernels):
        stride = math.ceil(s / 2)
        h, w = feat.shape[-2:]
        gh, gw = (h - s) // stride + 1, (w - s) // stride + 1
        out = torch.zeros(batch, feat.shape[1], gh, gw, dtype=feat.dtype)
        for r in range(gh):
            for c in range(gw):
                win = feat[:, :, r * stride:r * stride + s,
                           c * stride:c * stride + s]
                out[:, :, r, c] = win.amax(dim=(-2, -1))
        out = out / out.norm(dim=1, keepdim=True)
        pooled.append(out)
    th, tw = pooled[-1].shape[-2:]
    resized = []
    for p in pooled:
        h, w = p.shape[-2:]
        out = torch.zeros(batch, p.shape[1], th, tw, dtype=p.dtype)
        for r in range(th):
            r0, r1 = (r * h) // th, -((-(r + 1) * h) // th)
            for c in range(tw):
                c0, c1 = (c * w) // tw, -((-(c + 1) * w) // tw)
                out[:, :, r, c] = p[:, :, r0:r1, c0:c1].amax(dim=(-2, -1))
        out = out / out.norm(dim=1, keepdim=True)
        resized.append(out)
    x = torch.cat(resized, dim=1)
    regions = []
    for r in range(th):
        for c in range(tw):
            v = x[:, :, r, c]
            regions.append(v / v.norm(dim=1, keepdim=True))
    return torch.stack(regions, dim=1)


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


@pytest.fixture(scope='module')
def loaded_model(tv_checkpoint):
    path, _ = tv_checkpoint
    model = RegionResNet(init_cfg=dict(type='Pretrained', checkpoint=path))
    model.init_weights()
    return model


# --------------------------------------------------------------------------
# Pooling maths
# --------------------------------------------------------------------------


@pytest.mark.parametrize('sizes', [(56, 28, 14, 7), (64, 32, 16, 8)])
def test_region_pooling_matches_loop(sizes):
    torch.manual_seed(0)
    chans = (3, 4, 5, 6)
    stages = [
        torch.randn(2, c, s, s, dtype=torch.float64)
        for c, s in zip(chans, sizes)
    ]
    out = region_pooling(stages)
    ref = loop_region_pooling(stages)
    assert out.shape == (2, 9, sum(chans))
    torch.testing.assert_close(out, ref)


def test_region_pooling_resnet50_shapes_and_norms():
    stages = [
        torch.rand(1, c, s, s)
        for c, s in zip((256, 512, 1024, 2048), (56, 28, 14, 7))
    ]
    out = region_pooling(stages)
    assert out.shape == (1, 9, 3840)
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(1, 9))
    # each stage block of a region is unit norm before the final normalise,
    # so the concatenation of 4 unit blocks has norm 2 -> block norm 1/2
    blocks = out.split([256, 512, 1024, 2048], dim=-1)
    for b in blocks:
        torch.testing.assert_close(b.norm(dim=-1), torch.full((1, 9), 0.5))


def test_region_pooling_bad_inputs():
    with pytest.raises(ValueError, match='kernel'):
        region_pooling([torch.rand(1, 2, 7, 7)])
    with pytest.raises(ValueError, match='smaller than its pooling'):
        region_pooling([torch.rand(1, 2, 10, 10)] * 4)
    with pytest.raises(ValueError, match=r'\[B=1, C, H, W\]'):
        region_pooling([
            torch.rand(1, 2, 56, 56),
            torch.rand(2, 2, 28, 28),
            torch.rand(1, 2, 14, 14),
            torch.rand(1, 2, 7, 7)
        ])


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


def test_forward_shapes_norms_frozen(loaded_model):
    model = loaded_model
    model.train()
    assert not model.training
    assert all(not m.training for m in model.modules())
    assert all(not p.requires_grad for p in model.parameters())
    torch.manual_seed(0)
    frames = torch.randn(2, 3, 224, 224)
    out = model(frames)
    assert out.shape == (2, 9, 3840)
    assert not out.requires_grad
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(2, 9))
    # equals the pooling function on the plain ResNet stage outputs
    from mmaction.models.backbones.resnet import ResNet
    with torch.no_grad():
        ref = region_pooling(ResNet.forward(model, frames))
    torch.testing.assert_close(out, ref)
    # chunked 5-D input gives the same result
    model.frame_chunk = 1
    try:
        out5 = model(frames[None])
    finally:
        model.frame_chunk = None
    assert out5.shape == (1, 2, 9, 3840)
    torch.testing.assert_close(out5[0], out, rtol=1e-4, atol=1e-5)
    # BN running stats unchanged by a forward in "train" mode
    before = model.layer1[0].conv1.bn.running_mean.clone()
    model.train(True)
    model(frames[:1])
    torch.testing.assert_close(model.layer1[0].conv1.bn.running_mean, before)


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
    model = RegionResNet(init_cfg=dict(type='Pretrained', checkpoint=path))
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
    model = RegionResNet(init_cfg=dict(type='Pretrained', checkpoint=path))
    with pytest.raises(ValueError) as err:
        model.init_weights()
    msg = str(err.value)
    assert 'layer2.1.conv1.conv.weight' in msg  # missing
    assert 'layer5.0.conv1.conv.weight' in msg  # unexpected
    assert 'layer1.0.conv1.bn.weight' in msg  # shape mismatch
    assert path in msg
    missing = RegionResNet(
        init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'no.pth')))
    with pytest.raises(FileNotFoundError, match='no.pth'):
        missing.init_weights()


def test_bad_inputs_and_args():
    with pytest.raises(ValueError, match='frame_chunk'):
        RegionResNet(frame_chunk=0)
    model = RegionResNet()
    with pytest.raises(ValueError, match=r'\[T, 3, H, W\]'):
        model(torch.rand(3, 224, 224))
    with pytest.raises(ValueError, match='got'):
        model(torch.rand(2, 4, 224, 224))


def test_random_init_without_pretrained():
    model = RegionResNet()
    before = model.conv1.conv.weight.clone()
    model.init_weights()
    assert not torch.equal(before, model.conv1.conv.weight)
    assert all(not p.requires_grad for p in model.parameters())
    # batch-norm weight constant 1 per mmaction2 ResNet's default init
    assert torch.all(model.conv1.bn.weight == 1)


def test_registry_build_and_parent_init(tv_checkpoint):
    from mmaction.registry import MODELS
    from mmengine.model import BaseModule

    path, sd = tv_checkpoint

    class Parent(BaseModule):

        def __init__(self):
            super().__init__()
            self.backbone = MODELS.build(
                dict(
                    type='RegionResNet',
                    frame_chunk=4,
                    init_cfg=dict(type='Pretrained', checkpoint=path)))
            self.head = torch.nn.Linear(2, 2)

    parent = Parent()
    parent.init_weights()
    torch.testing.assert_close(parent.backbone.conv1.conv.weight,
                               sd['conv1.weight'])
    torch.testing.assert_close(
        parent.backbone.layer2[0].downsample.bn.running_var,
        sd['layer2.0.downsample.1.running_var'])
    parent.train()
    assert parent.head.training and not parent.backbone.training
