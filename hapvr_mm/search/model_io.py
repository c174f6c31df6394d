"""Build the model for search and turn video files into features.

The model is built as ``tools/extract_features.py`` and ``tools/test.py``
build it: from the config's ``model``, ``init_weights()`` (with a fixed
seed, so that an untrained model is the same in every process and every
run), then a full checkpoint on top when one is given.
"""
import hashlib
import json
import logging
import math
import os.path as osp
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from torch import Tensor, nn
from torch.utils.data import DataLoader

__all__ = [
    'build_search_model', 'model_fingerprint', 'decode_settings',
    'video_loader', 'extract_batch', 'config_to_json', 'config_from_json',
    'config_from_index', 'model_device'
]

#: decoding defaults of docs/method.md section 2 (used when the config has
#: no ``DecodeRetrievalVideo`` step)
DEFAULT_DECODE = dict(fps=1.0, short_side=256, crop=224, max_frames=None)


def _is_none(checkpoint: Optional[str]) -> bool:
    return checkpoint is None or str(checkpoint).lower() == 'none'


def build_search_model(cfg: Config,
                       checkpoint: Optional[str] = None,
                       device: Optional[str] = None,
                       seed: int = 0) -> nn.Module:
    """Build ``cfg.model`` in eval mode with its weights.

    Args:
        cfg (Config): a config with ``model``: any retriever (the
            ``BaseRetriever`` interface, docs/mixing.md), with a backbone to
            index videos.
        checkpoint (str, optional): full checkpoint; None or ``'none'`` keeps
            the initial (untrained) weights.
        device (str, optional): ``'cuda'`` or ``'cpu'``. Defaults to CUDA
            when available.
        seed (int): seed of the initial weights. Defaults to 0.

    Returns:
        nn.Module: the model on ``device``, in eval mode.

    Raises:
        TypeError: the model lacks the retrieval interface.
    """
    from mmaction.registry import MODELS
    from mmengine.registry import init_default_scope
    from mmengine.runner import load_checkpoint

    import hapvr_mm  # noqa: F401 - registers the modules
    from ..models.retrievers.base import SEARCH_METHODS, check_retriever
    init_default_scope(cfg.get('default_scope', 'mmaction'))
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)  # init_weights lists every parameter
    try:
        model = MODELS.build(cfg.model)
        model.init_weights()
    finally:
        torch.random.set_rng_state(state)
        logger.setLevel(level)
    if not _is_none(checkpoint):
        if not osp.isfile(checkpoint):
            raise FileNotFoundError(f'checkpoint {checkpoint} does not exist')
        load_checkpoint(
            model, checkpoint, map_location='cpu', logger='current')
    check_retriever(model, 'search')
    missing = [
        name
        for name in SEARCH_METHODS if not callable(getattr(model, name, None))
    ] + ([] if hasattr(type(model), 'feature_dims') else ['feature_dims'])
    if missing:
        raise TypeError(
            f'{type(model).__name__} cannot be searched: it has no '
            f'{", ".join(missing)} (subclass hapvr_mm.models.retrievers.'
            'BaseRetriever for their defaults, see docs/search.md)')
    dev = torch.device(
        device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    return model.to(dev).eval()


def model_fingerprint(model: nn.Module) -> str:
    """SHA-1 of the model's state dict (names, shapes and values).

    Two processes that built the same model from the same config and
    checkpoint get the same fingerprint; an index remembers it so that a
    search with another model is refused.
    """
    digest = hashlib.sha1()
    for name, value in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tuple(value.shape)).encode())
        digest.update(value.detach().cpu().contiguous().view(-1).view(
            torch.uint8).numpy().tobytes() if value.numel() else b'')
    return digest.hexdigest()


