"""Loading local weight files into frozen encoders, strictly.

Pretrained weights reach a module through its ``init_cfg``. mmengine's own
``Pretrained`` initializer loads non-strictly (a wrong file silently leaves
random weights), so this module adds :class:`StrictPretrained`: the file is
read with ``torch.load(weights_only=True)``, unwrapped (``state_dict`` /
``model`` nesting, ``module.`` / ``backbone.`` prefixes), torchvision ResNet
key names are mapped to mmaction2's when the target is an mmaction2
``ResNet``, and every key must then match the module in name and shape::

    backbone=dict(type='ResNet', depth=50, out_indices=(0, 1, 2, 3),
                  init_cfg=dict(type='StrictPretrained',
                                checkpoint='checkpoints/resnet50.pth'))

See ``docs/weights.md``.
"""
import os.path as osp
import re
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model import BaseModule
from mmengine.registry import WEIGHT_INITIALIZERS

__all__ = [
    'StrictPretrained', 'load_state_dict_file', 'check_state_dict_keys',
    'torchvision_to_mmaction_resnet_key', 'pretrained_checkpoint_path',
    'PRETRAINED_TYPES'
]

#: init_cfg types that load a checkpoint file
PRETRAINED_TYPES = ('Pretrained', 'StrictPretrained')

_NESTING_KEYS = ('state_dict', 'model')
_PREFIXES = ('module.', 'backbone.')


def pretrained_checkpoint_path(init_cfg: Optional[Union[dict, List[dict]]]
                               ) -> Optional[str]:
    """Return the checkpoint of a ``Pretrained`` / ``StrictPretrained`` entry.

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
        if cfg.get('type') in PRETRAINED_TYPES:
            path = cfg.get('checkpoint')
            if not isinstance(path, str) or not path:
                raise ValueError(
                    f"init_cfg type={cfg.get('type')!r} needs a checkpoint "
                    f'path (str), got {path!r}')
            return path
    return None


def load_state_dict_file(path: str,
                         nesting_keys: Sequence[str] = _NESTING_KEYS,
                         prefixes: Sequence[str] = _PREFIXES
                         ) -> Dict[str, torch.Tensor]:
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


@WEIGHT_INITIALIZERS.register_module()
class StrictPretrained:
    """Initialise a module from a local checkpoint, every key checked.

    Registered in mmengine's root ``WEIGHT_INITIALIZERS`` (the registry
    mmengine's ``BaseModule.init_weights`` builds from), so it works in any
    default scope.

    Args:
        checkpoint (str): Local ``.pth`` file: a state dict, possibly nested
            under ``state_dict`` or ``model`` and with ``module.`` /
            ``backbone.`` prefixes.
        ignore_prefixes (Sequence[str]): Keys of the file starting with one
            of these are dropped before the check (a classifier, say).
            Defaults to ``('fc.',)``.
    """

    def __init__(self,
                 checkpoint: str,
                 ignore_prefixes: Sequence[str] = ('fc.', )) -> None:
        if not isinstance(checkpoint, str) or not checkpoint:
            raise ValueError("init_cfg type='StrictPretrained' needs a "
                             f'checkpoint path (str), got {checkpoint!r}')
        self.checkpoint = checkpoint
        self.ignore_prefixes = tuple(ignore_prefixes)

    def __call__(self, module: nn.Module) -> None:
        """Load the checkpoint into ``module`` (strict keys and shapes).

        Args:
            module (nn.Module): The module whose ``init_cfg`` this is.

        Raises:
            FileNotFoundError: The file does not exist.
            ValueError: The file cannot be read, or its keys or shapes do
                not match the module (all differences listed at once).
        """
        state = load_state_dict_file(self.checkpoint)
        state = {
            k: v
            for k, v in state.items() if not k.startswith(self.ignore_prefixes)
        }
        own = module.state_dict()
        if not any(k in own for k in state) and any(
                k.startswith('conv1.conv.') for k in own):
            # a torchvision ResNet file for an mmaction2 ResNet
            state = {
                torchvision_to_mmaction_resnet_key(k): v
                for k, v in state.items()
            }
        check_state_dict_keys(module, state, self.checkpoint)
        module.load_state_dict(state, strict=False)
        # mmengine applies non-'Pretrained' init_cfgs *before* the children's
        # own init_weights (e.g. ConvModule's Kaiming init), which would
        # overwrite what was just loaded: mark every sub-module initialised.
        for sub in module.modules():
            if isinstance(sub, BaseModule):
                sub._is_init = True
            else:
                sub.is_init = True
        print_log(
            f'{type(module).__name__}: loaded {len(state)} tensors from '
            f'{self.checkpoint}',
            logger='current')

    def _get_init_info(self) -> str:
        return f'{self.__class__.__name__}: load from {self.checkpoint}'
