"""Video-in-video (ViV), HAP-VR's batch augmentation (docs/method.md s. 1).

With probability ``prob`` per strong view ``i``, another strong view ``j`` is
drawn, view ``i`` (all its frames) is resized bilinearly into a box and
pasted into a copy of view ``j``; the result replaces view ``i``, which is
then relevant to its own source and to source ``j``.

The box follows the authors' geometry (docs/method.md section 1): its sides
are ``sqrt(1 - lam)`` of the frame's (``lam ~ U(lam_range)``), its centre
is a uniform pixel of the WHOLE frame, and it is clipped at the frame's
edges; the whole of view ``i`` is resized into the clipped box (its aspect
ratio may change). The pasted area is therefore often smaller than
``1 - lam``: about a third of the frame on average for ``lam_range=(0.3,
0.7)`` (``E[(s - s^2 / 4)^2]`` with ``s = sqrt(1 - lam)``).

Every pasted view and every host is taken from the ORIGINAL, unmodified
strong views: when view ``j`` itself gets a ViV, view ``i`` is still pasted
into the original view ``j``, so each ViV view holds exactly two sources
(its own and its host) and the relevance matrix of
:func:`relevance_from_hosts` stays exact.
"""
import math
from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F
from mmaction.registry import MODELS

__all__ = [
    'views_to_batch', 'viv_box', 'video_in_video', 'relevance_from_hosts',
    'VideoInVideo'
]


def views_to_batch(inputs: torch.Tensor) -> torch.Tensor:
    """Reorder per-sample view pairs into the batch layout of HAP-VR.

    Args:
        inputs (torch.Tensor): ``[B, 2, ...]``, view 0 weak, view 1 strong
            (as stacked from :class:`PackSSLInputs` outputs).

    Returns:
        torch.Tensor: ``[2B, ...]``: the ``B`` weak views followed by the
        ``B`` strong views of the same sources.
    """
    if inputs.dim() < 2 or inputs.shape[1] != 2:
        raise ValueError('expected inputs of shape [B, 2, ...], got '
                         f'{tuple(inputs.shape)}')
    return inputs.transpose(0, 1).reshape((-1, ) + tuple(inputs.shape[2:]))


def _check_lam_range(lam_range: Tuple[float, float]) -> Tuple[float, float]:
    lo, hi = float(lam_range[0]), float(lam_range[1])
    if not 0.0 <= lo <= hi < 1.0:
        raise ValueError('lam_range must be (lo, hi) with 0 <= lo <= hi < 1,'
                         f' got {tuple(lam_range)}')
    return lo, hi


def _span(centre: int, half: int, size: int) -> Tuple[int, int]:
    """Clipped ``[centre - half, centre + half)``, at least one pixel."""
    lo = min(max(centre - half, 0), size - 1)
    hi = min(max(centre + half, lo + 1), size)
    return lo, hi


