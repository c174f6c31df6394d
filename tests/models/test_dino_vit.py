import argparse
import math

import pytest
import torch
import torch.nn.functional as F

import hapvr_mm  # noqa: F401
from hapvr_mm.models.backbones.dino_vit import DINOViT, interpolate_pos_embed

TINY = dict(embed_dim=32, depth=2, num_heads=4)


def dino_state_dict(dim, depth, patch=16, grid=14, mlp_ratio=4, seed=0):
    """A state dict in the public DINO key names (random values)."""
    gen = torch.Generator().manual_seed(seed)

    def r(*shape, scale=0.1):
        return torch.randn(*shape, generator=gen) * scale

    hidden = int(dim * mlp_ratio)
    sd = {
        'cls_token': r(1, 1, dim),
        'pos_embed': r(1, 1 + grid * grid, dim),
        'patch_embed.proj.weight': r(dim, 3, patch, patch, scale=0.02),
        'patch_embed.proj.bias': r(dim),
    }
    for i in range(depth):
        p = f'blocks.{i}.'
        sd[p + 'norm1.weight'] = 1 + r(dim)
        sd[p + 'norm1.bias'] = r(dim)
        sd[p + 'attn.qkv.weight'] = r(3 * dim, dim, scale=1 / math.sqrt(dim))
        sd[p + 'attn.qkv.bias'] = r(3 * dim)
        sd[p + 'attn.proj.weight'] = r(dim, dim, scale=1 / math.sqrt(dim))
        sd[p + 'attn.proj.bias'] = r(dim)
        sd[p + 'norm2.weight'] = 1 + r(dim)
        sd[p + 'norm2.bias'] = r(dim)
        sd[p + 'mlp.fc1.weight'] = r(hidden, dim, scale=1 / math.sqrt(dim))
        sd[p + 'mlp.fc1.bias'] = r(hidden)
        sd[p + 'mlp.fc2.weight'] = r(dim, hidden, scale=1 / math.sqrt(hidden))
        sd[p + 'mlp.fc2.bias'] = r(dim)
    sd['norm.weight'] = 1 + r(dim)
    sd['norm.bias'] = r(dim)
    return sd


def loop_vit(sd, x, depth, heads, patch=16, eps=1e-6):
    """Independent ViT forward from the raw state dict (per-head loop)."""
    tok = F.conv2d(
        x,
        sd['patch_embed.proj.weight'],
        sd['patch_embed.proj.bias'],
        stride=patch)
    tok = tok.flatten(2).transpose(1, 2)
    b, _, dim = tok.shape
    tok = torch.cat([sd['cls_token'].expand(b, 1, dim), tok], 1)
    tok = tok + sd['pos_embed']
    hd = dim // heads
    for i in range(depth):
        p = f'blocks.{i}.'
        h = F.layer_norm(tok, (dim, ), sd[p + 'norm1.weight'],
                         sd[p + 'norm1.bias'], eps)
        w, bias = sd[p + 'attn.qkv.weight'], sd[p + 'attn.qkv.bias']
        q = h @ w[:dim].T + bias[:dim]
        k = h @ w[dim:2 * dim].T + bias[dim:2 * dim]
        v = h @ w[2 * dim:].T + bias[2 * dim:]
        outs = []
        for head in range(heads):
            sl = slice(head * hd, (head + 1) * hd)
            att = torch.softmax(
                q[..., sl] @ k[..., sl].transpose(1, 2) / math.sqrt(hd),
                dim=-1)
            outs.append(att @ v[..., sl])
        a = torch.cat(outs, -1) @ sd[p + 'attn.proj.weight'].T + \
            sd[p + 'attn.proj.bias']
        tok = tok + a
        h = F.layer_norm(tok, (dim, ), sd[p + 'norm2.weight'],
                         sd[p + 'norm2.bias'], eps)
        h = F.gelu(h @ sd[p + 'mlp.fc1.weight'].T + sd[p + 'mlp.fc1.bias'])
        tok = tok + h @ sd[p + 'mlp.fc2.weight'].T + sd[p + 'mlp.fc2.bias']
    tok = F.layer_norm(tok, (dim, ), sd['norm.weight'], sd['norm.bias'], eps)
    return tok[:, 0]


@pytest.fixture(scope='module')
def tiny_loaded(tmp_path_factory):
    sd = dino_state_dict(TINY['embed_dim'], TINY['depth'])
    teacher = {f'backbone.{k}': v for k, v in sd.items()}
    teacher['head.mlp.0.weight'] = torch.zeros(4, TINY['embed_dim'])
    teacher['head.last_layer.weight_g'] = torch.ones(8, 1)
    ckpt = {
        'student': {
            f'module.backbone.{k}': v * 0
            for k, v in sd.items()
        },
        'teacher': teacher,
        'epoch': 100,
    }
    path = str(tmp_path_factory.mktemp('dino') / 'dino_full.pth')
    torch.save(ckpt, path)
    model = DINOViT(**TINY, init_cfg=dict(type='Pretrained', checkpoint=path))
    model.init_weights()
    return model, sd


def test_default_is_vit_s16_with_public_key_names():
    model = DINOViT()
    ref = dino_state_dict(384, 12)
    own = model.state_dict()
    assert set(own) == set(ref)
    for k, v in ref.items():
        assert own[k].shape == v.shape, k
    assert model.blocks[0].attn.num_heads == 6
    assert model.norm.eps == 1e-6


