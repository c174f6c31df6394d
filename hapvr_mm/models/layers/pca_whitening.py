"""Frozen PCA whitening of region vectors (docs/method.md section 2).

``x <- normalize((x - mean) @ P)`` where ``P`` holds the top-``dims``
eigenvectors of the training covariance, each scaled by
``1 / sqrt(eigenvalue + eps)``. The statistics come from the public file
(``mean``, eigenvalues ``d``, eigenvectors ``V`` as columns; ``.pth`` or
``.npz``) or from :meth:`PCAWhitening.fit`. See ``docs/weights.md``.
"""
import logging
import os.path as osp
from typing import Dict, Optional, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmaction.registry import MODELS
from mmengine.logging import print_log

__all__ = [
    'PCAWhitening', 'pca_whiten', 'fit_pca', 'load_pca_file', 'save_pca_file',
    'top_eigenpairs'
]

_PCA_KEYS = ('mean', 'd', 'V')


def pca_whiten(x: torch.Tensor,
               mean: torch.Tensor,
               eigenvalues: torch.Tensor,
               eigenvectors: torch.Tensor,
               eps: float = 1e-7) -> torch.Tensor:
    """Whiten and L2-normalise vectors: ``normalize((x - mean) @ P)``.

    Args:
        x (torch.Tensor): Vectors ``[..., C]``.
        mean (torch.Tensor): Mean ``[C]``.
        eigenvalues (torch.Tensor): Kept eigenvalues ``[D]``.
        eigenvectors (torch.Tensor): Kept eigenvectors as columns ``[C, D]``.
        eps (float): Added to the eigenvalues. Defaults to 1e-7.

    Returns:
        torch.Tensor: Whitened, L2-normalised vectors ``[..., D]`` in
        ``x``'s dtype (computed in at least float32).
    """
    dtype = torch.promote_types(x.dtype, torch.float32)
    proj = eigenvectors.to(dtype) / torch.sqrt(eigenvalues.to(dtype) + eps)
    out = (x.to(dtype) - mean.to(dtype)) @ proj
    return F.normalize(out, p=2, dim=-1).to(x.dtype)


