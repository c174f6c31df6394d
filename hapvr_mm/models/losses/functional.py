"""Pure maths of the HAP-VR losses (docs/method.md section 4).

Every function takes plain tensors and knows nothing of mmengine; the
registered loss classes of this package are thin wrappers around them.

Shapes used below: ``N`` videos in a batch, ``S`` the ``N x N`` video
similarity matrix, ``Y`` the ``N x N`` 0/1 relevance matrix, ``T`` frames
per video, ``P`` relevant video pairs.

Conventions shared by all functions:

* Relevance matrices and frame masks may be ``bool`` tensors or 0/1 tensors
  of any numeric dtype; any other value raises ``ValueError``.
* Half precision inputs (``float16``/``bfloat16``) are computed in
  ``float32``; the returned loss is then ``float32``.
* The AP surrogates never build an ``N x N x T x T x T`` tensor: the ranked
  lists are restricted to the relevant pairs and, inside each list, to the
  positive items ``j``, so the largest intermediate holds
  ``(#positive items) x (list length)`` values.
"""
import math
from typing import Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from ..precision import float32_region

__all__ = [
    'quadlinear', 'ranked_list_ap', 'quadlinear_ap_loss',
    'frame_quadlinear_ap_loss', 'info_nce_loss', 'hard_negative_loss',
    'self_similarity_loss', 'similarity_regularization',
    'embedding_similarity', 'label_relevance', 'fast_ap_loss'
]

_SURROGATES = ('quadlinear', 'sigmoid')


# ---------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------
def _shape(x: Tensor) -> str:
    return str(list(x.shape))


def _to_compute_dtype(x: Tensor) -> Tensor:
    """Return ``x`` as a floating tensor, half precision lifted to fp32."""
    if not torch.is_tensor(x):
        raise ValueError(
            f'expected a torch.Tensor, received {type(x).__name__}')
    if x.dtype in (torch.float16, torch.bfloat16):
        return x.float()
    if not x.is_floating_point():
        raise ValueError(
            f'expected a floating point similarity tensor, received dtype '
            f'{x.dtype}')
    return x


def _as_bool(mask: Tensor, name: str, shape: torch.Size) -> Tensor:
    """Check that ``mask`` has ``shape`` and holds only 0/1; return bool."""
    if not torch.is_tensor(mask):
        raise ValueError(f'expected {name} to be a torch.Tensor of shape '
                         f'{list(shape)}, received {type(mask).__name__}')
    if mask.shape != shape:
        raise ValueError(f'expected {name} of shape {list(shape)} (the '
                         f'similarity shape), received {_shape(mask)}')
    if mask.dtype == torch.bool:
        return mask
    if mask.numel() and bool(((mask != 0) & (mask != 1)).any()):
        raise ValueError(f'expected {name} to hold only 0/1 values (or be a '
                         f'bool tensor), received other values')
    return mask != 0


def _check_square(similarity: Tensor, name: str = 'similarity') -> None:
    if not torch.is_tensor(similarity):
        raise ValueError(f'expected {name} to be a torch.Tensor of shape '
                         f'[N, N], received {type(similarity).__name__}')
    if similarity.dim() != 2 or similarity.shape[0] != similarity.shape[1]:
        raise ValueError(f'expected {name} of shape [N, N], received '
                         f'{_shape(similarity)}')


def _check_video_inputs(similarity: Tensor,
                        relevance: Tensor,
                        need_positive_rows: bool = True
                        ) -> Tuple[Tensor, Tensor]:
    """Validate ``(S [N, N], Y [N, N])``; return ``(S, Y as bool)``."""
    _check_square(similarity)
    rel = _as_bool(relevance, 'relevance', similarity.shape)
    if need_positive_rows and similarity.shape[0] > 0:
        empty = ~rel.any(dim=1)
        if bool(empty.any()):
            rows = empty.nonzero().flatten().tolist()
            raise ValueError(
                f'expected every relevance row to hold at least one positive, '
                f'received rows without positives: {rows[:10]}')
    return _to_compute_dtype(similarity), rel


