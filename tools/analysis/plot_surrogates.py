"""Draw the quad-linear surrogate of HAP-VR next to Smooth-AP's sigmoid.

Examples:
    # docs/images/surrogates.png (the figure of docs/method.md section 4)
    python tools/analysis/plot_surrogates.py
    python tools/analysis/plot_surrogates.py --sigma 0.1 --out g.png

Two panels over the score difference ``x = s_k - s_j`` (a negative ``k``
minus a positive ``j``; ``x > 0`` means the pair is mis-ranked): the value
of the Heaviside step ``H``, of the sigmoid ``sigmoid(x / tau)`` (Smooth-AP)
and of the quad-linear ``g_sigma`` (:func:`hapvr_mm.models.losses.quadlinear`),
and their gradients computed by autograd. See docs/method.md section 4.
"""
import argparse
import os
import os.path as osp
import sys
from typing import Dict, List, Optional, Tuple

sys.path.insert(0,
                osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import matplotlib

matplotlib.use('Agg')

import matplotlib.pyplot as plt
import torch
from torch import Tensor

from hapvr_mm.models.losses.functional import quadlinear

DEFAULT_OUT = osp.join('docs', 'images', 'surrogates.png')


def surrogate_curves(x: Tensor,
                     sigma: float = 0.05,
                     tau: float = 0.01) -> Dict[str, Tuple[Tensor, Tensor]]:
    """Values and autograd gradients of the three step functions.

    Args:
        x (Tensor): ``[M]`` floating point score differences.
        sigma (float): margin of the quad-linear surrogate. Defaults to 0.05.
        tau (float): temperature of the sigmoid. Defaults to 0.01.

    Returns:
        dict[str, tuple[Tensor, Tensor]]: ``{'heaviside', 'sigmoid',
        'quadlinear'}`` to ``(value [M], gradient [M])``, detached. The
        step's gradient is 0 everywhere except at 0, where it is undefined.
    """
    if x.dim() != 1 or not x.is_floating_point():
        raise ValueError('expected a 1-D floating point tensor x, received '
                         f'{list(x.shape)} {x.dtype}')
    if not tau > 0:
        raise ValueError(f'expected tau > 0, received {tau}')
    functions = {
        'heaviside': lambda v: (v > 0).to(v.dtype) + 0 * v,
        'sigmoid': lambda v: torch.sigmoid(v / tau),
        'quadlinear': lambda v: quadlinear(v, sigma),
    }
    curves = {}
    for name, fn in functions.items():
        xg = x.detach().clone().requires_grad_()
        value = fn(xg)
        grad, = torch.autograd.grad(value.sum(), xg)
        curves[name] = (value.detach(), grad.detach())
    return curves


def plot_surrogates(out: str,
                    sigma: float = 0.05,
                    tau: float = 0.01,
                    x_max: float = 0.3,
                    dpi: int = 100) -> str:
    """Draw the value and gradient panels and save them as a PNG.

    Args:
        out (str): path of the PNG (its folder is created).
        sigma (float): margin of the quad-linear surrogate. Defaults to 0.05.
        tau (float): temperature of the sigmoid. Defaults to 0.01.
        x_max (float): the x axis spans ``[-x_max, x_max]``. Defaults to 0.3.
        dpi (int): resolution. Defaults to 100.

    Returns:
        str: ``out``.
    """
    if not x_max > 0:
        raise ValueError(f'expected x_max > 0, received {x_max}')
    x = torch.linspace(-x_max, x_max, 2001, dtype=torch.float64)
    curves = surrogate_curves(x, sigma, tau)
    styles = {
        'heaviside':
        dict(label='step H(x)', color='black', ls='--'),
        'sigmoid':
        dict(label=f'sigmoid(x / {tau:g}) (Smooth-AP)', color='tab:blue'),
        'quadlinear':
        dict(label=f'quad-linear g (sigma = {sigma:g})', color='tab:red'),
    }
    fig, (ax_v, ax_g) = plt.subplots(1, 2, figsize=(10, 3.6))
    for name, (value, grad) in curves.items():
        ax_v.plot(x.numpy(), value.numpy(), lw=1.6, **styles[name])
        ax_g.plot(x.numpy(), grad.numpy(), lw=1.6, **styles[name])
    ax_v.set_ylim(-0.2, 4.0)
    ax_v.set_title('value (g keeps growing with slope 2 / sigma)')
    ax_g.set_title('gradient (autograd)')
    ax_g.axhline(2 / sigma, color='tab:red', lw=0.6, ls=':')
    for ax in (ax_v, ax_g):
        ax.axvline(-sigma, color='grey', lw=0.6, ls=':')
        ax.axvline(0, color='grey', lw=0.6)
        ax.set_xlim(-x_max, x_max)
        ax.set_xlabel('x = s(negative) - s(positive)')
        ax.grid(alpha=0.3)
    ax_v.legend(loc='upper left', fontsize=8)
    fig.tight_layout()
    folder = osp.dirname(out)
    if folder:
        os.makedirs(folder, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    return out


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Command-line options.

    Args:
        argv (list[str], optional): arguments; None reads ``sys.argv``.

    Returns:
        argparse.Namespace: the options.
    """
    parser = argparse.ArgumentParser(
        description='Plot the quad-linear AP surrogate, the sigmoid and the '
        'step function with their gradients.')
    parser.add_argument(
        '--out', default=DEFAULT_OUT, help=f'PNG path (default {DEFAULT_OUT})')
    parser.add_argument(
        '--sigma', type=float, default=0.05, help='quad-linear margin')
    parser.add_argument(
        '--tau', type=float, default=0.01, help='sigmoid temperature')
    parser.add_argument(
        '--x-max', type=float, default=0.3, help='x axis half width')
    parser.add_argument('--dpi', type=int, default=100, help='resolution')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> str:
    """Run the tool.

    Args:
        argv (list[str], optional): arguments; None reads ``sys.argv``.

    Returns:
        str: the path of the written PNG.
    """
    args = parse_args(argv)
    out = plot_surrogates(args.out, args.sigma, args.tau, args.x_max, args.dpi)
    print(f'wrote {out}')
    return out


if __name__ == '__main__':
    main()
