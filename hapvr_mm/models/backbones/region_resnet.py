"""Frozen ResNet-50 with R-MAC-like regional pooling (METHOD.md section 2).

The network is mmaction2's :class:`~mmaction.models.backbones.resnet.ResNet`
(four stage outputs, eval-mode BatchNorm, every parameter frozen). Its four
stage outputs are turned into ``R`` region vectors per frame by the plain
function :func:`region_pooling`, which holds the whole pooling maths.

Pretrained weights come through ``init_cfg=dict(type='Pretrained',
checkpoint=PATH)`` with a local torchvision-format ImageNet checkpoint
(``conv1.weight``, ``bn1.*``, ``layer1.0.downsample.0.weight``, ...) or a
checkpoint already in mmaction2's naming (``conv1.conv.weight``,
``conv1.bn.*``, ...). Loading is strict: every weight of the network must be
present with the right shape, and unknown keys are an error (``fc.*`` is
ignored). See ``docs/weights.md``.
"""
import math
import os.path as osp
import re
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmaction.models.backbones.resnet import ResNet
from mmaction.registry import MODELS

__all__ = [
    'RegionResNet', 'region_pooling', 'load_state_dict_file',
    'torchvision_to_mmaction_resnet_key', 'pretrained_checkpoint_path',
    'check_state_dict_keys'
]

#: Max-pooling kernel per ResNet stage (stride is ``ceil(s / 2)``); at a
#: 224 x 224 input each stage then gives a 3 x 3 grid of regions.
DEFAULT_KERNEL_SIZES = (28, 14, 6, 3)

_NESTING_KEYS = ('state_dict', 'model')
_PREFIXES = ('module.', 'backbone.')


def region_pooling(
        stage_outputs: Sequence[torch.Tensor],
        kernel_sizes: Sequence[int] = DEFAULT_KERNEL_SIZES) -> torch.Tensor:
    """Pool ResNet stage outputs into L2-normalised region vectors.

    Each stage output is max-pooled with kernel ``s`` and stride
    ``ceil(s / 2)``, L2-normalised over channels, adaptively max-pooled to the
    last stage's region grid, L2-normalised again; the stages are then
    concatenated over channels, the grid is flattened row-major into ``R``
    regions and every region vector is L2-normalised.

    Args:
        stage_outputs (Sequence[torch.Tensor]): Stage feature maps, each
            ``[B, C_k, H_k, W_k]`` (same ``B`` for all); for ResNet-50 at
            224 x 224 the shapes are ``[B, 256, 56, 56]``,
            ``[B, 512, 28, 28]``, ``[B, 1024, 14, 14]`` and
            ``[B, 2048, 7, 7]``.
        kernel_sizes (Sequence[int]): Max-pooling kernel ``s`` per stage.
            Defaults to ``(28, 14, 6, 3)``.

    Returns:
        torch.Tensor: Region vectors ``[B, R, sum_k C_k]``; ``R = 9`` and
        ``sum_k C_k = 3840`` for ResNet-50 at 224 x 224.
    """
    if len(stage_outputs) == 0:
        raise ValueError('region_pooling expects at least one stage output, '
                         'got none')
    if len(kernel_sizes) != len(stage_outputs):
        raise ValueError(
            f'region_pooling expects one kernel size per stage output: '
            f'{len(stage_outputs)} stage outputs but kernel_sizes='
            f'{tuple(kernel_sizes)}')
    batch = stage_outputs[0].shape[0]
    pooled: List[torch.Tensor] = []
    for idx, (feat, size) in enumerate(zip(stage_outputs, kernel_sizes)):
        if feat.dim() != 4 or feat.shape[0] != batch:
            raise ValueError(
                f'stage output {idx} must be [B={batch}, C, H, W], got '
                f'{tuple(feat.shape)}')
        if feat.shape[-2] < size or feat.shape[-1] < size:
            raise ValueError(
                f'stage output {idx} of spatial size '
                f'{tuple(feat.shape[-2:])} is smaller than its pooling '
                f'kernel {size}; expected at least ({size}, {size}) '
                f'(use 224 x 224 inputs)')
        regions = F.max_pool2d(feat, size, int(math.ceil(size / 2)))
        pooled.append(F.normalize(regions, p=2, dim=1))
    grid = pooled[-1].shape[-2:]
    pooled = [
        F.normalize(F.adaptive_max_pool2d(p, grid), p=2, dim=1) for p in pooled
    ]
    x = torch.cat(pooled, dim=1)  # [B, C, h, w]
    x = x.flatten(2).transpose(1, 2)  # [B, h * w, C], row-major regions
    return F.normalize(x, p=2, dim=-1)