# ---------------------------------------------------------------------------
# Quad-linear surrogate
# ---------------------------------------------------------------------------
class _QuadLinear(torch.autograd.Function):
    """The quad-linear surrogate ``g_sigma``, saving only its input."""

    @staticmethod
    def forward(ctx, x: Tensor, sigma: float) -> Tensor:
        ctx.save_for_backward(x)
        ctx.sigma = sigma
        t = x / sigma + 1
        return torch.where(x > 0, 2 * t - 1, t.clamp(min=0).square())

    @staticmethod
    def backward(ctx, grad_out: Tensor) -> Tuple[Optional[Tensor], None]:
        x, = ctx.saved_tensors
        sigma = ctx.sigma
        # g'(x) = 2/sigma for x > 0, 2 (x/sigma + 1)/sigma on [-sigma, 0],
        # 0 below -sigma: min(max(x/sigma + 1, 0), 1) * 2 / sigma.
        slope = (x / sigma + 1).clamp(min=0, max=1) * (2.0 / sigma)
        return grad_out * slope, None


def quadlinear(x: Tensor, sigma: float = 0.05) -> Tensor:
    """Quad-linear surrogate of the Heaviside step with margin ``sigma``.

    ``g(x) = 2x/sigma + 1`` for ``x > 0``, ``(x/sigma + 1)^2`` for
    ``-sigma <= x <= 0`` and ``0`` below ``-sigma``. It is convex,
    continuous, differentiable, non-decreasing and ``g >= H``.

    Args:
        x (Tensor): any shape, floating point.
        sigma (float): the margin, > 0. Defaults to 0.05.

    Returns:
        Tensor: ``g(x)``, same shape and dtype as ``x``.
    """
    if not sigma > 0:
        raise ValueError(f'expected sigma > 0, received {sigma}')
    if not torch.is_tensor(x) or not x.is_floating_point():
        raise ValueError('expected a floating point tensor x, received '
                         f'{getattr(x, "dtype", type(x).__name__)}')
    return _QuadLinear.apply(x, float(sigma))


def _check_surrogate(surrogate: str, sigma: float, rho: float,
                     temperature: float) -> None:
    if surrogate not in _SURROGATES:
        raise ValueError(f'expected surrogate in {_SURROGATES}, received '
                         f'{surrogate!r}')
    if not sigma > 0:
        raise ValueError(f'expected sigma > 0, received {sigma}')
    if not rho >= 0:
        raise ValueError(f'expected rho >= 0, received {rho}')
    if not temperature > 0:
        raise ValueError(f'expected temperature > 0, received {temperature}')


