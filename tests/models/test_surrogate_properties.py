"""Properties of the quad-linear surrogate ``g_sigma`` (docs/method.md s. 4).

``g`` is an upper bound of the step function, non-decreasing, continuous,
convex and continuously differentiable, and its gradient stays at
``2 / sigma`` for every mis-ranked pair (``x > 0``), where the gradient of
Smooth-AP's sigmoid has vanished. Also: tools/analysis/plot_surrogates.py
draws the figure of docs/method.md.
"""
import importlib.util
import os.path as osp

import pytest
import torch

from hapvr_mm.models.losses.functional import quadlinear

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SIGMA = 0.05
TAU = 0.01
DTYPE = torch.float64


def _grid(lo=-1.0, hi=1.0, n=200001):
    """A dense grid that holds -sigma and 0 exactly, plus far values."""
    x = torch.linspace(lo, hi, n, dtype=DTYPE)
    extra = torch.tensor([-SIGMA, 0.0, -1e3, -1e6, 1e3, 1e6], dtype=DTYPE)
    return torch.cat([x, extra]).sort().values


def _grad(fn, x):
    x = x.detach().clone().requires_grad_()
    grad, = torch.autograd.grad(fn(x).sum(), x)
    return grad


def g(x):
    return quadlinear(x, SIGMA)


@pytest.mark.parametrize('sigma', [SIGMA, 0.01, 0.5])
def test_upper_bound_of_the_step(sigma):
    x = _grid()
    value = quadlinear(x, sigma)
    step = (x > 0).to(DTYPE)
    assert bool((value >= step).all())
    # at 0 the bound holds for any convention of H(0) (0, 1/2 or 1)
    assert quadlinear(torch.zeros(1, dtype=DTYPE), sigma).item() == 1.0
    assert bool((value >= 0).all())


def test_exact_values():
    x = torch.tensor([-1.0, -SIGMA, -SIGMA / 2, 0.0, SIGMA, 0.3], dtype=DTYPE)
    expected = torch.tensor([0.0, 0.0, 0.25, 1.0, 3.0, 13.0], dtype=DTYPE)
    torch.testing.assert_close(g(x), expected, atol=1e-12, rtol=0)


def test_non_decreasing():
    x = _grid()
    value = g(x)
    assert bool((value[1:] - value[:-1] >= 0).all())
    assert bool((_grad(g, x) >= 0).all())


@pytest.mark.parametrize('point', [-SIGMA, 0.0])
def test_continuous_value_and_gradient(point):
    for eps in (1e-6, 1e-9, 1e-12):
        left = torch.tensor([point - eps], dtype=DTYPE)
        right = torch.tensor([point + eps], dtype=DTYPE)
        here = torch.tensor([point], dtype=DTYPE)
        # value: the gap shrinks with eps at most at the steepest slope
        # 2 / sigma (a jump would leave a gap that does not shrink)
        lipschitz = 2 / SIGMA
        assert abs(g(left) - g(right)).item() <= lipschitz * 2 * eps + 1e-12
        assert abs(g(here) - g(left)).item() <= lipschitz * eps + 1e-12
        # gradient: left and right limits agree (g is C1, |g''| <= 2/s^2)
        grad_l, grad_r, grad_0 = (
            _grad(g, t).item() for t in (left, right, here))
        assert abs(grad_l - grad_r) <= 4 * eps / SIGMA**2 + 1e-9
        assert abs(grad_0 - grad_l) <= 2 * eps / SIGMA**2 + 1e-9


def test_convex_second_differences():
    x = torch.linspace(-0.3, 0.3, 60001, dtype=DTYPE)
    value = g(x)
    second = value[2:] - 2 * value[1:-1] + value[:-2]
    assert bool((second >= -1e-12).all())
    # strictly curved on (-sigma, 0), straight elsewhere
    inner = (x[1:-1] > -SIGMA + 1e-4) & (x[1:-1] < -1e-4)
    assert bool((second[inner] > 0).all())


def test_convex_midpoint_on_random_pairs():
    gen = torch.Generator().manual_seed(0)
    a = (torch.rand(100000, generator=gen, dtype=DTYPE) - 0.5) * 0.4
    b = (torch.rand(100000, generator=gen, dtype=DTYPE) - 0.5) * 0.4
    lam = torch.rand(100000, generator=gen, dtype=DTYPE)
    mix = g(lam * a + (1 - lam) * b)
    chord = lam * g(a) + (1 - lam) * g(b)
    assert bool((mix <= chord + 1e-12).all())
    assert bool((g((a + b) / 2) <= (g(a) + g(b)) / 2 + 1e-12).all())


def test_autograd_gradient_matches_finite_differences():
    gen = torch.Generator().manual_seed(1)
    x = ((torch.rand(64, generator=gen, dtype=DTYPE) - 0.5) *
         0.3).requires_grad_()
    assert torch.autograd.gradcheck(g, (x, ))
    grad = _grad(g, x)
    expected = (x.detach() / SIGMA + 1).clamp(0, 1) * 2 / SIGMA
    torch.testing.assert_close(grad, expected, atol=1e-12, rtol=0)


def test_gradient_does_not_vanish_for_mis_ranked_pairs():
    x = torch.linspace(0.1, 1.0, 1001, dtype=DTYPE)
    grad_g = _grad(g, x)
    torch.testing.assert_close(
        grad_g, torch.full_like(x, 2 / SIGMA), atol=1e-12, rtol=0)

    def sigmoid(v):
        return torch.sigmoid(v / TAU)

    sigmoid_max = _grad(sigmoid, torch.zeros(1, dtype=DTYPE)).item()
    assert sigmoid_max == pytest.approx(1 / (4 * TAU))
    # Smooth-AP's gradient has vanished there: below 1e-3 of its peak
    assert bool((_grad(sigmoid, x) < 1e-3 * sigmoid_max).all())
    # and below -sigma (well ranked by the margin) g gives no gradient
    below = torch.linspace(-1.0, -SIGMA, 1001, dtype=DTYPE)
    assert not _grad(g, below).any()


def _plot_tool():
    path = osp.join(ROOT, 'tools', 'analysis', 'plot_surrogates.py')
    spec = importlib.util.spec_from_file_location('plot_surrogates', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_plot_script_writes_a_png(tmp_path):
    pytest.importorskip('matplotlib')
    tool = _plot_tool()
    out = tmp_path / 'sub' / 'surrogates.png'
    assert tool.main(['--out', str(out), '--dpi', '40']) == str(out)
    data = out.read_bytes()
    assert data[:8] == b'\x89PNG\r\n\x1a\n' and len(data) > 1000
    # the curves it draws are those of the library
    x = torch.linspace(-0.3, 0.3, 101, dtype=DTYPE)
    curves = tool.surrogate_curves(x, SIGMA, TAU)
    assert set(curves) == {'heaviside', 'sigmoid', 'quadlinear'}
    torch.testing.assert_close(curves['quadlinear'][0], g(x))
    torch.testing.assert_close(curves['quadlinear'][1], _grad(g, x))
    assert not curves['heaviside'][1].any()


def test_committed_figure_exists():
    path = osp.join(ROOT, 'docs', 'images', 'surrogates.png')
    with open(path, 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
