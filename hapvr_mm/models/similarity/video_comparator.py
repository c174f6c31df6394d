"""Video comparator CNN (docs/method.md section 3, step 4)."""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from mmaction.registry import MODELS
from mmengine.model import BaseModule
from torch import Tensor, nn

from ..precision import autocast_dtype

__all__ = [
    'VideoComparator', 'pool_mask', 'maxpool2', 'conv3x3_maxpool2',
    'conv3x3_maxpool2_relu'
]


def pool_mask(mask: Tensor) -> Tensor:
    """Downsample a frame mask like a 2x2 max-pool with stride 2 (floor).

    A pooled cell is valid only when both of its frames are valid, which is
    what the unpadded video gives (an odd last frame is dropped by the
    floor), so padding never changes a score.

    Args:
        mask (Tensor): bool ``[B, T]``.

    Returns:
        Tensor: bool ``[B, T // 2]``.
    """
    t = mask.shape[-1] // 2
    return mask[..., :2 * t:2] & mask[..., 1:2 * t:2]


def maxpool2(x: Tensor) -> Tensor:
    """2x2 max-pool with stride 2 (floor), as ``F.max_pool2d(x, 2)``.

    Written as the maximum of the four strided phases, which gives the same
    values and runs several times faster than ``max_pool2d`` on CPU for
    ``NCHW`` maps of these sizes.

    Args:
        x (Tensor): ``[B, C, H, W]``.

    Returns:
        Tensor: ``[B, C, H // 2, W // 2]``.
    """
    h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
    x = x[..., :h, :w]
    return torch.maximum(
        torch.maximum(x[..., 0::2, 0::2], x[..., 0::2, 1::2]),
        torch.maximum(x[..., 1::2, 0::2], x[..., 1::2, 1::2]))


def conv3x3_maxpool2(x: Tensor, conv: nn.Conv2d) -> Tensor:
    """``maxpool2(conv(x))`` for a 3x3 convolution with zero padding 1.

    For a single input channel the pooled output is the maximum of four
    stride-2 convolutions of the padded input (one per pooling phase): the
    full-resolution map is never written, which makes the first comparator
    layer about 4x faster on CPU. Other convolutions run as ``conv`` then
    :func:`maxpool2`. Values equal ``F.max_pool2d(conv(x), 2)``.

    Args:
        x (Tensor): ``[B, C, H, W]``.
        conv (nn.Conv2d): 3x3 convolution with ``padding=1``, stride 1.

    Returns:
        Tensor: ``[B, C', H // 2, W // 2]``.
    """
    if conv.in_channels != 1:
        return maxpool2(conv(x))
    h, w = x.shape[-2] // 2, x.shape[-1] // 2
    xp = F.pad(x, (1, 1, 1, 1))
    phases = [
        F.conv2d(
            xp[..., di:di + 2 * h + 1, dj:dj + 2 * w + 1],
            conv.weight,
            conv.bias,
            stride=2) for di in (0, 1) for dj in (0, 1)
    ]
    return torch.maximum(
        torch.maximum(phases[0], phases[1]),
        torch.maximum(phases[2], phases[3]))


def _pool_phases(x: Tensor, weight: Tensor,
                 bias: Optional[Tensor]) -> Tuple[Tensor, ...]:
    """The four 2x2-pooling phases of ``conv(x)`` (3x3, padding 1).

    Returns four ``[B, C', H // 2, W // 2]`` tensors: the output cells
    ``(2y + di, 2x + dj)`` for ``(di, dj)`` = (0, 0), (0, 1), (1, 0),
    (1, 1). One input channel: four stride-2 convolutions of the padded
    input (see :func:`conv3x3_maxpool2`); otherwise strided views of the
    full convolution.
    """
    h, w = x.shape[-2] // 2, x.shape[-1] // 2
    if weight.shape[1] == 1:
        xp = F.pad(x, (1, 1, 1, 1))
        return tuple(
            F.conv2d(
                xp[..., di:di + 2 * h + 1, dj:dj + 2 * w + 1],
                weight,
                bias,
                stride=2) for di in (0, 1) for dj in (0, 1))
    y = F.conv2d(x, weight, bias, padding=1)[..., :2 * h, :2 * w]
    return tuple(y[..., di::2, dj::2] for di in (0, 1) for dj in (0, 1))