# ---------------------------------------------------------------------------
# AP over ranked lists
# ---------------------------------------------------------------------------
def ranked_list_ap(scores: Tensor,
                   positives: Tensor,
                   negatives: Tensor,
                   sigma: float = 0.05,
                   rho: float = 0.1,
                   surrogate: str = 'quadlinear',
                   temperature: float = 0.01) -> Tuple[Tensor, Tensor]:
    """Surrogate AP of many ranked lists (one list per row).

    For row ``r``, each positive ``j`` and each other item ``k != j`` of
    the list, ``d = scores[r, k] - scores[r, j]``.

    * ``surrogate='quadlinear'`` (HAP-VR): ``w = rho * H(d)`` if ``k`` is
      positive, ``g_sigma(d)`` if ``k`` is negative, 0 otherwise;
      ``rank_pos = 1 + sum_{k pos} rho H(d)``, ``rank_all = 1 + sum_k w``.
      Gradients flow only through ``g``.
    * ``surrogate='sigmoid'`` (Smooth-AP): ``G(d) = sigmoid(d / temperature)``
      with weight 1 for every item (``rho`` and ``sigma`` unused);
      ``rank_pos = 1 + sum_{k pos, k != j} G(d)``,
      ``rank_all = rank_pos + sum_{k neg} G(d)``. Gradients flow through
      both ranks.

    ``AP(r) = mean_{j pos} rank_pos / rank_all``. Items that are neither
    positive nor negative (e.g. padded frames) are ignored; an item marked
    both positive and negative counts as positive.

    Args:
        scores (Tensor): ``[B, M]`` floating point scores.
        positives (Tensor): ``[B, M]`` bool positives.
        negatives (Tensor): ``[B, M]`` bool negatives.
        sigma (float): margin of ``g``. Defaults to 0.05.
        rho (float): weight of positives ranked above. Defaults to 0.1.
        surrogate (str): ``'quadlinear'`` or ``'sigmoid'``.
            Defaults to ``'quadlinear'``.
        temperature (float): temperature of the sigmoid surrogate.
            Defaults to 0.01.

    Returns:
        tuple[Tensor, Tensor]: ``ap`` ``[B]`` (0 on rows without positives)
        and ``valid`` ``[B]`` bool (rows with at least one positive).
    """
    _check_surrogate(surrogate, sigma, rho, temperature)
    if scores.dim() != 2:
        raise ValueError(f'expected scores of shape [B, M], received '
                         f'{_shape(scores)}')
    if positives.shape != scores.shape or negatives.shape != scores.shape:
        raise ValueError(f'expected positives/negatives of shape '
                         f'{_shape(scores)}, received {_shape(positives)} / '
                         f'{_shape(negatives)}')
    positives = positives.bool()
    negatives = negatives.bool() & ~positives
    num_rows, length = scores.shape
    # One entry per (row, positive item j).
    row, col = positives.nonzero(as_tuple=True)
    own = scores[row, col].unsqueeze(1)  # [E, 1]
    diff = scores[row] - own  # [E, M]
    pos_e = positives[row]
    neg_e = negatives[row]
    if surrogate == 'quadlinear':
        # H(d) carries no gradient; H(0) = 0 so k = j adds nothing.
        above = ((diff > 0) & pos_e).sum(dim=1).to(scores.dtype)
        rank_pos = 1 + rho * above.detach()
        g = quadlinear(diff, sigma)
        rank_all = rank_pos + torch.where(neg_e, g, 0).sum(dim=1)
    else:
        not_self = torch.arange(length, device=scores.device) != col[:, None]
        soft = torch.sigmoid(diff / temperature)
        rank_pos = 1 + torch.where(pos_e & not_self, soft, 0).sum(dim=1)
        rank_all = rank_pos + torch.where(neg_e, soft, 0).sum(dim=1)
    ratio = rank_pos / rank_all  # [E]
    total = scores.new_zeros(num_rows).index_add(0, row, ratio)
    count = positives.sum(dim=1)
    valid = count > 0
    ap = total / count.clamp(min=1).to(scores.dtype)
    return ap, valid


def quadlinear_ap_loss(similarity: Tensor,
                       relevance: Tensor,
                       sigma: float = 0.05,
                       rho: float = 0.1,
                       surrogate: str = 'quadlinear',
                       temperature: float = 0.01) -> Tensor:
    """Video-level QuadLinear-AP loss ``L_AP = 1 - mean_q AP(q)``.

    Row ``q`` of ``similarity`` ranks all ``N`` videos; its positives are
    ``relevance[q] == 1`` (the query itself included when ``Y[q, q] = 1``),
    every other video is a negative. See :func:`ranked_list_ap`.

    Args:
        similarity (Tensor): ``[N, N]`` video similarities ``S``.
        relevance (Tensor): ``[N, N]`` 0/1 or bool relevance ``Y``; every
            row needs at least one positive.
        sigma (float): margin of ``g``. Defaults to 0.05.
        rho (float): weight of positives ranked above. Defaults to 0.1.
        surrogate (str): ``'quadlinear'`` or ``'sigmoid'`` (Smooth-AP).
            Defaults to ``'quadlinear'``.
        temperature (float): sigmoid temperature. Defaults to 0.01.

    Returns:
        Tensor: scalar loss.
    """
    _check_surrogate(surrogate, sigma, rho, temperature)
    sim, rel = _check_video_inputs(similarity, relevance)
    if sim.shape[0] == 0:
        raise ValueError('expected a non-empty similarity [N, N], received '
                         f'{_shape(similarity)}')
    ap, _ = ranked_list_ap(sim, rel, ~rel, sigma, rho, surrogate, temperature)
    return 1 - ap.mean()


