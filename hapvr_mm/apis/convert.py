"""Convert checkpoints of the authors' public HAP-VR code to hapvr_mm.

The public code saves ``{'model': state_dict, 'args': argparse.Namespace,
...}`` where the state dict holds the similarity network only:
``attention.transform.{weight,bias}``, ``attention.context_vector.weight``
(``[1, D]``) and ``comparator_module.{conv1,conv2,conv3,fconv}.{weight,bias}``
(optionally behind a DDP ``module.`` prefix). This module maps them onto
``HAPVR``'s ``head.*`` names and turns ``args`` into a config snippet.
"""
import argparse
from typing import Any, Dict, Tuple

import torch

__all__ = [
    'load_official_checkpoint', 'convert_official_state_dict',
    'official_args_to_head_cfg', 'convert_official_checkpoint',
    'format_config_snippet'
]

_MODES = {
    'TopKChamfer': 'topk_chamfer',
    'Chamfer': 'chamfer',
    'Max': 'max',
    'Average': 'average'
}
_COMPARATOR = ('conv1', 'conv2', 'conv3', 'fconv')


def load_official_checkpoint(path: str) -> Dict[str, Any]:
    """Load an official checkpoint with weights-only unpickling.

    Only ``argparse.Namespace`` is allowed besides tensors and containers.

    Args:
        path (str): the ``.pth`` file.

    Returns:
        dict: the checkpoint.
    """
    with torch.serialization.safe_globals([argparse.Namespace]):
        ckpt = torch.load(path, map_location='cpu', weights_only=True)
    if not isinstance(ckpt, dict) or 'model' not in ckpt:
        keys = list(ckpt)[:10] if isinstance(ckpt, dict) else type(ckpt)
        raise ValueError(f'{path}: expected an official HAP-VR checkpoint, a '
                         f"dict with 'model' (and 'args'); got {keys}")
    return ckpt


def convert_official_state_dict(state: Dict[str, torch.Tensor]
                                ) -> Dict[str, torch.Tensor]:
    """Map the official similarity-network keys to ``HAPVR`` keys.

    Args:
        state (dict): the official ``model`` state dict.

    Returns:
        dict: ``head.*`` tensors for ``HAPVR.load_state_dict``.
    """
    state = {
        (k[len('module.'):] if k.startswith('module.') else k): v
        for k, v in state.items()
    }
    out: Dict[str, torch.Tensor] = {}
    used = set()
    if 'attention.transform.weight' in state:
        out['head.attention.proj.weight'] = state['attention.transform.weight']
        out['head.attention.proj.bias'] = state['attention.transform.bias']
        ctx = state['attention.context_vector.weight']
        out['head.attention.context'] = ctx.reshape(-1, 1)
        used |= {
            'attention.transform.weight', 'attention.transform.bias',
            'attention.context_vector.weight'
        }
    for name in _COMPARATOR:
        for part in ('weight', 'bias'):
            key = f'comparator_module.{name}.{part}'
            if key not in state:
                raise ValueError(f'official checkpoint lacks {key!r} (the '
                                 'video comparator); found keys: '
                                 f'{sorted(state)[:20]}')
            out[f'head.comparator.{name}.{part}'] = state[key]
            used.add(key)
    unknown = sorted(set(state) - used)
    if unknown:
        raise ValueError(
            'official checkpoint has keys hapvr_mm does not '
            f'implement (binarization/MLP/batch-norm?): {unknown}')
    return out


def official_args_to_head_cfg(args: Any) -> Dict[str, Any]:
    """``SimilarityHead`` settings from the official ``args`` Namespace.

    Args:
        args (Namespace | dict): the checkpoint's ``args``.

    Returns:
        dict: ``dims``, ``attention``, ``f2f_mode``, ``f2f_topk_rate``,
        ``v2v_mode``, ``v2v_topk_rate``, ``symmetric``.
    """
    a = vars(args) if isinstance(args, argparse.Namespace) else dict(args)
    if a.get('binarization'):
        raise ValueError('binarized similarity networks are not supported')
    cfg = dict(
        dims=int(a.get('dims', 512)),
        attention=bool(a.get('attention', True)),
        f2f_topk_rate=float(a.get('f_topk_rate', 0.1)),
        v2v_topk_rate=float(a.get('v_topk_rate', 0.03)),
        symmetric=bool(a.get('symmetric', False)))
    for src, dst in (('f2f_sim_module', 'f2f_mode'), ('v2v_sim_module',
                                                      'v2v_mode')):
        mode = a.get(src, 'TopKChamfer')
        if mode not in _MODES:
            raise ValueError(f'{src}={mode!r} is not one of {list(_MODES)}')
        cfg[dst] = _MODES[mode]
    return cfg


def format_config_snippet(head_cfg: Dict[str, Any]) -> str:
    """A config snippet that builds the matching head."""
    items = ',\n        '.join(f'{k}={v!r}' for k, v in head_cfg.items())
    return ('# similarity network of the converted official checkpoint\n'
            f'model = dict(\n    head=dict(\n        {items}))\n')


def convert_official_checkpoint(src: str,
                                dst: str) -> Tuple[Dict[str, Any], str]:
    """Convert ``src`` (official) into ``dst`` (an mmengine checkpoint).

    Args:
        src (str): official checkpoint path.
        dst (str): output path (``{'state_dict': ..., 'meta': ...}``).

    Returns:
        tuple: the head config and the config snippet text.
    """
    ckpt = load_official_checkpoint(src)
    state = convert_official_state_dict(ckpt['model'])
    head_cfg = official_args_to_head_cfg(ckpt.get('args', {}))
    if 'head.attention.proj.weight' in state:
        dims = state['head.attention.proj.weight'].shape[0]
        if dims != head_cfg['dims']:
            raise ValueError(f'args.dims={head_cfg["dims"]} but the attention '
                             f'weights are {dims}-d')
    elif head_cfg['attention']:
        raise ValueError('args.attention is True but the checkpoint has no '
                         'attention weights')
    meta = dict(converted_from=str(src), head_cfg=head_cfg)
    torch.save(dict(state_dict=state, meta=meta), dst)
    return head_cfg, format_config_snippet(head_cfg)