def viv_box(height: int,
            width: int,
            lam: float,
            generator: Optional[torch.Generator] = None
            ) -> Tuple[int, int, int, int]:
    """Draw the box a view is pasted into (the authors' geometry).

    The unclipped box is ``2 * (floor(H s) // 2)`` by ``2 * (floor(W s) //
    2)`` pixels with ``s = sqrt(1 - lam)``, centred on a pixel drawn
    uniformly over the whole frame; it is then clipped to the frame (and
    kept at least one pixel wide).

    Args:
        height (int): frame height ``H``.
        width (int): frame width ``W``.
        lam (float): the ViV ``lam`` in ``[0, 1)``.
        generator (torch.Generator | None): CPU generator. Default: None.

    Returns:
        tuple[int, int, int, int]: ``(top, left, h, w)`` of the clipped box.
    """
    side = math.sqrt(1.0 - lam)
    cy = int(torch.randint(height, (1, ), generator=generator))
    cx = int(torch.randint(width, (1, ), generator=generator))
    top, bottom = _span(cy, int(height * side) // 2, height)
    left, right = _span(cx, int(width * side) // 2, width)
    return top, left, bottom - top, right - left


def video_in_video(
    strong: torch.Tensor,
    prob: float = 0.3,
    lam_range: Tuple[float, float] = (0.3, 0.7),
    generator: Optional[torch.Generator] = None,
    return_boxes: bool = False
) -> Union[Tuple[torch.Tensor, torch.Tensor], Tuple[torch.Tensor, torch.Tensor,
                                                    torch.Tensor]]:
    """Paste some strong views, shrunk, into other strong views.

    Args:
        strong (torch.Tensor): strong views ``[B, T, C, H, W]`` (uint8 or
            floating point).
        prob (float): probability of a ViV per view. Default: 0.3.
        lam_range (tuple[float, float]): range of ``lam``; the pasted box's
            sides are ``sqrt(1 - lam)`` of the frame's before the box is
            clipped at the frame's edges (see :func:`viv_box`).
            Default: (0.3, 0.7).
        generator (torch.Generator | None): CPU generator of the random
            draws; None uses torch's global one. Default: None.
        return_boxes (bool): also return the boxes. Default: False.

    Returns:
        tuple: ``out`` ``[B, T, C, H, W]`` (same dtype and device as
        ``strong``, a new tensor), ``host`` LongTensor ``[B]`` (the source
        ``j`` whose view hosts view ``i``, -1 where no ViV was applied) and,
        with ``return_boxes``, ``boxes`` LongTensor ``[B, 4]`` (``top, left,
        h, w`` of the pasted view, -1 where none). With ``B = 1`` nothing is
        applied.
    """
    if strong.dim() != 5:
        raise ValueError('video_in_video expects strong views [B, T, C, H, '
                         f'W], got shape {tuple(strong.shape)}')
    if not 0.0 <= prob <= 1.0:
        raise ValueError(f'prob must be in [0, 1], got {prob}')
    lo, hi = _check_lam_range(lam_range)
    B, _, _, H, W = strong.shape
    host = torch.full((B, ), -1, dtype=torch.long)
    boxes = torch.full((B, 4), -1, dtype=torch.long)
    out = strong.clone()
    if B > 1:
        applied = torch.rand(B, generator=generator) < prob
        for i in torch.nonzero(applied).flatten().tolist():
            j = int(torch.randint(B - 1, (1, ), generator=generator))
            j = j + 1 if j >= i else j
            lam = lo + (hi - lo) * float(torch.rand(1, generator=generator))
            top, left, h, w = viv_box(H, W, lam, generator)
            small = F.interpolate(
                strong[i].float(),
                size=(h, w),
                mode='bilinear',
                align_corners=False)
            if not strong.is_floating_point():
                small = small.round().clamp(0, 255)
            canvas = strong[j].clone()
            canvas[:, :, top:top + h, left:left + w] = small.to(strong.dtype)
            out[i] = canvas
            host[i] = j
            boxes[i] = torch.tensor([top, left, h, w])
    host = host.to(strong.device)
    if return_boxes:
        return out, host, boxes.to(strong.device)
    return out, host


def relevance_from_hosts(B: int, host: torch.Tensor) -> torch.Tensor:
    """Relevance matrix of a HAP-VR batch.

    Views ``0..B-1`` are the weak and ``B..2B-1`` the strong views of sources
    ``0..B-1``. The membership ``L`` (``2B x B``) has a 1 at each view's own
    source and, for strong view ``B + i`` with ``host[i] >= 0``, at its ViV
    host source; ``Y = (L L^T > 0)``.

    Args:
        B (int): number of sources.
        host (torch.Tensor): LongTensor ``[B]``, the ViV host source of each
            strong view or -1.

    Returns:
        torch.Tensor: ``Y`` ``[2B, 2B]`` float (0/1, symmetric, ones on the
        diagonal) on ``host``'s device.
    """
    if B < 1:
        raise ValueError(f'B must be >= 1, got {B}')
    if host.shape != (B, ):
        raise ValueError(f'host must have shape ({B},), got '
                         f'{tuple(host.shape)}')
    host = host.long()
    if ((host < -1) | (host >= B)).any():
        raise ValueError(f'host values must be -1 or in [0, {B}), got '
                         f'{host.tolist()}')
    src = torch.arange(B, device=host.device)
    L = torch.zeros(2 * B, B, device=host.device)
    L[src, src] = 1.0
    L[B + src, src] = 1.0
    viv = torch.nonzero(host >= 0).flatten()
    L[B + viv, host[viv]] = 1.0
    return ((L @ L.t()) > 0).float()


@MODELS.register_module()
class VideoInVideo:
    """Batch augment: video-in-video on the strong half, plus ``Y``.

    Args:
        prob (float): probability of a ViV per strong view. Default: 0.3.
        lam_range (tuple[float, float]): range of ``lam``. Default:
            (0.3, 0.7).
    """

    def __init__(self,
                 prob: float = 0.3,
                 lam_range: Tuple[float, float] = (0.3, 0.7)) -> None:
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f'prob must be in [0, 1], got {prob}')
        self.prob = float(prob)
        self.lam_range = _check_lam_range(lam_range)

    def __call__(
        self,
        inputs: torch.Tensor,
        generator: Optional[torch.Generator] = None
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Apply ViV to the strong views and build the relevance matrix.

        Args:
            inputs (torch.Tensor): ``[2B, T, C, H, W]``, the ``B`` weak views
                then the ``B`` strong views of the same sources.
            generator (torch.Generator | None): CPU generator. Default: None.

        Returns:
            tuple[torch.Tensor, torch.Tensor]: ``inputs`` ``[2B, T, C, H, W]``
            (weak half unchanged, strong half with ViV) and ``Y``
            ``[2B, 2B]`` float on ``inputs``' device.
        """
        if inputs.dim() != 5 or inputs.shape[0] % 2 != 0:
            raise ValueError('VideoInVideo expects inputs [2B, T, C, H, W] '
                             '(weak views then strong views), got shape '
                             f'{tuple(inputs.shape)}')
        B = inputs.shape[0] // 2
        strong, host = video_in_video(inputs[B:], self.prob, self.lam_range,
                                      generator)
        out = torch.cat([inputs[:B], strong], dim=0)
        return out, relevance_from_hosts(B, host)

    def apply_to_strong(
        self,
        strong: torch.Tensor,
        generator: Optional[torch.Generator] = None
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Apply ViV to the strong views only (no relevance matrix).

        Args:
            strong (torch.Tensor): strong views ``[B, T, C, H, W]``.
            generator (torch.Generator | None): CPU generator. Default: None.

        Returns:
            tuple[torch.Tensor, torch.Tensor]: the new strong views
            ``[B, T, C, H, W]`` and the hosts LongTensor ``[B]`` (-1: none),
            for :func:`relevance_from_hosts`.
        """
        return video_in_video(strong, self.prob, self.lam_range, generator)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(prob={self.prob}, '
                f'lam_range={self.lam_range})')