def frame_quadlinear_ap_loss(frame_similarity: Tensor,
                             positives: Tensor,
                             negatives: Tensor,
                             relevance: Optional[Tensor] = None,
                             sigma: float = 0.05,
                             rho: float = 5.0,
                             surrogate: str = 'quadlinear',
                             temperature: float = 0.01) -> Tensor:
    """Frame-level QuadLinear-AP loss with pseudo labels (``L_frame``).

    For each relevant pair ``(a, b)`` and query frame ``i``, the frames
    ``j`` of ``b`` are ranked by ``F[a, b, i, j]``; positives and negatives
    come from the pseudo-label masks, other frames (padding included) are
    ignored. ``AP(a, b) = mean_i AP(a, b, i)`` and
    ``L = 1 - sum_{Y[a,b]=1} AP(a, b) / sum Y``.

    Two calling forms:

    * 4-D: ``frame_similarity``, ``positives``, ``negatives`` of shape
      ``[N, N, Ti, Tj]`` and ``relevance`` ``[N, N]``; only the pairs with
      ``Y[a, b] = 1`` are gathered and computed.
    * pair form: ``[P, Ti, Tj]`` tensors and ``relevance=None``; the ``P``
      rows are exactly the relevant pairs.

    Degenerate cases: a query frame without positive frame is left out of
    the mean over ``i``; a pair without any such frame is left out of the
    pair mean (numerator and denominator); when no pair remains the loss is
    ``0`` (still connected to the graph, with zero gradient).

    Args:
        frame_similarity (Tensor): ``[N, N, Ti, Tj]`` or ``[P, Ti, Tj]``.
        positives (Tensor): 0/1 or bool, same shape.
        negatives (Tensor): 0/1 or bool, same shape.
        relevance (Tensor, optional): ``[N, N]`` 0/1 or bool, required with
            the 4-D form, ``None`` with the pair form. Defaults to None.
        sigma (float): margin of ``g``. Defaults to 0.05.
        rho (float): weight of positive frames ranked above.
            Defaults to 5.0.
        surrogate (str): ``'quadlinear'`` or ``'sigmoid'`` (Smooth-AP).
            Defaults to ``'quadlinear'``.
        temperature (float): sigmoid temperature. Defaults to 0.01.

    Returns:
        Tensor: scalar loss.
    """
    _check_surrogate(surrogate, sigma, rho, temperature)
    if not torch.is_tensor(frame_similarity):
        raise ValueError('expected frame_similarity to be a torch.Tensor, '
                         f'received {type(frame_similarity).__name__}')
    shape = frame_similarity.shape
    if relevance is None:
        if frame_similarity.dim() != 3:
            raise ValueError(
                'expected frame_similarity of shape [P, Ti, Tj] when '
                'relevance is None (or [N, N, Ti, Tj] with a relevance '
                f'[N, N]), received {_shape(frame_similarity)}')
        pos = _as_bool(positives, 'positives', shape)
        neg = _as_bool(negatives, 'negatives', shape)
        frames = _to_compute_dtype(frame_similarity)
    else:
        if frame_similarity.dim() != 4 or shape[0] != shape[1]:
            raise ValueError(
                'expected frame_similarity of shape [N, N, Ti, Tj] with a '
                'relevance [N, N] (or [P, Ti, Tj] with relevance=None), '
                f'received {_shape(frame_similarity)}')
        if not torch.is_tensor(positives) or positives.shape != shape:
            raise ValueError(f'expected positives of shape {list(shape)}, '
                             f'received {_shape_of(positives)}')
        if not torch.is_tensor(negatives) or negatives.shape != shape:
            raise ValueError(f'expected negatives of shape {list(shape)}, '
                             f'received {_shape_of(negatives)}')
        rel = _as_bool(relevance, 'relevance', shape[:2])
        a_idx, b_idx = rel.nonzero(as_tuple=True)
        frames = _to_compute_dtype(frame_similarity[a_idx, b_idx])
        pos = _as_bool(positives[a_idx, b_idx], 'positives', frames.shape)
        neg = _as_bool(negatives[a_idx, b_idx], 'negatives', frames.shape)
    num_pairs, t_q, t_t = frames.shape
    ap, valid = ranked_list_ap(
        frames.reshape(num_pairs * t_q, t_t), pos.reshape(-1, t_t),
        neg.reshape(-1, t_t), sigma, rho, surrogate, temperature)
    ap = ap.view(num_pairs, t_q)
    n_valid = valid.view(num_pairs, t_q).sum(dim=1)
    pair_ap = ap.sum(dim=1) / n_valid.clamp(min=1).to(ap.dtype)
    pair_valid = n_valid > 0
    n_pairs = pair_valid.sum()
    if int(n_pairs) == 0:
        return frames.sum() * 0
    return 1 - (pair_ap * pair_valid).sum() / n_pairs.to(ap.dtype)


