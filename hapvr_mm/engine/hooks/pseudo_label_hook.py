"""Runs the frozen DINO teacher that gives the frame-level pseudo labels."""
from typing import Optional, Tuple

import torch
from mmaction.registry import HOOKS, MODELS
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from torch import Tensor

__all__ = ['PseudoLabelHook', 'TEACHER_INPUT_MODES']

#: The teacher inputs :class:`PseudoLabelHook` can give.
TEACHER_INPUT_MODES = ('raw', 'imagenet')

#: ImageNet's per-channel mean and std on the 0-255 scale.
_IMAGENET_MEAN = (123.675, 116.28, 103.53)
_IMAGENET_STD = (58.395, 57.12, 57.375)


@HOOKS.register_module()
class PseudoLabelHook(Hook):
    """Build the frozen teacher once and lend it to the model for training.

    Before training the hook builds the teacher (``DINOViT`` by default),
    loads its weights through ``init_cfg``, freezes it, moves it to the
    model's device and hands :meth:`embed` to ``HAPVR.set_teacher``. In
    every training step the model calls it on the batch's frames (the
    data preprocessor's output: normalised, after video-in-video) and turns
    the embeddings into the frame positive/negative masks of
    docs/method.md section 4. The teacher is never a sub-module of the
    trained model: it has no gradient, is not wrapped in DDP and is not in
    saved checkpoints. When the model's frame-level loss is off
    (``loss_frame_ap=None`` or weight 0) the teacher is not built.

    What the teacher sees is set by ``input_mode``:

    * ``'raw'`` (default, the paper recipe): the authors feed DINO the raw
      0-255 pixel values of the training views, without scaling to [0, 1]
      or any normalisation. :meth:`embed` undoes the data preprocessor's
      ``(x - mean) / std`` (read from ``model.data_preprocessor`` in
      :meth:`before_train`), rounds to whole pixel values and clamps to
      [0, 255], as the authors' uint8 frames are.
    * ``'imagenet'``: the standard DINO input, ``(x / 255 - m) / s`` with
      ImageNet's ``m = (0.485, 0.456, 0.406)`` and ``s = (0.229, 0.224,
      0.225)``, whatever normalisation the data preprocessor uses.

    The input is cast to the teacher's dtype: fp16 on an accelerator (any
    device but the CPU) when ``fp16`` (as the authors run it), float32
    otherwise.

    Args:
        teacher (dict): teacher config. Defaults to ``dict(type='DINOViT')``.
        fp16 (bool): run the teacher in half precision on an accelerator
            (ignored on the CPU). Defaults to True.
        input_mode (str): ``'raw'`` or ``'imagenet'`` (see above).
            Defaults to ``'raw'``.
    """

    priority = 'NORMAL'

    def __init__(self,
                 teacher: dict = dict(type='DINOViT'),
                 fp16: bool = True,
                 input_mode: str = 'raw') -> None:
        if input_mode not in TEACHER_INPUT_MODES:
            raise ValueError(f'PseudoLabelHook: input_mode must be one of '
                             f'{TEACHER_INPUT_MODES}, got {input_mode!r}')
        self.teacher_cfg = teacher
        self.fp16 = fp16
        self.input_mode = input_mode
        self.teacher: Optional[torch.nn.Module] = None
        self.calls = 0
        # the data preprocessor's mean / std, [1, 3, 1, 1] (0-255 scale)
        self.pixel_stats: Optional[Tuple[Tensor, Tensor]] = None

    @staticmethod
    def _channel_stats(values, device, name: str) -> Tensor:
        out = torch.as_tensor(values, dtype=torch.float32, device=device)
        if out.numel() != 3:
            raise ValueError(f'PseudoLabelHook: the data preprocessor\'s '
                             f'{name} must have 3 channels, got shape '
                             f'{tuple(out.shape)}')
        return out.reshape(1, 3, 1, 1)

    def set_pixel_stats(self, mean, std) -> None:
        """Set the normalisation that :meth:`embed` undoes.

        Args:
            mean (sequence[float] | Tensor): per-channel mean, 0-255 scale.
            std (sequence[float] | Tensor): per-channel std, 0-255 scale.
        """
        device = None
        if self.teacher is not None:
            device = next(self.teacher.parameters()).device
        self.pixel_stats = (self._channel_stats(mean, device, 'mean'),
                            self._channel_stats(std, device, 'std'))

    def teacher_input(self, frames: Tensor) -> Tensor:
        """The teacher's input for normalised frames (float32).

        Args:
            frames (Tensor): ``[M, 3, H, W]`` normalised by the data
                preprocessor.

        Returns:
            Tensor: float32 ``[M, 3, H, W]``: whole pixel values in
            [0, 255] (``'raw'``) or ImageNet-normalised (``'imagenet'``).
        """
        if frames.dim() != 4 or frames.shape[1] != 3:
            raise ValueError('PseudoLabelHook expects frames [M, 3, H, W], '
                             f'got shape {tuple(frames.shape)}')
        if self.pixel_stats is None:
            raise RuntimeError('PseudoLabelHook: the data preprocessor\'s '
                               'mean/std are unknown; before_train reads '
                               'them (or call set_pixel_stats)')
        mean, std = (t.to(frames.device) for t in self.pixel_stats)
        raw = (frames.float() * std + mean).round_().clamp_(0, 255)
        if self.input_mode == 'raw':
            return raw
        im_mean = self._channel_stats(_IMAGENET_MEAN, frames.device, 'mean')
        im_std = self._channel_stats(_IMAGENET_STD, frames.device, 'std')
        return (raw - im_mean) / im_std

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
            if self.fp16 and device.type != 'cpu':
                teacher.half()
            self.teacher = teacher
        self._read_pixel_stats(model)
        model.set_teacher(self.embed)

    def _read_pixel_stats(self, model) -> None:
        pre = getattr(model, 'data_preprocessor', None)
        mean = getattr(pre, 'mean', None)
        std = getattr(pre, 'std', None)
        if mean is None or std is None:
            raise RuntimeError(
                'PseudoLabelHook: the model\'s data_preprocessor '
                f'({type(pre).__name__}) has no mean/std to undo; the '
                'teacher input needs the frames\' normalisation')
        self.set_pixel_stats(mean, std)

    @torch.no_grad()
    def embed(self, frames: Tensor) -> Tensor:
        """Teacher embeddings of normalised frames.

        Args:
            frames (Tensor): ``[M, 3, H, W]``, normalised by the data
                preprocessor; the teacher gets :meth:`teacher_input` of
                them, cast to its dtype.

        Returns:
            Tensor: float32 ``[M, C]`` (C = 384 for ViT-S/16).
        """
        if self.teacher is None:
            raise RuntimeError('PseudoLabelHook.embed called before '
                               'before_train built the teacher')
        self.calls += 1
        dtype = next(self.teacher.parameters()).dtype
        return self.teacher(self.teacher_input(frames).to(dtype)).float()

    def after_train(self, runner) -> None:
        """Detach the teacher from the model."""
        model = self._unwrap(runner.model)
        if hasattr(model, 'set_teacher'):
            model.set_teacher(None)
