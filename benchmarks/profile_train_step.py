"""Where the time of one HAP-VR training step goes (torch.profiler, CPU).

Runs the step of ``benchmarks/train_step.py`` (``HAPVR.loss`` on random unit
features ``[N, T, 9, 512]`` with the paper losses, then backward) once to
warm up, then under ``torch.profiler`` with a ``record_function`` range
around each part of the forward: region attention, the TopK-Chamfer frame
similarity, the comparator, the video aggregation (hardtanh + TopK-Chamfer
over time), the frame pseudo labels and each loss. Every backward node is
charged to the range whose forward created it (the profiler links the two
by the autograd sequence number), so each part gets a forward and a
backward time; the comparator's backward includes the recomputation of its
activations (activation checkpointing). Ops outside every range are
``other``.

Example::

    python benchmarks/profile_train_step.py --sizes 64x16 128x28
"""
import argparse
import functools
import os
import sys
import time
from collections import defaultdict
from typing import Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from common import load_average
from train_step import build_hapvr, make_inputs

BACKWARD_PREFIX = 'autograd::engine::evaluate_function: '


def _ranged(label: str, fn):
    """``fn`` wrapped in ``torch.profiler.record_function(label)``."""
    from torch.profiler import record_function

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with record_function(label):
            return fn(*args, **kwargs)

    return wrapper


def instrument(model) -> List[str]:
    """Wrap the parts of the step in profiler ranges; return their labels.

    The wrappers are instance attributes, so only this model is affected.
    """
    head = model.head
    parts = [(head, 'index', 'region attention'),
             (head, 'frame_similarity', 'frame similarity (TopK-Chamfer)'),
             (head, 'video_scores', 'video aggregation (hardtanh, top-k)'),
             (head.comparator, 'forward', 'comparator')]
    parts += [(loss, 'forward', name) for name, loss in model.losses.items()]
    labels = []
    for obj, attr, label in parts:
        if obj is None:
            continue
        setattr(obj, attr, _ranged(label, getattr(obj, attr)))
        labels.append(label)
    if model.pseudo_labeler is not None:
        # a plain callable (not a module): wrapped where the model calls it
        model.pseudo_labeler = _ranged('frame pseudo labels',
                                       model.pseudo_labeler)
        labels.append('frame pseudo labels')
    return labels


def _ancestors(event):
    parent = event.cpu_parent
    while parent is not None:
        yield parent
        parent = parent.cpu_parent


def attribute(events, labels: List[str]) -> Dict[str, List[float]]:
    """Forward and backward milliseconds per label (self times, summed).

    Args:
        events: ``profiler.events()`` of one or more steps.
        labels (list[str]): the range labels of :func:`instrument`.

    Returns:
        dict: ``label -> [forward ms, backward ms]``, plus ``'other'``.
    """
    wanted = set(labels)
    seq_label: Dict[int, Optional[str]] = {}
    in_backward = {}
    for ev in events:
        anc = list(_ancestors(ev))
        backward = ev.name.startswith(BACKWARD_PREFIX) or any(
            a.name.startswith(BACKWARD_PREFIX) for a in anc)
        in_backward[id(ev)] = backward
        if not backward and getattr(ev, 'sequence_nr', -1) >= 0:
            label = next((a.name for a in anc if a.name in wanted), None)
            # several events can carry one sequence number (the op and its
            # dispatch); the one inside a range names the owner
            if label or ev.sequence_nr not in seq_label:
                seq_label.setdefault(ev.sequence_nr, None)
                seq_label[ev.sequence_nr] = (
                    seq_label[ev.sequence_nr] or label)
    out: Dict[str, List[float]] = defaultdict(lambda: [0.0, 0.0])
    for ev in events:
        self_ms = ev.self_cpu_time_total / 1e3
        if not in_backward[id(ev)]:
            if ev.name in wanted:
                out[ev.name][0] += self_ms
                continue
            label = next((a.name for a in _ancestors(ev) if a.name in wanted),
                         'other')
            out[label][0] += self_ms
            continue
        # the outermost backward node above this op decides its owner
        node = ev if ev.name.startswith(BACKWARD_PREFIX) else None
        for a in _ancestors(ev):
            if a.name.startswith(BACKWARD_PREFIX):
                node = a
        label = seq_label.get(getattr(node, 'sequence_nr', -1)) or 'other'
        out[label][1] += self_ms
    return out


def profile_size(n: int, t: int, threads: int, steps: int) -> None:
    """Profile ``steps`` training steps of batch ``n x t``; print a table."""
    import torch
    from torch.profiler import ProfilerActivity, profile
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_hapvr()
    labels = instrument(model)
    feats, rel, emb = make_inputs(n, t)

    def step():
        model.zero_grad(set_to_none=True)
        losses = model.loss(feats, rel, None, emb)
        sum(losses.values()).backward()

    step()  # warm-up (allocator, oneDNN primitives)
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    wall = (time.perf_counter() - start) / steps
    table = attribute(prof.events(), labels)
    total = sum(f + b for f, b in table.values())
    rows: List[Tuple[str, float, float]] = [
        (label, table[label][0] / steps, table[label][1] / steps)
        for label in labels + ['other'] if label in table
    ]
    print(f'\nN x T = {n}x{t}: {steps} profiled step(s), wall {wall:.2f} s '
          f'per step under the profiler, load average {load_average()}')
    print(f'{"part":<38} {"forward (ms)":>12} {"backward (ms)":>13} '
          f'{"share":>6}')
    for label, fwd, bwd in sorted(rows, key=lambda r: -(r[1] + r[2])):
        share = (fwd + bwd) * steps / total if total else 0.0
        print(f'{label:<38} {fwd:>12.1f} {bwd:>13.1f} {share:>6.1%}')
    print(f'{"total (self CPU time)":<38} '
          f'{sum(r[1] for r in rows):>12.1f} '
          f'{sum(r[2] for r in rows):>13.1f}')


def main(argv: List[str] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--sizes', nargs='+', default=['64x16'], help='NxT batch shapes')
    parser.add_argument(
        '--threads', type=int, default=0, help='torch threads (0: default)')
    parser.add_argument(
        '--steps', type=int, default=1, help='profiled steps per size')
    args = parser.parse_args(argv)
    import torch
    threads = args.threads or torch.get_num_threads()
    print(f'HAP-VR training step profile, CPU, torch {torch.__version__}, '
          f'threads={threads}, float32, R=9, D=512, head defaults')
    for size in args.sizes:
        n, t = map(int, size.lower().split('x'))
        profile_size(n, t, threads, args.steps)


if __name__ == '__main__':
    main()
