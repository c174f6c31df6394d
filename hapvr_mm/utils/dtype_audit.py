"""Record the dtype every operation computes in, by stage of the model.

Used by ``benchmarks/fp16_audit.py`` (and ``benchmarks/gpu.py`` on a GPU)
to list which operations of a training step or an evaluation run in half
precision under autocast, and to check that the terms that must stay in
float32 (AP surrogates, pseudo-label top-k, similarity regularisation,
loss reductions) do.
"""
import os.path as osp
import sys
from collections import Counter
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

__all__ = ['DtypeRecorder', 'STAGES', 'stage_of']

#: (path fragment, stage) in the order they are tried, innermost frame
#: first; the first frame that matches any fragment names the stage
STAGES: Tuple[Tuple[str, str], ...] = (
    ('hapvr_mm/models/losses/', 'losses'),
    ('hapvr_mm/models/pseudo_labels.py', 'pseudo labels'),
    ('hapvr_mm/models/backbones/dino_vit.py', 'teacher'),
    ('hapvr_mm/engine/hooks/pseudo_label_hook.py', 'teacher'),
    ('hapvr_mm/models/heads/', 'head'),
    ('hapvr_mm/models/similarity/', 'head'),
    ('hapvr_mm/models/layers/region_attention.py', 'head'),
    ('hapvr_mm/models/layers/pca_whitening.py', 'neck'),
    ('hapvr_mm/models/necks/', 'neck'),
    ('mmaction/models/backbones/', 'backbone'),
    ('hapvr_mm/models/data_preprocessors/', 'preprocessor'),
    ('hapvr_mm/models/retrievers/', 'model'),
)

_LOW = (torch.float16, torch.bfloat16)


def stage_of(frame=None) -> str:
    """The model stage of the innermost matching Python frame.

    Args:
        frame: the frame to start from (default: the caller's).

    Returns:
        str: a stage of :data:`STAGES`, or ``'other'``.
    """
    frame = frame or sys._getframe(1)
    while frame is not None:
        path = frame.f_code.co_filename.replace(osp.sep, '/')
        for fragment, stage in STAGES:
            if fragment in path:
                return stage
        frame = frame.f_back
    return 'other'


class DtypeRecorder(TorchDispatchMode):
    """Count each operation's floating-point output dtype by stage.

    Operations run unchanged; outputs of integer or bool dtype are not
    counted. Backward operations have no Python frames of their own and are
    counted under ``'backward'`` (their dtypes follow the forward's).

    Attributes:
        counts (Counter): ``(stage, op, dtype) -> calls``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = func._schema.name.split('::')[-1]
        stage = stage_of(sys._getframe(1))
        if stage == 'other' and torch._C._current_graph_task_id() != -1:
            stage = 'backward'
        for x in tree_flatten(out)[0]:
            if isinstance(x, torch.Tensor) and x.is_floating_point():
                self.counts[(stage, name, x.dtype)] += 1
        return out

    def low_precision(self,
                      stages: Optional[Sequence[str]] = None
                      ) -> Dict[str, List[str]]:
        """Operations with a half-precision output, by stage.

        Args:
            stages (sequence[str], optional): only these stages.

        Returns:
            dict[str, list[str]]: stage -> sorted ``op (dtype) xN``.
        """
        out: Dict[str, List[str]] = {}
        for (stage, name, dtype), n in sorted(
                self.counts.items(), key=lambda kv: (kv[0][0], kv[0][1])):
            if dtype in _LOW and (stages is None or stage in stages):
                out.setdefault(stage,
                               []).append(f'{name} ({str(dtype)[6:]}) x{n}')
        return out

    def stage_dtypes(self) -> Dict[str, Counter]:
        """Per stage, how many floating-point outputs had each dtype."""
        out: Dict[str, Counter] = {}
        for (stage, _, dtype), n in self.counts.items():
            out.setdefault(stage, Counter())[str(dtype)[6:]] += n
        return out