def decode_settings(cfg: Config, **overrides) -> Dict:
    """Frame decoding settings: the config's, then explicit overrides.

    The values come from the first ``DecodeRetrievalVideo`` step of
    ``test_dataloader.dataset.pipeline`` (so that an index sees the frames
    ``tools/test.py`` sees), else from docs/method.md section 2 (1 fps,
    short side 256, centre crop 224).

    Args:
        cfg (Config): the config.
        **overrides: ``fps``, ``short_side``, ``crop``, ``max_frames``; a
            None value keeps the config's.

    Returns:
        dict: ``fps``, ``short_side``, ``crop``, ``max_frames``.
    """
    out = dict(DEFAULT_DECODE)
    dataset = (cfg.get('test_dataloader') or {}).get('dataset') or {}
    for step in dataset.get('pipeline') or []:
        if isinstance(step, dict) and step.get('type') in (
                'DecodeRetrievalVideo', 'mmaction.DecodeRetrievalVideo'):
            out.update({k: step[k] for k in out if k in step})
            break
    out.update({k: v for k, v in overrides.items() if v is not None})
    return out


#: key marking a tuple in a config's JSON (JSON has lists only)
_TUPLE_KEY = '__tuple__'


def _to_json_value(value: Any, where: str) -> Any:
    """A config value as JSON data; tuples become ``{'__tuple__': [...]}``.

    Raises:
        TypeError: a value JSON cannot hold (named by its key path).
    """
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(f'config value {where} = {value!r} is not '
                            'finite; JSON cannot store it')
        return value
    if isinstance(value, Mapping):
        if set(value) == {_TUPLE_KEY}:
            raise TypeError(f'config key {where}.{_TUPLE_KEY} is reserved')
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f'config key {key!r} under {where} is a '
                                f'{type(key).__name__}; JSON keys are str')
            out[key] = _to_json_value(item, f'{where}.{key}')
        return out
    if isinstance(value, (list, tuple)):
        items = [
            _to_json_value(item, f'{where}[{i}]')
            for i, item in enumerate(value)
        ]
        return {_TUPLE_KEY: items} if isinstance(value, tuple) else items
    raise TypeError(f'config value {where} is a {type(value).__name__} '
                    f'({value!r}); an index stores its config as JSON data '
                    '(None, bool, int, float, str, list, tuple, dict)')


def _from_json_value(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {_TUPLE_KEY}:
            return tuple(_from_json_value(v) for v in value[_TUPLE_KEY])
        return {k: _from_json_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_json_value(v) for v in value]
    return value


def config_to_json(cfg: Config) -> str:
    """The resolved config as JSON text (what an index stores).

    The config is stored as data, so that reading an index never runs
    code: its resolved dict (``cfg.to_dict()``, bases merged, options
    applied) with tuples kept as ``{"__tuple__": [...]}``.

    Args:
        cfg (Config): the config.

    Returns:
        str: JSON text of the config dict.

    Raises:
        TypeError: a value JSON cannot hold (a class, a function, NaN...),
            named by its key path.
    """
    data = cfg.to_dict() if hasattr(cfg, 'to_dict') else dict(cfg)
    return json.dumps(
        _to_json_value(data, 'cfg'), sort_keys=True, allow_nan=False)


def config_from_json(text: str, source: str = 'index') -> Config:
    """Rebuild a config from :func:`config_to_json` text (no code runs).

    Args:
        text (str): JSON text.
        source (str): where the text comes from, for messages.

    Returns:
        Config: the config.

    Raises:
        ValueError: the text is not a JSON object.
    """
    try:
        data = json.loads(text)
    except (TypeError, ValueError) as err:
        raise ValueError(f'{source}: the stored config is not valid JSON '
                         f'({err})') from err
    if not isinstance(data, dict):
        raise ValueError(f'{source}: the stored config must be a JSON object,'
                         f' got {type(data).__name__}')
    return Config(_from_json_value(data))


def config_from_index(attrs: Mapping[str, Any], source: str) -> Config:
    """The config an index stores, read as data.

    Args:
        attrs (dict): the index's attributes.
        source (str): the index file, for messages.

    Returns:
        Config: the config of ``attrs['config_json']``.

    Raises:
        ValueError: an older index that stores its config as Python text
            (``config_text``, which would have to be executed) or no config
            at all; the message says how to rebuild the index or to pass
            ``--config``.
    """
    if attrs.get('config_json'):
        return config_from_json(attrs['config_json'], source)
    path = attrs.get('config')
    hint = (f' (it was made with {path})' if path and path != 'none' else '')
    if attrs.get('config_text'):
        raise ValueError(
            f'{source} stores its config as Python text (an older index); '
            'reading it would run that code, so it is not read. Pass '
            f'--config CONFIG (and --checkpoint) yourself{hint}, or rebuild '
            'the index: tools/extract_features.py CONFIG CHECKPOINT '
            f'--videos ... --out {source} (or --ids ... --index)')
    raise ValueError(f'{source} stores no config: pass --config CONFIG (and '
                     f'--checkpoint){hint}')


def video_loader(paths: Sequence[str],
                 settings: Dict,
                 batch_size: int = 1,
                 workers: int = 0) -> DataLoader:
    """Decode video files in worker processes, ``batch_size`` at a time.

    Args:
        paths (sequence[str]): video files (each is its own id).
        settings (dict): :func:`decode_settings`.
        batch_size (int): videos per batch. Defaults to 1.
        workers (int): decoding processes. Defaults to 0.

    Returns:
        DataLoader: batches ``dict(inputs=[uint8 [T, 3, H, W] or None],
        data_samples=[...])`` whose samples carry ``video_id`` (the path)
        and, for an unreadable video, ``skip_reason``.
    """
    from ..datasets.retrieval_dataset import (RetrievalDataset,
                                              retrieval_collate)
    from ..datasets.transforms.loading import DecodeRetrievalVideo
    from ..datasets.transforms.retrieval import PackRetrievalInputs
    dataset = RetrievalDataset(
        video_ids=list(paths),
        video_pattern='{id}',
        pipeline=[
            DecodeRetrievalVideo(
                fps=settings['fps'],
                max_frames=settings['max_frames'],
                short_side=settings['short_side'],
                crop=settings['crop']),
            PackRetrievalInputs()
        ])
    return DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=retrieval_collate)