def _shape_of(x) -> str:
    return _shape(x) if torch.is_tensor(x) else type(x).__name__


# ---------------------------------------------------------------------------
# FastAP (histogram approximation of AP)
# ---------------------------------------------------------------------------
def fast_ap_loss(similarity: Tensor,
                 relevance: Tensor,
                 num_bins: int = 10,
                 exclude_self: bool = True) -> Tensor:
    """FastAP loss (Cakir et al., CVPR 2019), ``L = 1 - mean_q FastAP(q)``.

    Each row ``q`` ranks the other items by the distance
    ``D[q, k] = 4 (1 - S[q, k])``, which is the squared Euclidean distance
    of L2-normalised embeddings when ``S = (1 + cos) / 2``
    (:func:`embedding_similarity`); ``D`` lies in [0, 4] for ``S`` in
    [0, 1]. The range is cut into ``num_bins`` bins of width
    ``delta = 4 / num_bins`` whose ``num_bins + 1`` edges are
    ``z_l = l * delta``, ``l = 0 .. num_bins``. Every item is soft-assigned
    to its two nearest edges by the triangular kernel
    ``K(D, z) = max(0, 1 - |D - z| / delta)``, giving the positive and
    negative histograms and their running (cumulative) sums:

    .. code-block:: none

        h+(q, l) = sum_{k positive} K(D[q, k], z_l)
        h-(q, l) = sum_{k negative} K(D[q, k], z_l)
        H+(q, l) = sum_{l' <= l} h+(q, l'),  H(q, l) = H+(q, l) + H-(q, l)
        FastAP(q) = 1 / N+(q) * sum_l h+(q, l) H+(q, l) / H(q, l)

    with ``N+(q)`` the number of positives of row ``q`` and a term taken as
    0 where ``H(q, l) = 0`` (then ``h+(q, l) = 0`` as well). Distances
    outside [0, 4] (similarities outside [0, 1]) reach the edge bins only
    partly, or not at all beyond ``[-delta, 4 + delta]``.

    Positives are ``relevance[q, k] = 1``, negatives the rest. With
    ``exclude_self`` the query itself (the diagonal) is neither: it is not
    in its own ranked list, as in the paper's batch setting. Rows without
    any positive are left out of the mean; when no row has one the loss is
    ``0``, still connected to the graph (zero gradient).

    Args:
        similarity (Tensor): ``[N, N]`` similarities ``S`` (range [0, 1]).
        relevance (Tensor): ``[N, N]`` 0/1 or bool relevance ``Y``.
        num_bins (int): number of histogram bins (``L`` in the paper).
            Defaults to 10.
        exclude_self (bool): leave the diagonal out of every ranked list.
            Defaults to True.

    Returns:
        Tensor: scalar loss.
    """
    if isinstance(num_bins, bool) or not isinstance(num_bins, int) \
            or num_bins < 1:
        raise ValueError(
            f'expected num_bins to be an int >= 1, received {num_bins!r}')
    sim, rel = _check_video_inputs(similarity, relevance, False)
    n = sim.shape[0]
    if n == 0:
        raise ValueError('expected a non-empty similarity [N, N], received '
                         f'{_shape(similarity)}')
    in_list = torch.ones_like(rel)
    if exclude_self:
        in_list.fill_diagonal_(False)
    pos = rel & in_list
    neg = ~rel & in_list
    n_pos = pos.sum(dim=1)
    valid = n_pos > 0
    if not bool(valid.any()):
        return sim.sum() * 0
    delta = 4.0 / num_bins
    edges = torch.arange(
        num_bins + 1, device=sim.device, dtype=sim.dtype) * delta
    dist = 4 * (1 - sim)  # [N, N]
    # soft assignment of every item to every edge: [N, N, L + 1]
    kernel = (1 - (dist[..., None] - edges).abs() / delta).clamp(min=0)
    h_pos = torch.where(pos[..., None], kernel, 0).sum(dim=1)  # [N, L+1]
    h_neg = torch.where(neg[..., None], kernel, 0).sum(dim=1)
    cum_pos = h_pos.cumsum(dim=1)
    cum_all = cum_pos + h_neg.cumsum(dim=1)
    nonempty = cum_all > 0
    terms = torch.where(nonempty, h_pos * cum_pos, 0) / torch.where(
        nonempty, cum_all, 1)
    fast_ap = terms.sum(dim=1) / n_pos.clamp(min=1).to(sim.dtype)
    return 1 - fast_ap[valid].mean()