def pretrained_checkpoint_path(
        init_cfg: Optional[Union[dict, List[dict]]]) -> Optional[str]:
    """Return the checkpoint of a ``type='Pretrained'`` entry of init_cfg.

    Args:
        init_cfg (dict | list[dict], optional): mmengine initialisation
            config(s).

    Returns:
        str | None: The ``checkpoint`` value of the first ``Pretrained``
        entry, or None when there is none.
    """
    if init_cfg is None:
        return None
    cfgs = init_cfg if isinstance(init_cfg, (list, tuple)) else [init_cfg]
    for cfg in cfgs:
        if cfg.get('type') == 'Pretrained':
            path = cfg.get('checkpoint')
            if not isinstance(path, str) or not path:
                raise ValueError(
                    f"init_cfg type='Pretrained' needs a checkpoint path "
                    f'(str), got {path!r}')
            return path
    return None


def load_state_dict_file(
        path: str,
        nesting_keys: Sequence[str] = _NESTING_KEYS,
        prefixes: Sequence[str] = _PREFIXES) -> Dict[str, torch.Tensor]:
    """Read a local checkpoint and return its flat, prefix-free state dict.

    The file is read with ``torch.load(weights_only=True)`` on the CPU. When
    the loaded dict holds one of ``nesting_keys`` (tried in order) the state
    dict is taken from there; then every leading ``module.`` /
    ``backbone.`` (any order, repeated) is stripped from the key names.

    Args:
        path (str): Local checkpoint file.
        nesting_keys (Sequence[str]): Keys under which the state dict may be
            nested. Defaults to ``('state_dict', 'model')``.
        prefixes (Sequence[str]): Key prefixes to strip. Defaults to
            ``('module.', 'backbone.')``.

    Returns:
        dict[str, torch.Tensor]: Tensor entries of the state dict.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'checkpoint file not found: {path!r} (see docs/weights.md for '
            f'where the pretrained weights go)')
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:  # unpickling error: not a plain state dict
        raise ValueError(
            f'cannot read checkpoint {path!r} with '
            f'torch.load(weights_only=True): {err}. Save only its state '
            f'dict of tensors (see docs/weights.md).') from err
    if not isinstance(ckpt, dict):
        raise ValueError(f'checkpoint {path!r} holds a {type(ckpt).__name__}, '
                         f'expected a dict (state dict)')
    for key in nesting_keys:
        if key in ckpt and isinstance(ckpt[key], dict):
            ckpt = ckpt[key]
            break
    out: Dict[str, torch.Tensor] = {}
    for key, value in ckpt.items():
        if not torch.is_tensor(value):
            continue
        changed = True
        while changed:
            changed = False
            for prefix in prefixes:
                if key.startswith(prefix):
                    key = key[len(prefix):]
                    changed = True
        out[key] = value
    if not out:
        raise ValueError(f'checkpoint {path!r} holds no tensors (top-level '
                         f'keys: {sorted(ckpt)[:10]})')
    return out


def check_state_dict_keys(
    module: nn.Module,
    state_dict: Dict[str, torch.Tensor],
    source: str,
    optional_suffixes: Sequence[str] = ('num_batches_tracked', )
) -> None:
    """Check that ``state_dict`` matches ``module`` key for key and shape.

    Args:
        module (nn.Module): Destination module.
        state_dict (dict[str, torch.Tensor]): Weights to load.
        source (str): Name of the file, used in the error message.
        optional_suffixes (Sequence[str]): Module keys ending in one of
            these may be absent from ``state_dict``. Defaults to
            ``('num_batches_tracked',)``.

    Raises:
        ValueError: Listing the missing keys, the unexpected keys and the
            keys whose shapes differ.
    """
    own = module.state_dict()
    missing = [
        k for k in own if k not in state_dict and not any(
            k.endswith(s) for s in optional_suffixes)
    ]
    unexpected = [k for k in state_dict if k not in own]
    mismatched = [
        f'{k}: expected {tuple(own[k].shape)}, got '
        f'{tuple(state_dict[k].shape)}' for k in state_dict
        if k in own and own[k].shape != state_dict[k].shape
    ]
    if missing or unexpected or mismatched:

        def _fmt(names: List[str]) -> str:
            shown = ', '.join(names[:20])
            more = f' ... (+{len(names) - 20} more)' if len(names) > 20 else ''
            return f'[{shown}{more}]'

        raise ValueError(
            f'checkpoint {source!r} does not match '
            f'{module.__class__.__name__}: {len(missing)} missing keys '
            f'{_fmt(missing)}; {len(unexpected)} unexpected keys '
            f'{_fmt(unexpected)}; {len(mismatched)} shape mismatches '
            f'{_fmt(mismatched)}')


_TV_LAYER_KEY = re.compile(r'^(layer\d+\.\d+)\.(\w+)\.(.+)$')


def torchvision_to_mmaction_resnet_key(key: str) -> str:
    """Map a torchvision ResNet key to mmaction2's ResNet naming.

    ``conv1.*`` -> ``conv1.conv.*``, ``bn1.*`` -> ``conv1.bn.*``,
    ``layerX.Y.convN.*`` -> ``layerX.Y.convN.conv.*``, ``layerX.Y.bnN.*`` ->
    ``layerX.Y.convN.bn.*``, ``layerX.Y.downsample.0.*`` ->
    ``layerX.Y.downsample.conv.*`` and ``layerX.Y.downsample.1.*`` ->
    ``layerX.Y.downsample.bn.*``. Other keys are returned unchanged.

    Args:
        key (str): torchvision key, e.g. ``'layer1.0.bn2.running_var'``.

    Returns:
        str: mmaction2 key, e.g. ``'layer1.0.conv2.bn.running_var'``.
    """
    if key.startswith('conv1.'):
        return 'conv1.conv.' + key[len('conv1.'):]
    if key.startswith('bn1.'):
        return 'conv1.bn.' + key[len('bn1.'):]
    match = _TV_LAYER_KEY.match(key)
    if match is None:
        return key
    block, sub, rest = match.groups()
    if re.fullmatch(r'conv\d+', sub):
        return f'{block}.{sub}.conv.{rest}'
    if re.fullmatch(r'bn\d+', sub):
        return f'{block}.conv{sub[2:]}.bn.{rest}'
    if sub == 'downsample':
        if rest.startswith('0.'):
            return f'{block}.downsample.conv.{rest[2:]}'
        if rest.startswith('1.'):
            return f'{block}.downsample.bn.{rest[2:]}'
    return key


def _is_mmaction_naming(keys: Sequence[str]) -> bool:
    return any(
        k.startswith('conv1.conv.') or '.conv1.conv.' in k
        or '.downsample.conv.' in k for k in keys)


@MODELS.register_module()
class RegionResNet(ResNet):
    """Frozen ResNet backbone returning R-MAC-like region vectors per frame.

    A subclass of mmaction2's ResNet (so its weights keep mmaction2's key
    names) with all four stages as outputs, every parameter frozen
    (``requires_grad=False``), BatchNorm always in eval mode (``train()``
    keeps the whole module in eval mode) and ``forward`` under
    ``torch.no_grad()``. The output is *not* PCA-whitened (see
    :class:`~hapvr_mm.models.layers.pca_whitening.PCAWhitening`).

    Args:
        depth (int): ResNet depth. Defaults to 50 (the method's backbone;
            other depths change the output channels).
        kernel_sizes (Sequence[int]): Region max-pooling kernel per stage.
            Defaults to ``(28, 14, 6, 3)``.
        frame_chunk (int, optional): Frames per network forward; long videos
            are processed in chunks of this size to bound memory. None
            processes all frames at once. Defaults to None.
        init_cfg (dict | list[dict], optional): Use
            ``dict(type='Pretrained', checkpoint=PATH)`` with a local
            torchvision-format (or mmaction2-format) ImageNet checkpoint.
            Any other value falls back to mmaction2 ResNet's random
            initialisation. Defaults to None.
    """

    def __init__(self,
                 depth: int = 50,
                 kernel_sizes: Sequence[int] = DEFAULT_KERNEL_SIZES,
                 frame_chunk: Optional[int] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        if len(kernel_sizes) != 4:
            raise ValueError(f'kernel_sizes needs one size per ResNet stage '
                             f'(4), got {tuple(kernel_sizes)}')
        if frame_chunk is not None and (not isinstance(frame_chunk, int)
                                        or frame_chunk < 1):
            raise ValueError(
                f'frame_chunk must be a positive int or None, got '
                f'{frame_chunk!r}')
        resnet_init = init_cfg
        if init_cfg is None or pretrained_checkpoint_path(init_cfg) is None:
            resnet_init = [
                dict(type='Kaiming', layer='Conv2d'),
                dict(type='Constant', layer='BatchNorm2d', val=1.)
            ]
        super().__init__(
            depth=depth,
            pretrained=None,
            torchvision_pretrain=False,
            out_indices=(0, 1, 2, 3),
            norm_eval=True,
            init_cfg=resnet_init)
        self.kernel_sizes = tuple(int(s) for s in kernel_sizes)
        self.frame_chunk = frame_chunk
        self.out_channels = sum(self.block.expansion * 64 * 2**i
                                for i in range(4))
        for param in self.parameters():
            param.requires_grad = False
        self.train(False)

    def init_weights(self) -> None:
        """Load the ``Pretrained`` checkpoint of init_cfg, or init randomly.

        The checkpoint (local file) may use torchvision's key names or
        mmaction2's; ``fc.*`` is ignored, ``num_batches_tracked`` is
        optional, anything else must match exactly.
        """
        path = pretrained_checkpoint_path(self.init_cfg)
        if path is None:
            super().init_weights()
            return
        state = load_state_dict_file(path)
        state = {k: v for k, v in state.items() if not k.startswith('fc.')}
        if not _is_mmaction_naming(list(state)):
            state = {
                torchvision_to_mmaction_resnet_key(k): v
                for k, v in state.items()
            }
        check_state_dict_keys(self, state, path)
        self.load_state_dict(state, strict=False)
        self._is_init = True

    def train(self, mode: bool = True) -> 'RegionResNet':
        """Keep the frozen backbone in eval mode whatever ``mode`` is.

        Args:
            mode (bool): Ignored. Defaults to True.

        Returns:
            RegionResNet: self.
        """
        return nn.Module.train(self, False)

    def _forward_chunk(self, x: torch.Tensor) -> torch.Tensor:
        stages: Tuple[torch.Tensor, ...] = ResNet.forward(self, x)
        return region_pooling(stages, self.kernel_sizes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Extract region vectors of every frame.

        Args:
            x (torch.Tensor): Normalised frames ``[T, 3, H, W]`` or
                ``[N, T, 3, H, W]`` (``H = W = 224`` in the method).

        Returns:
            torch.Tensor: L2-normalised region vectors ``[T, R, C]`` (or
            ``[N, T, R, C]``), ``R = 9`` and ``C = 3840`` for ResNet-50 at
            224 x 224.
        """
        if x.dim() not in (4, 5) or x.shape[-3] != self.in_channels:
            raise ValueError(
                f'RegionResNet expects frames [T, {self.in_channels}, H, W] '
                f'or [N, T, {self.in_channels}, H, W], got {tuple(x.shape)}')
        lead = x.shape[:-3]
        frames = x.reshape(-1, *x.shape[-3:])
        chunk = self.frame_chunk or max(frames.shape[0], 1)
        with torch.no_grad():
            outs = [
                self._forward_chunk(frames[i:i + chunk])
                for i in range(0, frames.shape[0], chunk)
            ]
        if not outs:
            raise ValueError(f'RegionResNet got no frames: {tuple(x.shape)}')
        out = torch.cat(outs, dim=0)
        return out.reshape(*lead, *out.shape[1:])
