"""What the DINO teacher sees (docs/method.md section 4).

The paper recipe feeds the teacher the raw 0-255 pixels of the training
views after video-in-video; ``input_mode='imagenet'`` gives the standard
ImageNet-normalised input. Both are checked on a real preprocessed batch.
"""
from types import SimpleNamespace

import pytest
import torch
from mmaction.registry import MODELS

import hapvr_mm  # noqa: F401
from hapvr_mm.engine.hooks import PseudoLabelHook

IM_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IM_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
TINY_TEACHER = dict(
    type='DINOViT',
    img_size=32,
    depth=1,
    embed_dim=48,
    num_heads=2,
    init_cfg=None)


class StubModel(torch.nn.Module):
    """What the hook needs from HAPVR: a preprocessor and set_teacher."""

    needs_teacher = True

    def __init__(self, mean=None, std=None):
        super().__init__()
        kwargs = {} if mean is None else dict(mean=mean, std=std)
        self.data_preprocessor = MODELS.build(
            dict(
                type='HAPVRDataPreprocessor',
                video_in_video=dict(type='VideoInVideo', prob=1.0),
                **kwargs))
        self.fc = torch.nn.Linear(1, 1)
        self.teacher = None

    def set_teacher(self, teacher):
        self.teacher = teacher


def seen_by_teacher(input_mode, mean=None, std=None, seed=0):
    """Run a B=4, W=3, 32x32 batch; return (uint8 clips, views, teacher
    input, embeddings)."""
    torch.manual_seed(seed)
    model = StubModel(mean, std)
    hook = PseudoLabelHook(teacher=TINY_TEACHER, input_mode=input_mode)
    hook.before_train(SimpleNamespace(model=model))
    assert model.teacher == hook.embed
    seen = []
    hook.teacher.register_forward_pre_hook(
        lambda mod, args: seen.append(args[0].clone()))
    clips = [
        torch.randint(0, 256, (2, 3, 3, 32, 32), dtype=torch.uint8)
        for _ in range(4)
    ]
    data = model.data_preprocessor(dict(inputs=clips), training=True)
    views = data['inputs']  # [8, 3, 3, 32, 32], weak then strong (ViV)
    emb = model.teacher(views.flatten(0, 1))
    assert emb.shape == (24, 48) and emb.dtype == torch.float32
    assert len(seen) == 1
    return torch.stack(clips), views, seen[0], emb


def test_paper_default_is_raw_pixels():
    assert PseudoLabelHook().input_mode == 'raw'
    clips, views, seen, _ = seen_by_teacher('raw')
    assert seen.dtype == torch.float32  # fp16 only on CUDA
    # whole pixel values 0-255: neither scaled to [0, 1] nor normalised
    assert seen.min() >= 0 and seen.max() <= 255
    assert torch.equal(seen, seen.round())
    assert seen.max() >= 250 and seen.float().mean() > 100
    # the weak views are exactly the loaded uint8 frames
    weak = clips[:, 0].flatten(0, 1).float()  # [4 * 3, 3, 32, 32]
    assert torch.equal(seen[:12], weak)
    # the strong views are the frames after video-in-video (prob=1: every
    # strong view holds a pasted view, so it differs from its own frames)
    strong = clips[:, 1].flatten(0, 1).float()
    assert not torch.equal(seen[12:], strong)
    # ... and they are what the preprocessor produced, un-normalised
    pre = views.flatten(0, 1)[12:] * 57.12 + 116.28  # green channel
    torch.testing.assert_close(seen[12:, 1], pre[:, 1].round().clamp(0, 255))


def test_imagenet_option_is_standard_dino_input():
    clips, _, seen, _ = seen_by_teacher('imagenet')
    weak = clips[:, 0].flatten(0, 1).float()
    torch.testing.assert_close(seen[:12], (weak / 255 - IM_MEAN) / IM_STD)
    assert seen.min() > -2.2 and seen.max() < 2.7


def test_raw_input_undoes_any_preprocessor_normalisation():
    mean, std = (10.0, 20.0, 30.0), (2.0, 4.0, 8.0)
    clips, _, seen, _ = seen_by_teacher('raw', mean, std, seed=1)
    assert torch.equal(seen[:12], clips[:, 0].flatten(0, 1).float())
    clips, _, seen, _ = seen_by_teacher('imagenet', mean, std, seed=1)
    weak = clips[:, 0].flatten(0, 1).float()
    torch.testing.assert_close(seen[:12], (weak / 255 - IM_MEAN) / IM_STD)


def test_errors():
    with pytest.raises(ValueError, match='input_mode'):
        PseudoLabelHook(input_mode='unit')
    hook = PseudoLabelHook(teacher=TINY_TEACHER)
    with pytest.raises(RuntimeError, match='before_train'):
        hook.embed(torch.zeros(2, 3, 32, 32))
    hook.set_pixel_stats((0, 0, 0), (1, 1, 1))
    with pytest.raises(ValueError, match=r'\[M, 3, H, W\]'):
        hook.teacher_input(torch.zeros(2, 4, 32, 32))
    with pytest.raises(ValueError, match='3 channels'):
        hook.set_pixel_stats((0, 0), (1, 1))