def test_teacher_checkpoint_loads(tiny_loaded):
    model, sd = tiny_loaded
    own = model.state_dict()
    for k, v in sd.items():
        torch.testing.assert_close(own[k], v)


def test_forward_matches_loop_transcription(tiny_loaded):
    model, sd = tiny_loaded
    torch.manual_seed(0)
    x = torch.randn(2, 3, 224, 224)
    out = model(x)
    assert out.shape == (2, TINY['embed_dim'])
    assert not out.requires_grad
    ref = loop_vit(sd, x, TINY['depth'], TINY['num_heads'])
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    # 5-D input and chunking give the same embeddings
    model.frame_chunk = 1
    try:
        out5 = model(x[None])
    finally:
        model.frame_chunk = None
    assert out5.shape == (1, 2, TINY['embed_dim'])
    torch.testing.assert_close(out5[0], out, rtol=1e-5, atol=1e-5)


def test_pos_embed_interpolation(tiny_loaded):
    model, sd = tiny_loaded
    # the interpolation path at the native grid is the identity
    same = interpolate_pos_embed(sd['pos_embed'], (14, 14), (14, 14))
    torch.testing.assert_close(same, sd['pos_embed'], rtol=1e-5, atol=1e-6)
    # 160 x 160: a 10 x 10 grid, bicubic pos embed
    torch.manual_seed(1)
    x = torch.randn(2, 3, 160, 160)
    out = model(x)
    assert out.shape == (2, TINY['embed_dim'])
    assert torch.isfinite(out).all()
    patch = sd['pos_embed'][:, 1:].reshape(1, 14, 14, -1).permute(0, 3, 1, 2)
    patch = F.interpolate(
        patch, size=(10, 10), mode='bicubic', align_corners=False)
    sd160 = dict(sd)
    sd160['pos_embed'] = torch.cat([
        sd['pos_embed'][:, :1],
        patch.permute(0, 2, 3, 1).reshape(1, 100, -1)
    ], 1)
    ref = loop_vit(sd160, x, TINY['depth'], TINY['num_heads'])
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    # a model built for 160 with that embedding agrees
    model160 = DINOViT(img_size=160, **TINY)
    model160.load_state_dict(sd160)
    torch.testing.assert_close(model160(x), out, rtol=1e-5, atol=1e-5)


def test_frozen_eval(tiny_loaded):
    model, _ = tiny_loaded
    model.train()
    assert not model.training
    assert all(not m.training for m in model.modules())
    assert all(not p.requires_grad for p in model.parameters())


def test_plain_state_dict_and_wrong_keys(tmp_path):
    sd = dino_state_dict(TINY['embed_dim'], TINY['depth'], seed=3)
    path = str(tmp_path / 'plain.pth')
    torch.save(sd, path)
    model = DINOViT(**TINY, init_cfg=dict(type='Pretrained', checkpoint=path))
    model.init_weights()
    torch.testing.assert_close(model.cls_token, sd['cls_token'])

    bad = dict(sd)
    del bad['blocks.1.mlp.fc2.bias']
    bad['blocks.2.norm1.weight'] = torch.ones(TINY['embed_dim'])
    bad['pos_embed'] = torch.zeros(1, 5, TINY['embed_dim'])
    path = str(tmp_path / 'bad.pth')
    torch.save({'state_dict': bad}, path)
    model = DINOViT(**TINY, init_cfg=dict(type='Pretrained', checkpoint=path))
    with pytest.raises(ValueError) as err:
        model.init_weights()
    msg = str(err.value)
    assert 'blocks.1.mlp.fc2.bias' in msg
    assert 'blocks.2.norm1.weight' in msg
    assert 'pos_embed' in msg

    path = str(tmp_path / 'pickled.pth')
    torch.save({'teacher': sd, 'args': argparse.Namespace(a=1)}, path)
    model = DINOViT(**TINY, init_cfg=dict(type='Pretrained', checkpoint=path))
    with pytest.raises(ValueError, match='weights_only'):
        model.init_weights()


def test_bad_args_and_inputs():
    with pytest.raises(ValueError, match='divisible'):
        DINOViT(embed_dim=30, num_heads=4, depth=1)
    model = DINOViT(embed_dim=8, depth=1, num_heads=2)
    with pytest.raises(ValueError, match=r'\[B, 3, H, W\]'):
        model(torch.rand(3, 224, 224))
    with pytest.raises(ValueError, match='H, W >= 16'):
        model(torch.rand(1, 3, 8, 8))


def test_registry_build_and_parent_init(tmp_path):
    from mmaction.registry import MODELS
    from mmengine.model import BaseModule

    sd = dino_state_dict(TINY['embed_dim'], TINY['depth'], seed=5)
    path = str(tmp_path / 'dino.pth')
    torch.save({'teacher': {
        f'module.backbone.{k}': v
        for k, v in sd.items()
    }}, path)

    class Parent(BaseModule):

        def __init__(self):
            super().__init__()
            self.teacher = MODELS.build(
                dict(
                    type='DINOViT',
                    **TINY,
                    init_cfg=dict(type='Pretrained', checkpoint=path)))

    parent = Parent()
    parent.init_weights()
    torch.testing.assert_close(parent.teacher.pos_embed, sd['pos_embed'])
    torch.testing.assert_close(parent.teacher.blocks[1].attn.qkv.weight,
                               sd['blocks.1.attn.qkv.weight'])