def top_eigenpairs(d: torch.Tensor, V: torch.Tensor,
                   dims: Optional[int]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Sort eigenpairs by decreasing eigenvalue and keep the top ``dims``.

    Args:
        d (torch.Tensor): Eigenvalues ``[K]`` in any order.
        V (torch.Tensor): Eigenvectors as columns ``[C, K]``.
        dims (int, optional): Number kept; None keeps all ``K``.

    Returns:
        tuple[torch.Tensor, torch.Tensor]: Eigenvalues ``[dims]`` (largest
        first) and eigenvectors ``[C, dims]``.
    """
    order = torch.argsort(d, descending=True, stable=True)
    if dims is not None:
        order = order[:dims]
    return d[order], V[:, order]


def fit_pca(features: torch.Tensor
            ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Compute the mean and the eigendecomposition of the covariance.

    The covariance is ``(X - mean)^T (X - mean) / M`` in float64.

    Args:
        features (torch.Tensor): Training vectors ``[M, C]``, ``M >= 2``.

    Returns:
        tuple: ``mean [C]``, eigenvalues ``d [C]`` (largest first) and
        eigenvectors ``V [C, C]`` (columns, same order), all float64 on CPU.
    """
    if features.dim() != 2 or features.shape[0] < 2:
        raise ValueError(f'fit expects features [M, C] with M >= 2, got '
                         f'{tuple(features.shape)}')
    x = features.detach().to('cpu', torch.float64)
    mean = x.mean(dim=0)
    xc = x - mean
    cov = xc.T @ xc / x.shape[0]
    d, V = torch.linalg.eigh(cov)
    d, V = top_eigenpairs(d, V, None)
    return mean, d, V


def _as_float64(value) -> torch.Tensor:
    if not torch.is_tensor(value):
        value = torch.from_numpy(np.asarray(value))
    return value.to(torch.float64)


def load_pca_file(path: str) -> Dict[str, torch.Tensor]:
    """Read a PCA file with keys ``mean``, ``d`` and ``V``.

    ``.npz`` files are read with NumPy (``allow_pickle=False``), anything
    else with ``torch.load(weights_only=True)``.

    Args:
        path (str): Local ``.pth`` / ``.npz`` file.

    Returns:
        dict[str, torch.Tensor]: ``mean [C]``, ``d [K]`` and ``V [C, K]``
        as float64 tensors.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'PCA file not found: {path!r} (see docs/weights.md)')
    if path.endswith('.npz'):
        with np.load(path, allow_pickle=False) as npz:
            raw = {k: npz[k] for k in npz.files}
    else:
        raw = torch.load(path, map_location='cpu', weights_only=True)
        if not isinstance(raw, dict):
            raise ValueError(f'PCA file {path!r} holds a '
                             f'{type(raw).__name__}, expected a dict with '
                             f'keys {_PCA_KEYS}')
    missing = [k for k in _PCA_KEYS if k not in raw]
    if missing:
        raise ValueError(f'PCA file {path!r} lacks keys {missing}; expected '
                         f'{_PCA_KEYS}, found {sorted(raw)}')
    out = {k: _as_float64(raw[k]) for k in _PCA_KEYS}
    mean, d, V = out['mean'], out['d'], out['V']
    if (mean.dim() != 1 or d.dim() != 1 or V.dim() != 2
            or V.shape != (mean.shape[0], d.shape[0])):
        raise ValueError(
            f'PCA file {path!r} has inconsistent shapes: expected mean [C], '
            f'd [K], V [C, K]; got mean {tuple(mean.shape)}, d '
            f'{tuple(d.shape)}, V {tuple(V.shape)}')
    return out


def save_pca_file(path: str, mean: torch.Tensor, d: torch.Tensor,
                  V: torch.Tensor) -> None:
    """Write ``mean``, ``d`` and ``V`` (``.npz`` or else ``torch.save``).

    Args:
        path (str): Destination; ``.npz`` writes a compressed NumPy archive,
            any other extension a torch file of tensors.
        mean (torch.Tensor): Mean ``[C]``.
        d (torch.Tensor): Eigenvalues ``[K]``.
        V (torch.Tensor): Eigenvectors as columns ``[C, K]``.
    """
    data = {'mean': mean, 'd': d, 'V': V}
    data = {k: v.detach().cpu() for k, v in data.items()}
    if path.endswith('.npz'):
        np.savez_compressed(path, **{k: v.numpy() for k, v in data.items()})
    else:
        torch.save(data, path)


@MODELS.register_module()
class PCAWhitening(nn.Module):
    """Frozen PCA whitening layer: ``x -> normalize((x - mean) @ P)``.

    The kept statistics are buffers (saved in model checkpoints, no
    gradients): ``mean [C]``, ``eigenvalues [dims]`` (largest first) and
    ``eigenvectors [C, dims]``. Without ``pca_file`` they start at zero
    (shapes from ``in_channels``) and are filled by ``load_state_dict`` or
    :meth:`fit`; if they are still empty when :meth:`init_weights` runs
    (model construction without a file), a random orthonormal projection
    is set and a loud warning says that the features are meaningless.

    Args:
        pca_file (str, optional): Local ``.pth`` or ``.npz`` with keys
            ``mean``, ``d``, ``V``, read at construction. Defaults to None.
        dims (int): Output dimensions ``D``. Defaults to 512.
        in_channels (int): Input dimensions ``C`` when no file is given.
            Defaults to 3840.
        eps (float): Added to the eigenvalues. Defaults to 1e-7.
    """

    def __init__(self,
                 pca_file: Optional[str] = None,
                 dims: int = 512,
                 in_channels: int = 3840,
                 eps: float = 1e-7) -> None:
        super().__init__()
        if not isinstance(dims, int) or dims < 1:
            raise ValueError(f'dims must be a positive int, got {dims!r}')
        self.dims = dims
        self.eps = float(eps)
        self.pca_file = pca_file
        self._full: Optional[Tuple[torch.Tensor, ...]] = None
        self.register_buffer('mean', torch.zeros(in_channels))
        self.register_buffer('eigenvalues', torch.ones(dims))
        self.register_buffer('eigenvectors', torch.zeros(in_channels, dims))
        if pca_file is not None:
            stats = load_pca_file(pca_file)
            self._set_stats(
                stats['mean'], stats['d'], stats['V'], source=pca_file)

    def init_weights(self) -> None:
        """Give a whitening without statistics a random orthonormal basis.

        Does nothing when statistics were loaded or fitted. Otherwise the
        mean is zero, the eigenvalues one and the eigenvectors a fixed
        (seed 0) random orthonormal ``[C, dims]`` basis, so that a config
        without its PCA file still runs (e.g. on the demo data), with a
        warning.
        """
        if bool(self.eigenvectors.any()):
            return
        gen = torch.Generator().manual_seed(0)
        rand = torch.randn(self.in_channels, self.dims, generator=gen)
        with torch.no_grad():
            self.eigenvectors.copy_(torch.linalg.qr(rand).Q)
            self.eigenvalues.fill_(1.0)
            self.mean.zero_()
        print_log(
            '!' * 70 + '\nWARNING: PCAWhitening has no PCA file (random '
            'orthonormal projection). Set the PCA file of docs/weights.md '
            'for real features.\n' + '!' * 70,
            logger='current',
            level=logging.WARNING)

    @property
    def in_channels(self) -> int:
        """int: Input dimensions ``C``."""
        return self.mean.shape[0]

    @property
    def out_channels(self) -> int:
        """int: Output dimensions ``D`` (``dims``)."""
        return int(self.dims)

    def _set_stats(self, mean: torch.Tensor, d: torch.Tensor, V: torch.Tensor,
                   source: str) -> None:
        if self.dims > d.shape[0]:
            raise ValueError(
                f'dims={self.dims} exceeds the {d.shape[0]} eigenvectors of '
                f'{source}')
        d_top, V_top = top_eigenpairs(d, V, self.dims)
        device = self.mean.device
        self.mean = mean.to(device, torch.float32)
        self.eigenvalues = d_top.to(device, torch.float32)
        self.eigenvectors = V_top.to(device, torch.float32)
        self._full = (mean.cpu(), d.cpu(), V.cpu())

    def fit(self, features: torch.Tensor) -> 'PCAWhitening':
        """Learn mean and eigendecomposition from training vectors.

        Args:
            features (torch.Tensor): Training vectors ``[M, C]``, ``M >= 2``
                (``C`` may differ from the current ``in_channels``).

        Returns:
            PCAWhitening: self, with the top-``dims`` statistics set.
        """
        mean, d, V = fit_pca(features)
        self._set_stats(mean, d, V, source='the fitted features')
        return self

    def save(self, path: str) -> None:
        """Write ``mean``, ``d``, ``V`` in the public file's format.

        The full decomposition is written when known (after :meth:`fit` or
        loading a file), otherwise the kept top-``dims`` part.

        Args:
            path (str): ``.npz`` or ``.pth`` destination.
        """
        if self._full is not None:
            mean, d, V = self._full
        else:
            mean, d, V = self.mean, self.eigenvalues, self.eigenvectors
        save_pca_file(path, mean, d, V)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Whiten and L2-normalise the last dimension.

        Args:
            x (torch.Tensor): Vectors ``[..., C]``, e.g. ``[T, R, 3840]``.

        Returns:
            torch.Tensor: ``[..., dims]``, unit L2 norm.
        """
        if x.dim() < 1 or x.shape[-1] != self.in_channels:
            raise ValueError(
                f'PCAWhitening expects [..., {self.in_channels}] inputs, got '
                f'{tuple(x.shape)}')
        return pca_whiten(x, self.mean, self.eigenvalues, self.eigenvectors,
                          self.eps)

    def extra_repr(self) -> str:
        """Summary shown by ``print``."""
        return f'in_channels={self.in_channels}, dims={self.dims}, ' \
               f'eps={self.eps}'
