import numpy as np
import pytest
import torch

import hapvr_mm  # noqa: F401
from hapvr_mm.models.layers.pca_whitening import PCAWhitening, pca_whiten


def correlated_features(m=400, c=16, seed=0):
    gen = torch.Generator().manual_seed(seed)
    mix = torch.randn(c, c, generator=gen, dtype=torch.float64)
    scales = torch.logspace(0, -2, c, dtype=torch.float64)
    z = torch.randn(m, c, generator=gen, dtype=torch.float64) * scales
    return z @ mix + 3.0


def test_fit_eigen_ordering_and_whitening():
    x = correlated_features()
    pca = PCAWhitening(dims=8, in_channels=16).fit(x)
    d = pca.eigenvalues
    assert d.shape == (8, )
    assert torch.all(d[:-1] >= d[1:])
    # kept eigenvalues are the largest of the covariance, in order
    xc = x - x.mean(0)
    cov = xc.T @ xc / x.shape[0]
    ref = torch.linalg.eigvalsh(cov).flip(0)[:8]
    torch.testing.assert_close(d.double(), ref, rtol=1e-4, atol=1e-6)
    # whitened training features (before the final normalise): identity cov
    proj = pca.eigenvectors.double() / torch.sqrt(d.double() + pca.eps)
    z = (x - pca.mean.double()) @ proj
    cov_z = z.T @ z / x.shape[0]
    torch.testing.assert_close(
        cov_z, torch.eye(8, dtype=torch.float64), rtol=0, atol=1e-4)
    out = pca(x.float())
    assert out.shape == (400, 8)
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(400))
    # forward is exactly normalize((x - mean) @ P)
    ref_out = z / z.norm(dim=-1, keepdim=True)
    torch.testing.assert_close(out.double(), ref_out, rtol=1e-4, atol=1e-5)


def test_pca_whiten_loop_transcription():
    torch.manual_seed(1)
    x = torch.randn(3, 5, 6, dtype=torch.float64)
    mean = torch.randn(6, dtype=torch.float64)
    d = torch.rand(4, dtype=torch.float64) + 0.1
    V = torch.randn(6, 4, dtype=torch.float64)
    out = pca_whiten(x, mean, d, V, eps=1e-7)
    for a in range(3):
        for b in range(5):
            y = torch.zeros(4, dtype=torch.float64)
            for k in range(4):
                for c in range(6):
                    y[k] += (x[a, b, c] - mean[c]) * V[c, k] / \
                        (d[k] + 1e-7) ** 0.5
            torch.testing.assert_close(out[a, b], y / y.norm())


@pytest.mark.parametrize('ext', ['pth', 'npz'])
def test_save_load_round_trip(tmp_path, ext):
    x = correlated_features(c=12)
    fitted = PCAWhitening(dims=12, in_channels=12).fit(x)
    path = str(tmp_path / f'pca.{ext}')
    fitted.save(path)
    if ext == 'npz':
        with np.load(path) as f:
            assert sorted(f.files) == ['V', 'd', 'mean']
            assert f['V'].shape == (12, 12)
    else:
        raw = torch.load(path, weights_only=True)
        assert sorted(raw) == ['V', 'd', 'mean']
    for dims in (12, 5):
        loaded = PCAWhitening(pca_file=path, dims=dims)
        assert loaded.in_channels == 12
        assert loaded.eigenvectors.shape == (12, dims)
        assert len(list(loaded.parameters())) == 0
        assert {n
                for n, _ in loaded.named_buffers()
                } == {'mean', 'eigenvalues', 'eigenvectors'}
        torch.testing.assert_close(
            loaded(x.float()),
            PCAWhitening(dims=dims, in_channels=12).fit(x)(x.float()))


def test_load_any_eigen_order(tmp_path):
    """An ascending file (as from eigh) keeps the largest eigenpairs."""
    x = correlated_features(c=10)
    fitted = PCAWhitening(dims=4, in_channels=10).fit(x)
    mean, d, V = fitted._full
    path = str(tmp_path / 'asc.pth')
    torch.save({'mean': mean, 'd': d.flip(0), 'V': V.flip(1)}, path)
    loaded = PCAWhitening(pca_file=path, dims=4)
    torch.testing.assert_close(loaded.eigenvalues, fitted.eigenvalues)
    torch.testing.assert_close(loaded.eigenvectors, fitted.eigenvectors)


def test_state_dict_round_trip():
    x = correlated_features(c=10)
    fitted = PCAWhitening(dims=4, in_channels=10).fit(x)
    empty = PCAWhitening(dims=4, in_channels=10)
    empty.load_state_dict(fitted.state_dict())
    torch.testing.assert_close(empty(x.float()), fitted(x.float()))


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        PCAWhitening(pca_file=str(tmp_path / 'missing.pth'))
    path = str(tmp_path / 'nokey.pth')
    torch.save({'mean': torch.zeros(4), 'V': torch.eye(4)}, path)
    with pytest.raises(ValueError, match=r"lacks keys \['d'\]"):
        PCAWhitening(pca_file=path, dims=2)
    path = str(tmp_path / 'shape.npz')
    np.savez(path, mean=np.zeros(4), d=np.ones(3), V=np.eye(4))
    with pytest.raises(ValueError, match='inconsistent shapes'):
        PCAWhitening(pca_file=path, dims=2)
    path = str(tmp_path / 'small.pth')
    torch.save({
        'mean': torch.zeros(4),
        'd': torch.ones(4),
        'V': torch.eye(4)
    }, path)
    with pytest.raises(ValueError, match='dims=8 exceeds'):
        PCAWhitening(pca_file=path, dims=8)
    pca = PCAWhitening(pca_file=path, dims=2)
    with pytest.raises(ValueError, match=r'\[\.\.\., 4\]'):
        pca(torch.zeros(3, 5))
    with pytest.raises(ValueError, match='M >= 2'):
        pca.fit(torch.zeros(1, 4))
    with pytest.raises(ValueError, match='dims'):
        PCAWhitening(dims=0)