# ---------------------------------------------------------------------------
# Pair-wise losses
# ---------------------------------------------------------------------------
def info_nce_loss(similarity: Tensor,
                  relevance: Tensor,
                  temperature: float = 0.03) -> Tensor:
    """InfoNCE over the relevance matrix (``L_nce``).

    With ``E = exp(S / tau)`` and ``n(q) = sum_{k: Y[q,k]=0} E[q, k]``,
    ``L = mean_q mean_{j != q, Y[q,j]=1} -log(E[q,j] / (E[q,j] + n(q) +
    1e-6))``, evaluated in log space (``logsumexp``) so that it cannot
    overflow. Rows without a positive other than themselves are left out of
    the mean over ``q``; if no row has one, the loss is 0 (zero gradient).

    Args:
        similarity (Tensor): ``[N, N]`` video similarities ``S``.
        relevance (Tensor): ``[N, N]`` 0/1 or bool relevance ``Y``.
        temperature (float): ``tau``, > 0. Defaults to 0.03.

    Returns:
        Tensor: scalar loss.
    """
    if not temperature > 0:
        raise ValueError(f'expected temperature > 0, received {temperature}')
    sim, rel = _check_video_inputs(similarity, relevance)
    n = sim.shape[0]
    logits = sim / temperature
    eye = torch.eye(n, dtype=torch.bool, device=sim.device)
    pos = rel & ~eye
    # log n(q) (-inf for rows without negatives).
    log_neg = torch.where(rel, -torch.inf, logits).logsumexp(dim=1)
    log_eps = torch.full_like(log_neg, math.log(1e-6))
    log_rest = torch.logaddexp(log_neg, log_eps)  # log(n(q) + 1e-6)
    # -log(E / (E + rest)) = log(E + rest) - log E.
    nll = torch.logaddexp(logits, log_rest[:, None]) - logits
    nll = torch.where(pos, nll, 0)
    count = pos.sum(dim=1)
    row_valid = count > 0
    if not bool(row_valid.any()):
        return sim.sum() * 0
    row_loss = nll.sum(dim=1) / count.clamp(min=1).to(sim.dtype)
    return (row_loss * row_valid).sum() / row_valid.sum().to(sim.dtype)


def hard_negative_loss(similarity: Tensor,
                       relevance: Tensor,
                       eps: float = 1e-3) -> Tensor:
    """Hardest-negative loss ``L_hn`` of SSHN.

    ``L_hn = -mean_q log(max(1 - max_{k: Y[q,k]=0} S[q, k], eps))``. Rows
    without any negative are left out of the mean; if no row has one the
    loss is 0 (zero gradient).

    Args:
        similarity (Tensor): ``[N, N]`` video similarities ``S``.
        relevance (Tensor): ``[N, N]`` 0/1 or bool relevance ``Y``.
        eps (float): lower clamp inside the log. Defaults to 1e-3.

    Returns:
        Tensor: scalar loss.
    """
    if not eps > 0:
        raise ValueError(f'expected eps > 0, received {eps}')
    sim, rel = _check_video_inputs(similarity, relevance)
    has_neg = (~rel).any(dim=1)
    if not bool(has_neg.any()):
        return sim.sum() * 0
    hardest = torch.where(rel, -torch.inf, sim)[has_neg].amax(dim=1)
    return -torch.log((1 - hardest).clamp(min=eps)).mean()