def model_device(model: nn.Module) -> torch.device:
    """Device of a model's first parameter or buffer (CPU without any)."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device('cpu')


@torch.no_grad()
def extract_batch(
    model: nn.Module,
    frames: Sequence[Tensor],
    index: bool = True,
    data_samples: Optional[Sequence] = None
) -> List[Tuple[Tensor, Optional[Tensor]]]:
    """Features of several decoded videos.

    With ``index`` (a search index or query), the videos go through the
    retriever's own retrieval path, the one evaluation uses:
    ``model.test_step(dict(inputs=frames, data_samples=...))`` (data
    preprocessor, features, ``index_video``), and each video's descriptor
    is ``model.global_descriptor`` of its indexed features. Without
    ``index`` (plain feature files for ``feature_file`` configs) the raw
    features are ``model.extract_feat`` of the preprocessed frames, which
    the model indexes itself when it reads them back.

    Args:
        model (nn.Module): a retriever with a backbone.
        frames (sequence[Tensor]): uint8 ``[T_i, 3, H, W]`` per video.
        index (bool): return indexed features and the global descriptor;
            False returns the raw features and None.
        data_samples (sequence, optional): one data sample per video
            (``metainfo['video_id']``); made up when not given.

    Returns:
        list[tuple]: per video, ``([T_i, ..., D] features, [D] descriptor
        or None)``.
    """
    if not frames:
        return []
    if data_samples is None:
        from mmengine.structures import BaseDataElement
        data_samples = [
            BaseDataElement(metainfo=dict(video_id=str(i)))
            for i in range(len(frames))
        ]
    if len(data_samples) != len(frames):
        raise ValueError(f'{len(frames)} videos but {len(data_samples)} '
                         'data samples')
    if index:
        samples = model.test_step(
            dict(inputs=list(frames), data_samples=list(data_samples)))
        return [(s.features, model.global_descriptor(s.features))
                for s in samples]
    if not callable(getattr(model, 'extract_feat', None)):
        raise TypeError(f'{type(model).__name__} has no extract_feat: plain '
                        'feature files need raw frame features (write a '
                        'search index instead: --index)')
    device = model_device(model)
    lengths = [int(f.shape[0]) for f in frames]
    data = model.data_preprocessor(
        dict(inputs=[torch.cat(list(frames)).to(device)]), False)
    feats = model.extract_feat(data['inputs'][0])
    return [(part, None) for part in torch.split(feats, lengths)]