class _Conv3x3MaxPool2ReLU(torch.autograd.Function):
    """``relu(max_pool2d(conv(x), 2))`` with a lean backward.

    Autograd through :func:`conv3x3_maxpool2` keeps the four pooling phases
    (or the full-resolution map) and runs one ``torch.maximum`` backward per
    pair of phases (two masked copies each) and, for one input channel, four
    stride-2 convolution backwards that reach only a few GFLOP/s: together
    about a third of the comparator's training time. Here the forward keeps
    only the winning phase of each pooled cell (``uint8``) and the output;
    the backward puts the output gradient back at the winners' positions of
    one full-resolution gradient map (the gradient of ``max_pool2d``) and
    runs a single stride-1 convolution backward. Values are those of
    ``F.relu(F.max_pool2d(conv(x), 2))``; gradients are those of
    ``max_pool2d`` (a tie goes to the first cell in row-major order).
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor,
                bias: Optional[Tensor]) -> Tensor:
        with torch.no_grad():
            p = _pool_phases(x, weight, bias)
            top = torch.maximum(p[0], p[1])
            bottom = torch.maximum(p[2], p[3])
            # winner in 0..3; strict '>' keeps the first of equal values
            win = (p[1] > p[0]).to(torch.uint8)
            low = bottom > top
            win = torch.where(low, (p[3] > p[2]).to(torch.uint8) + 2, win)
            out = torch.maximum(top, bottom).clamp_(min=0)
        ctx.conv_shape = (x.shape[-2], x.shape[-1])
        ctx.has_bias = bias is not None
        ctx.save_for_backward(x, weight, win, out)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, weight, win, out = ctx.saved_tensors
        b, c, h, w = out.shape
        height, width = ctx.conv_shape
        g = grad.masked_fill(out <= 0, 0)
        # flat full-resolution index of each winner, then the max-pool
        # gradient kernel (one scatter into a zeroed map)
        base = torch.arange(
            h, device=win.device).mul_(2 * width).view(h, 1) + torch.arange(
                w, device=win.device).mul_(2)
        win = win.long()
        index = (win >> 1).mul_(width).add_(win & 1).add_(base)
        full = torch.ops.aten.max_pool2d_with_indices_backward(
            g, g.new_empty(b, c, height, width), [2, 2], [2, 2], [0, 0],
            [1, 1], False, index)
        gx, gw, gb = torch.ops.aten.convolution_backward(
            full, x, weight, [weight.shape[0]] if ctx.has_bias else None,
            [1, 1], [1, 1], [1, 1], False, [0, 0], 1, [
                ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.has_bias
                and ctx.needs_input_grad[2]
            ])
        return gx, gw, gb


def conv3x3_maxpool2_relu(x: Tensor, conv: nn.Conv2d) -> Tensor:
    """``F.relu(F.max_pool2d(conv(x), 2))`` for a 3x3 conv with padding 1.

    Without gradients: ``relu(conv3x3_maxpool2(x, conv))``. With gradients:
    :class:`_Conv3x3MaxPool2ReLU` (same values, a leaner backward).

    Args:
        x (Tensor): ``[B, C, H, W]``.
        conv (nn.Conv2d): 3x3 convolution with ``padding=1``, stride 1.

    Returns:
        Tensor: ``[B, C', H // 2, W // 2]``.
    """
    if not (torch.is_grad_enabled() and
            (x.requires_grad or conv.weight.requires_grad)):
        return F.relu(conv3x3_maxpool2(x, conv))
    weight, bias = conv.weight, conv.bias
    device = x.device.type
    dtype = autocast_dtype(device)
    if dtype is not None:
        # what autocast does to a convolution, done before the function so
        # that its forward and backward see one dtype (the casts stay on the
        # autograd tape and return float32 gradients to the parameters)
        x, weight = x.to(dtype), weight.to(dtype)
        bias = None if bias is None else bias.to(dtype)
        with torch.autocast(device, enabled=False):
            return _Conv3x3MaxPool2ReLU.apply(x, weight, bias)
    return _Conv3x3MaxPool2ReLU.apply(x, weight, bias)


@MODELS.register_module()
class VideoComparator(BaseModule):
    """Small CNN that refines a frame-to-frame similarity map.

    Layout (docs/method.md): zero-pad 1, conv3x3 1->32, ReLU, maxpool 2;
    zero-pad 1,
    conv3x3 32->64, ReLU, maxpool 2; zero-pad 1, conv3x3 64->128, ReLU;
    conv1x1 128->1. Padded frames are zeroed after every layer.

    Args:
        channels (tuple[int]): channels of the three 3x3 convs.
            Defaults to (32, 64, 128).
        init_cfg (dict, optional): mmengine init config. Defaults to None
            (Xavier-uniform weights, zero bias).

    Shapes:
        input ``[B, Tq, Tt]`` -> output ``[B, Tq // 4, Tt // 4]``.
    """

    def __init__(self,
                 channels: Tuple[int, int, int] = (32, 64, 128),
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        c1, c2, c3 = channels
        self.conv1 = nn.Conv2d(1, c1, 3, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1)
        self.conv3 = nn.Conv2d(c2, c3, 3, padding=1)
        self.fconv = nn.Conv2d(c3, 1, 1)
        for conv in (self.conv1, self.conv2, self.conv3, self.fconv):
            nn.init.xavier_uniform_(conv.weight)
            nn.init.zeros_(conv.bias)

    def activation_bytes(self, rows: int, cols: int) -> int:
        """Bytes autograd keeps for backward per ``rows x cols`` map.

        With gradients, each pooling layer keeps its output (float) and its
        winners (``uint8``), and the last 3x3 conv its ReLU output (the 1x1
        conv's input); the input map and each layer's input are shared
        with the previous layer. Masks add at most a few percent.

        Args:
            rows (int): ``Tq``.
            cols (int): ``Tt``.

        Returns:
            int: bytes per map (float32; scales with the element size).
        """
        size = self.conv1.weight.element_size()
        first = (rows // 2) * (cols // 2)
        second = (rows // 4) * (cols // 4)
        return (self.conv1.out_channels * first * (size + 1) +
                self.conv2.out_channels * second * (size + 1) +
                self.conv3.out_channels * second * size)

    def forward(
        self,
        sim: Tensor,
        row_mask: Optional[Tensor] = None,
        col_mask: Optional[Tensor] = None
    ) -> Tuple[Tensor, Optional[Tensor], Optional[Tensor]]:
        """Refine similarity maps.

        Args:
            sim (Tensor): ``[B, Tq, Tt]`` frame-to-frame similarities.
            row_mask (Tensor, optional): bool ``[B, Tq]``, True = valid.
            col_mask (Tensor, optional): bool ``[B, Tt]``, True = valid.

        Returns:
            tuple: output ``[B, Tq // 4, Tt // 4]`` (raw, before hardtanh)
            and the pooled row and column masks (None when not given).
        """
        if sim.dim() != 3:
            raise ValueError('expected similarity maps [B, Tq, Tt], got '
                             f'{tuple(sim.shape)}')
        if sim.shape[-2] < 4 or sim.shape[-1] < 4:
            raise ValueError('the comparator needs at least 4 frames per '
                             f'video, got maps of {tuple(sim.shape)}')
        masked = row_mask is not None or col_mask is not None
        if masked:
            b, tq, tt = sim.shape
            if row_mask is None:
                row_mask = sim.new_ones(b, tq, dtype=torch.bool)
            if col_mask is None:
                col_mask = sim.new_ones(b, tt, dtype=torch.bool)
            if row_mask.shape != (b, tq) or col_mask.shape != (b, tt):
                raise ValueError(
                    f'masks must be [{b}, {tq}] and [{b}, {tt}], got '
                    f'{tuple(row_mask.shape)} and {tuple(col_mask.shape)}')

        # Same values as "mask after every layer" with fewer passes: ReLU
        # and max-pool commute (both monotone), and a pooled cell is valid
        # only when its four inputs are, so masking before a pool or before
        # the 1x1 conv never changes a valid output cell; only the inputs
        # of the 3x3 convs (read across the padding) and the output need it.

        def apply(x: Tensor) -> Tensor:
            if not masked:
                return x
            cell = row_mask[:, None, :, None] & col_mask[:, None, None, :]
            return x * cell.to(x.dtype)

        x = apply(sim.unsqueeze(1))
        x = conv3x3_maxpool2_relu(x, self.conv1)
        if masked:
            row_mask, col_mask = pool_mask(row_mask), pool_mask(col_mask)
        x = apply(x)
        x = conv3x3_maxpool2_relu(x, self.conv2)
        if masked:
            row_mask, col_mask = pool_mask(row_mask), pool_mask(col_mask)
        x = apply(x)
        x = apply(self.fconv(F.relu(self.conv3(x))))
        return x.squeeze(1), row_mask, col_mask
