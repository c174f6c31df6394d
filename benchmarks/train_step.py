"""Time and memory of one full HAP-VR training step on CPU.

One step = similarity network forward on all ``N x N`` pairs of a batch of
random unit region features ``[N, T, 9, 512]``, the five losses with the
the paper weights (``L_nce + 6 L_frame + 4 L_AP + 3 (L_hn + L_self) + L_reg``),
backward.

* ``ours``: ``HAPVR.loss`` (blockwise symmetric TopK-Chamfer with ``uint8``
  winner indices, lean comparator, frame loss on the relevant pairs only),
  with the head options given on the command line.
* ``baseline``: the direct formulation: one region-level einsum over every
  pair (``frame_similarity_dense``), the comparator written layer by layer
  (ReLU then pool), and the all-pairs frame loss of
  ``benchmarks/frame_ap_loss.py`` (pseudo labels of all pairs).

Each measurement runs in a fresh interpreter: wall time and CPU time
(``time.process_time``, all threads) of the step and the extra peak
resident memory over the resident memory once model and inputs exist. Runs
of ours and of the baseline alternate; medians are reported, with the loss
difference and the largest parameter-gradient difference, each float32
method against the direct formulation in float64 (``reference``), and ours
in float64 against it (the formulation itself, without float32 rounding).
On a shared machine the CPU time is the steadier figure. With two threads
and other processes on the cores, OpenMP's default spinning at every
barrier while the other thread is descheduled costs ours (many small
operations) up to 10x and the baseline (a few large ones) little:
``--omp-passive`` sets ``OMP_WAIT_POLICY=PASSIVE`` for every measurement.

Example::

    python benchmarks/train_step.py --sizes 64x16 128x28
    python benchmarks/train_step.py --sizes 64x16 --chunks 4 8 16 --recompute
    python benchmarks/train_step.py --sizes 64x16 --rounds 5 --threads 1
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from common import PeakRSS, load_average, median, timed

WEIGHTS = dict(nce=1.0, frame=6.0, video_ap=4.0, hn=3.0, self=3.0, reg=1.0)


def build_hapvr(**head_options):
    """HAPVR on pre-extracted features with the losses of docs/method.md.

    Args:
        **head_options: ``SimilarityHead`` arguments over the defaults.
    """
    from mmaction.registry import MODELS

    import hapvr_mm  # noqa: F401  (registers modules, compat fixes)
    head = dict(type='SimilarityHead', dims=512, **head_options)
    losses = dict(
        loss_nce=dict(
            type='InfoNCELoss', temperature=0.03, loss_weight=WEIGHTS['nce']),
        loss_frame_ap=dict(
            type='FrameQuadLinearAPLoss',
            sigma=0.05,
            rho=5.0,
            loss_weight=WEIGHTS['frame']),
        loss_video_ap=dict(
            type='QuadLinearAPLoss',
            sigma=0.05,
            rho=0.1,
            loss_weight=WEIGHTS['video_ap']),
        loss_hard_negative=dict(
            type='HardNegativeLoss', eps=1e-3, loss_weight=WEIGHTS['hn']),
        loss_self=dict(
            type='SelfSimilarityLoss', eps=1e-3, loss_weight=WEIGHTS['self']),
        loss_reg=dict(
            type='SimilarityRegularizationLoss', loss_weight=WEIGHTS['reg']))
    cfg = dict(
        type='HAPVR',
        head=head,
        losses=losses,
        pseudo_labeler=dict(
            type='FramePseudoLabeler', top_rate=0.35, bottom_rate=0.35))
    return MODELS.build(cfg)


def build_model(args: argparse.Namespace):
    """:func:`build_hapvr` with the head options of the command line."""
    head = dict(chunk_size=args.chunk or None, recompute=args.recompute)
    if args.comparator_chunk >= 0:
        head['comparator_chunk'] = args.comparator_chunk or None
    if args.comparator_keep_budget >= 0:
        head['comparator_keep_budget'] = args.comparator_keep_budget
    return build_hapvr(**head)


def make_inputs(n: int, t: int, seed: int = 0):
    """Random unit features, relevance (identity + partner), teacher."""
    import torch
    import torch.nn.functional as F
    gen = torch.Generator().manual_seed(seed)
    feats = F.normalize(torch.randn(n, t, 9, 512, generator=gen), dim=-1)
    emb = torch.randn(n, t, 384, generator=gen)
    rel = torch.eye(n)
    half = n // 2
    idx = torch.arange(half)
    rel[idx, idx + half] = 1
    rel[idx + half, idx] = 1
    return feats, rel, emb


def direct_comparator(comp, maps):
    """The comparator exactly as docs/method.md lists it (unmasked batch)."""
    import torch.nn.functional as F
    x = maps.unsqueeze(1)
    x = F.max_pool2d(F.relu(comp.conv1(x)), 2)
    x = F.max_pool2d(F.relu(comp.conv2(x)), 2)
    x = F.relu(comp.conv3(x))
    return comp.fconv(x).squeeze(1)


def baseline_step(model, feats, rel, emb):
    """Direct formulation of the step; returns the total loss."""
    import torch.nn.functional as F
    from frame_ap_loss import baseline_loss

    from hapvr_mm.models.similarity.chamfer import (aggregate,
                                                    frame_similarity_dense)
    head = model.head
    x = head.index(feats)
    n, t = x.shape[:2]
    fsim = frame_similarity_dense(x, x, head.f2f_mode, head.f2f_topk_rate)
    raw = direct_comparator(head.comparator, fsim.reshape(n * n, t, t))
    sim = aggregate(
        F.hardtanh(raw) / 2 + 0.5, head.v2v_mode,
        head.v2v_topk_rate).view(n, n)
    loss = model.losses
    total = (
        loss['loss_nce'](sim, rel) + loss['loss_video_ap'](sim, rel) +
        loss['loss_hard_negative'](sim, rel) + loss['loss_self'](sim) +
        loss['loss_reg'](raw.view(n, n, *raw.shape[-2:]), None))
    pos, neg = model.pseudo_labeler(emb.float())
    lf = loss['loss_frame_ap']
    total = total + lf.loss_weight * baseline_loss(fsim, pos, neg, rel,
                                                   lf.sigma, lf.rho)
    return total


def worker(args: argparse.Namespace) -> None:
    """Run one measurement in this process and print a JSON line."""
    import torch
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_model(args)
    feats, rel, emb = make_inputs(args.n, args.frames)
    if args.worker in ('reference', 'ours64'):
        # float64: the direct formulation gives the exact values that both
        # float32 methods approximate; ours in float64 must give the same
        model = model.double()
        feats, rel, emb = feats.double(), rel.double(), emb.double()

    def step():
        model.zero_grad(set_to_none=True)
        if args.worker in ('baseline', 'reference'):
            loss = baseline_step(model, feats, rel, emb)
        else:
            losses = model.loss(feats, rel, None, emb)
            loss = sum(losses.values())
        loss.backward()
        return loss.detach()

    with PeakRSS() as peak:
        cpu = time.process_time()
        first, value = timed(step)
        cpu_times = [time.process_time() - cpu]
    if args.save:
        torch.save(
            {
                'value': value,
                'grads': {
                    k: None if p.grad is None else p.grad.double()
                    for k, p in model.named_parameters()
                }
            }, args.save)
    times = [first]
    for _ in range(args.repeats - 1):
        cpu = time.process_time()
        times.append(timed(step)[0])
        cpu_times.append(time.process_time() - cpu)
    print(
        json.dumps({
            'times': times,
            'cpu_times': cpu_times,
            'extra_peak_mb': peak.extra_mb,
            'peak_reset': peak.reset
        }))


def measure(method: str, n: int, t: int, args: argparse.Namespace, save: str,
            chunk: int) -> Dict:
    """Run :func:`worker` in a fresh interpreter."""
    cmd = [
        sys.executable,
        os.path.abspath(__file__), '--worker', method, '--n',
        str(n), '--frames',
        str(t), '--repeats',
        str(args.repeats), '--threads',
        str(args.threads), '--save', save, '--chunk',
        str(chunk), '--comparator-chunk',
        str(args.comparator_chunk), '--comparator-keep-budget',
        str(args.comparator_keep_budget)
    ]
    if args.recompute:
        cmd.append('--recompute')
    env = dict(os.environ)
    if args.omp_passive:
        env['OMP_WAIT_POLICY'] = 'PASSIVE'
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        return {'error': proc.stderr[-2000:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def compare(path_a: str, path_b: str):
    """|loss difference| and max |parameter-gradient difference|."""
    import torch
    a, b = torch.load(path_a), torch.load(path_b)
    dv = float((a['value'].double() - b['value'].double()).abs())
    keys = [k for k in a['grads'] if a['grads'][k] is not None]
    dg = max(float((a['grads'][k] - b['grads'][k]).abs().max()) for k in keys)
    # relative to the largest gradient entry of the same parameter
    rel = max(
        float((a['grads'][k] - b['grads'][k]).abs().max() /
              b['grads'][k].abs().max().clamp(min=1e-30)) for k in keys)
    return dv, dg, rel


def main(argv: List[str] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--sizes',
        nargs='+',
        default=['64x16', '128x28'],
        help='NxT batch shapes')
    parser.add_argument(
        '--skip-baseline-above',
        type=int,
        default=64,
        help='run the baseline only for N <= this')
    parser.add_argument(
        '--rounds',
        type=int,
        default=2,
        help='alternating subprocess rounds per method')
    parser.add_argument(
        '--repeats',
        type=int,
        default=2,
        help='steps per subprocess (first one measures '
        'memory)')
    parser.add_argument(
        '--threads', type=int, default=0, help='torch threads (0: default)')
    parser.add_argument(
        '--chunks',
        type=int,
        nargs='+',
        default=[0],
        help='head chunk_size values to try (0: automatic)')
    parser.add_argument(
        '--recompute',
        action='store_true',
        help='head recompute=True (checkpoint region '
        'blocks)')
    parser.add_argument(
        '--comparator-chunk',
        type=int,
        default=-1,
        help='head comparator_chunk (0: None, -1: the '
        'head default)')
    parser.add_argument(
        '--comparator-keep-budget',
        type=int,
        default=-1,
        help='head comparator_keep_budget in bytes (0: always '
        'checkpoint, -1: the head default)')
    parser.add_argument(
        '--omp-passive',
        action='store_true',
        help='OMP_WAIT_POLICY=PASSIVE in every measurement (all methods): '
        'OpenMP threads sleep at once at a barrier instead of spinning, '
        'which a machine shared with other jobs needs')
    parser.add_argument(
        '--no-reference',
        action='store_true',
        help='skip the float64 reference of the gradient '
        'check')
    parser.add_argument(
        '--worker',
        choices=['ours', 'baseline', 'reference', 'ours64'],
        help=argparse.SUPPRESS)
    parser.add_argument('--n', type=int, help=argparse.SUPPRESS)
    parser.add_argument('--frames', type=int, help=argparse.SUPPRESS)
    parser.add_argument('--chunk', type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument('--save', default='', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads <= 0:
        import torch
        args.threads = torch.get_num_threads()
    if args.worker:
        worker(args)
        return

    import torch
    print(f'HAP-VR training step (forward all pairs, 5 losses, backward), '
          f'CPU, torch {torch.__version__}, threads={args.threads}, '
          f'float32, R=9, D=512, recompute={args.recompute}, '
          f'comparator_chunk={args.comparator_chunk} (-1: head default), '
          f'OMP_WAIT_POLICY={"PASSIVE" if args.omp_passive else "default"}'
          f', load average at start: {load_average()}')
    print(f'{"N x T":>7} {"method":<17} {"median (s)":>10} '
          f'{"CPU (s)":>8} {"runs":>4} {"extra peak RSS (MB)":>20}')
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            n, t = map(int, size.lower().split('x'))
            methods = [f'ours:{c}' for c in args.chunks]
            if n <= args.skip_baseline_above:
                methods.append('baseline')
            res = {m: {'times': [], 'cpu': [], 'peaks': []} for m in methods}
            for rnd in range(args.rounds):
                for m in methods:
                    name, _, chunk = m.partition(':')
                    save = os.path.join(tmp, f'{m}_{size}.pt')
                    out = measure(name, n, t, args, save if rnd == 0 else '',
                                  int(chunk or 0))
                    if 'error' in out:
                        res[m]['error'] = out['error']
                        continue
                    res[m]['times'] += out['times']
                    res[m]['cpu'] += out['cpu_times']
                    res[m]['peaks'].append(out['extra_peak_mb'])
                    res[m]['save'] = save
            for m in methods:
                r = res[m]
                label = (
                    'ours (chunk ' +
                    (m.split(':')[1] if m.split(':')[1] != '0' else 'auto') +
                    ')' if m.startswith('ours') else m)
                if 'error' in r and not r['times']:
                    print(f'{size:>7} {label:<17} FAILED: {r["error"]}')
                    continue
                r['t'], r['mem'] = median(r['times']), median(r['peaks'])
                r['c'] = median(r['cpu'])
                print(f'{size:>7} {label:<17} {r["t"]:>10.3f} '
                      f'{r["c"]:>8.3f} {len(r["times"]):>4} '
                      f'{r["mem"]:>20.1f}')
            base = res.get('baseline')
            ref = None
            if base and 'save' in base and not args.no_reference:
                ref = os.path.join(tmp, f'reference_{size}.pt')
                out = measure('reference', n, t, args, ref, 0)
                if 'error' in out:
                    print(f'{size:>7} float64 reference FAILED: '
                          f'{out["error"]}')
                    ref = None
            exact = None
            if ref:
                exact = os.path.join(tmp, f'ours64_{size}.pt')
                out = measure('ours64', n, t, args, exact, 0)
                if 'error' in out:
                    print(f'{size:>7} ours in float64 FAILED: '
                          f'{out["error"]}')
                    exact = None
            for m in methods:
                if m == 'baseline' or not base or 't' not in base or \
                        't' not in res[m]:
                    continue
                dv, dg, rel = compare(res[m]['save'], base['save'])
                print(f'{size:>7} {m} vs baseline: |loss diff| = {dv:.2e}, '
                      f'max |grad diff| = {dg:.2e} (relative to the '
                      f'parameter\'s max |grad|: {rel:.2e}), time ratio = '
                      f'{res[m]["t"] / base["t"]:.2f} (CPU time: '
                      f'{res[m]["c"] / base["c"]:.2f}), memory ratio = '
                      f'{res[m]["mem"] / base["mem"]:.2f}')
                if ref:
                    # float32 rounding of each method against the exact
                    # (float64) direct formulation
                    for name, path in ((m, res[m]['save']), ('baseline',
                                                             base['save'])):
                        dv, dg, rel = compare(path, ref)
                        print(f'{size:>7} {name} (float32) vs float64 '
                              f'reference: |loss diff| = {dv:.2e}, max '
                              f'|grad diff| = {dg:.2e} (relative: '
                              f'{rel:.2e})')
                if exact:
                    # the formulation itself: ours and the direct one, both
                    # in float64
                    dv, dg, rel = compare(exact, ref)
                    print(f'{size:>7} ours (float64) vs float64 reference: '
                          f'|loss diff| = {dv:.2e}, max |grad diff| = '
                          f'{dg:.2e} (relative: {rel:.2e})')
    print(f'load average at end: {load_average()}')


if __name__ == '__main__':
    main()
