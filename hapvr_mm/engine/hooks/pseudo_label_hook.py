"""Runs the frozen DINO teacher that gives the frame-level pseudo labels."""
from typing import Optional

import torch
from mmaction.registry import HOOKS, MODELS
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from torch import Tensor

__all__ = ['PseudoLabelHook']


@HOOKS.register_module()
class PseudoLabelHook(Hook):
    """Build the frozen teacher once and lend it to the model for training.

    Before training the hook builds the teacher (``DINOViT`` by default),
    loads its weights through ``init_cfg``, freezes it, moves it to the
    model's device and hands :meth:`embed` to ``HAPVR.set_teacher``. In
    every training step the model calls it on the batch's (normalised,
    post video-in-video) frames and turns the embeddings into the frame
    positive/negative masks of METHOD section 4. The teacher is never a
    sub-module of the trained model: it has no gradient, is not wrapped in
    DDP and is not in saved checkpoints. When the model's frame-level loss
    is off (``loss_frame_ap=None`` or weight 0) the teacher is not built.

    Args:
        teacher (dict): teacher config. Defaults to ``dict(type='DINOViT')``.
        fp16 (bool): run the teacher in half precision on CUDA (ignored on
            CPU). Defaults to True.
    """

    priority = 'NORMAL'

    def __init__(self,
                 teacher: dict = dict(type='DINOViT'),
                 fp16: bool = True) -> None:
        self.teacher_cfg = teacher
        self.fp16 = fp16
        self.teacher: Optional[torch.nn.Module] = None
        self.calls = 0

    @staticmethod
    def _unwrap(model):
        return model.module if is_model_wrapper(model) else model

    def before_train(self, runner) -> None:
        """Build the teacher and give it to the model (when needed)."""
        model = self._unwrap(runner.model)
        if not getattr(model, 'needs_teacher', False):
            print_log(
                'PseudoLabelHook: frame-level loss is off, teacher not built',
                logger='current')
            return
        if self.teacher is None:
            teacher = MODELS.build(self.teacher_cfg)
            if not teacher.init_cfg:
                print_log(
                    '!' * 70 + '\nPseudoLabelHook: the teacher has NO '
                    'pretrained weights (init_cfg is None); its pseudo labels '
                    'come from a random network. Set the DINO checkpoint for '
                    'real training (docs/weights.md).\n' + '!' * 70,
                    logger='current',
                    level=30)
            teacher.init_weights()
            teacher.eval()
            for p in teacher.parameters():
                p.requires_grad_(False)
            device = next(model.parameters()).device
            teacher.to(device)
            if self.fp16 and device.type == 'cuda':
                teacher.half()
            self.teacher = teacher
        model.set_teacher(self.embed)

    @torch.no_grad()
    def embed(self, frames: Tensor) -> Tensor:
        """Teacher embeddings of normalised frames.

        Args:
            frames (Tensor): ``[M, 3, H, W]``.

        Returns:
            Tensor: float32 ``[M, C]`` (C = 384 for ViT-S/16).
        """
        if self.teacher is None:
            raise RuntimeError('PseudoLabelHook.embed called before '
                               'before_train built the teacher')
        self.calls += 1
        dtype = next(self.teacher.parameters()).dtype
        return self.teacher(frames.to(dtype)).float()

    def after_train(self, runner) -> None:
        """Detach the teacher from the model."""
        model = self._unwrap(runner.model)
        if hasattr(model, 'set_teacher'):
            model.set_teacher(None)