def self_similarity_loss(similarity: Tensor, eps: float = 1e-3) -> Tensor:
    """Self-similarity loss ``L_self = -mean_q log(max(S[q, q], eps))``.

    Args:
        similarity (Tensor): ``[N, N]`` video similarities ``S``.
        eps (float): lower clamp inside the log. Defaults to 1e-3.

    Returns:
        Tensor: scalar loss.
    """
    if not eps > 0:
        raise ValueError(f'expected eps > 0, received {eps}')
    _check_square(similarity)
    sim = _to_compute_dtype(similarity)
    if sim.shape[0] == 0:
        raise ValueError('expected a non-empty similarity [N, N], received '
                         f'{_shape(similarity)}')
    return -torch.log(sim.diagonal().clamp(min=eps)).mean()


def similarity_regularization(raw_output: Union[Tensor, Sequence[Tensor]],
                              mask: Optional[Union[Tensor,
                                                   Sequence[Tensor]]] = None
                              ) -> Tensor:
    """Similarity regularisation of the comparator's raw output ``V``.

    ``L_reg = sum |min(V + 1, 0)| + sum |max(V - 1, 0)|`` over every cell
    (cells where ``mask`` is 0 are skipped).

    Args:
        raw_output (Tensor | Sequence[Tensor]): ``V`` before hardtanh, any
            shape, or a list of such tensors (e.g. one per pair).
        mask (Tensor | Sequence[Tensor], optional): 0/1 or bool, the same
            shape(s) as ``raw_output``; 1 marks valid cells. Defaults to
            None (every cell counts).

    Returns:
        Tensor: scalar loss (the sum).
    """
    if torch.is_tensor(raw_output):
        outputs = [raw_output]
        if mask is not None and not torch.is_tensor(mask):
            raise ValueError('expected mask to be a tensor of shape '
                             f'{_shape(raw_output)}, received '
                             f'{type(mask).__name__}')
        masks = [mask]
    else:
        outputs = list(raw_output)
        if not outputs:
            raise ValueError('expected at least one raw output tensor, '
                             'received an empty sequence')
        if mask is None:
            masks = [None] * len(outputs)
        else:
            if torch.is_tensor(mask):
                raise ValueError(
                    f'expected a list of {len(outputs)} masks, received a '
                    f'tensor of shape {_shape(mask)}')
            masks = list(mask)
            if len(masks) != len(outputs):
                raise ValueError(f'expected {len(outputs)} masks, received '
                                 f'{len(masks)}')
    total = None
    for i, (value, valid) in enumerate(zip(outputs, masks)):
        value = _to_compute_dtype(value)
        excess = (value + 1).clamp(max=0).abs() + (value -
                                                   1).clamp(min=0).abs()
        if valid is not None:
            valid = _as_bool(valid, f'mask[{i}]', value.shape)
            excess = torch.where(valid, excess, 0)
        term = excess.sum()
        total = term if total is None else total + term
    return total


# ---------------------------------------------------------------------------
# The calling form of mmaction2's heads: embeddings and class labels
# ---------------------------------------------------------------------------
def embedding_similarity(embeddings: Tensor) -> Tensor:
    """Cosine similarity of every pair of rows, mapped to [0, 1].

    This turns a head's per-sample output (``cls_score``, or any embedding)
    into the ``N x N`` similarity the AP losses rank, in the training range
    of docs/method.md section 3: ``S = (1 + cos) / 2``.

    Args:
        embeddings (Tensor): ``[N, C]``.

    Returns:
        Tensor: ``[N, N]`` similarities in [0, 1] (1 on the diagonal).
    """
    if embeddings.dim() != 2 or embeddings.shape[0] == 0:
        raise ValueError('expected embeddings [N, C] with N >= 1, received '
                         f'{_shape(embeddings)}')
    x = _to_compute_dtype(embeddings)
    with float32_region(x.device.type):  # the AP losses rank these
        x = torch.nn.functional.normalize(x, p=2, dim=1)
        return (1 + x @ x.t()) / 2


def label_relevance(labels: Tensor) -> Tensor:
    """Relevance of every pair of samples: equal class labels.

    Args:
        labels (Tensor): ``[N]`` integer class labels.

    Returns:
        Tensor: bool ``[N, N]``, True where the labels are equal (so the
        diagonal is True: every sample is relevant to itself).
    """
    if labels.dim() != 1 or labels.is_floating_point():
        raise ValueError('expected integer class labels [N], received '
                         f'{_shape(labels)}')
    return labels[:, None] == labels[None, :]
