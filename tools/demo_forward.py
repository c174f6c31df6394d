"""One forward/backward pass of the full HAP-VR model on random frames.

Builds the model of a config (default: the CPU demo config), a random
DINO teacher, one batch of random two-view clips, and prints every loss and
the gradient norm of the trainable similarity network. A smoke test of the
whole model that needs no data and no weight files.

Example:
    python tools/demo_forward.py --batch 2 --window 4
"""
import argparse
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import torch
from mmaction.registry import MODELS
from mmengine.config import Config
from mmengine.registry import init_default_scope

import hapvr_mm  # noqa: F401


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--config',
        default=osp.join(
            osp.dirname(osp.dirname(osp.abspath(__file__))), 'configs', 'demo',
            'hapvr_demo.py'))
    parser.add_argument('--batch', type=int, default=2, help='B')
    parser.add_argument('--window', type=int, default=4, help='W')
    parser.add_argument('--size', type=int, default=112, help='crop size')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    init_default_scope('mmaction')
    torch.manual_seed(args.seed)
    cfg = Config.fromfile(args.config)
    model = MODELS.build(cfg.model)
    model.init_weights()
    teacher_cfg = [
        h for h in cfg.custom_hooks if h['type'] == 'PseudoLabelHook'
    ][0]['teacher']
    teacher = MODELS.build(teacher_cfg).eval()
    model.set_teacher(teacher)
    clips = [
        torch.randint(
            0,
            256, (2, args.window, 3, args.size, args.size),
            dtype=torch.uint8) for _ in range(args.batch)
    ]
    start = time.time()
    data = model.data_preprocessor(dict(inputs=clips), training=True)
    losses = model(**data, mode='loss')
    total = sum(losses.values())
    total.backward()
    grad = torch.sqrt(
        sum(
            p.grad.pow(2).sum() for p in model.parameters()
            if p.grad is not None))
    n = data['inputs'].shape[0]
    print(f'HAP-VR forward/backward: N={n} views x W={args.window} frames '
          f'x {args.size}px, relevance pairs={int(data["relevance"].sum())}')
    for name, value in losses.items():
        print(f'  {name:20s} {float(value):.6f}')
    print(f'  {"total":20s} {float(total):.6f}')
    print(f'  grad norm            {float(grad):.6f}')
    print(f'  time                 {time.time() - start:.2f} s')


if __name__ == '__main__':
    # user errors end as one 'error: ...' line, exit status 2
    from _cli import run_tool
    run_tool(main, extra=(FileNotFoundError, ))
