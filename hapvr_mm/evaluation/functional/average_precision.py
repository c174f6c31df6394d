"""Exact average precision for retrieval (pure NumPy, no mmengine).

Conventions shared by every function of this module:

* A *ranked list* is a 1-D array of scores; higher score ranks first.
* **Ties** (step-wise and trapezoid AP, and their micro variants) are broken
  by a *stable* sort on the order the items are given: among equal scores the
  item given first ranks first. For a micro (pooled) ranking over several
  lists, the lists are concatenated in the order given, so an item of an
  earlier list ranks before an equal-scored item of a later list. This is
  what ``np.argsort(-scores, kind='stable')`` on the concatenation would do.
* The scikit-learn style functions instead threshold on the *distinct*
  scores, exactly like ``sklearn.metrics.average_precision_score``: items with
  equal scores enter the ranking together.
* Ranks are 1-based.

Definitions (``G`` = number of relevant items, ``r_k`` = relevance of the
item at rank ``k``):

* step-wise AP: ``AP = sum_k precision@k * r_k / G``; relevant items that
  are not in the list (``G`` larger than the relevant items listed) simply
  contribute zero.
* micro AP (uAP): the step-wise AP of the pooled ranking of all items of all
  lists, with ``G`` the total number of relevant items.
* trapezoid AP (EVVE): see :func:`trapezoid_average_precision_from_ranks`.
* scikit-learn AP: ``AP = sum_n (R_n - R_{n-1}) P_n`` over the distinct score
  thresholds ``t_n`` (descending), with ``P_n`` and ``R_n`` the precision and
  recall of the items scoring ``>= t_n``.

Performance: every list is sorted once (``np.sort`` of its negated scores,
no argsort); the rank of a relevant item is then read with ``searchsorted``
and the tie rule above, so the cost is ``O(n log n)`` per list plus
``O(R log n)`` per list for the pooled ranks (``R`` relevant items overall).
"""
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

__all__ = [
    'check_scores', 'ranking_keys', 'count_before', 'descending_ranks',
    'ranks_in_lists', 'average_precision_from_ranks', 'average_precision',
    'batch_average_precision', 'micro_average_precision',
    'trapezoid_average_precision_from_ranks', 'trapezoid_average_precision',
    'sklearn_average_precision', 'sklearn_average_precision_from_counts',
    'sklearn_micro_average_precision'
]

ArrayLike = Union[np.ndarray, Sequence[float]]


def check_scores(scores: ArrayLike, name: str = 'scores') -> np.ndarray:
    """Validate a 1-D array of finite scores.

    Args:
        scores (array-like): Scores, shape ``[n]``.
        name (str): Name used in error messages. Defaults to ``'scores'``.

    Returns:
        np.ndarray: The scores as a floating array, shape ``[n]`` (float32
        stays float32, anything else becomes float64).
    """
    arr = np.asarray(scores)
    if arr.ndim != 1:
        raise ValueError(f'{name} must be 1-D of shape [n], got shape '
                         f'{arr.shape}')
    if arr.dtype.kind not in 'fiub':
        raise ValueError(f'{name} must be numeric, got dtype {arr.dtype}')
    if arr.dtype != np.float32:
        arr = arr.astype(np.float64, copy=False)
    if not np.isfinite(arr).all():
        bad = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise ValueError(f'{name} must be finite, got {arr[bad]} at '
                         f'position {bad}')
    return arr


def _check_relevant(relevant: ArrayLike,
                    n: int,
                    name: str = 'relevant') -> np.ndarray:
    rel = np.asarray(relevant)
    if rel.shape != (n, ):
        raise ValueError(f'{name} must have shape [{n}] like the scores, got '
                         f'{rel.shape}')
    if rel.dtype != np.bool_:
        if rel.dtype.kind not in 'iuf' or not np.isin(rel, (0, 1)).all():
            raise ValueError(f'{name} must be boolean or 0/1, got values '
                             f'{np.unique(rel)[:5]}')
        rel = rel.astype(bool)
    return rel


def ranking_keys(scores: np.ndarray) -> np.ndarray:
    """Keys whose ascending order is the descending order of ``scores``.

    Args:
        scores (np.ndarray): Scores, shape ``[n]``.

    Returns:
        np.ndarray: ``-scores``, shape ``[n]``.
    """
    return np.negative(scores)


_HASH_BITS = 16


def _key_hash(keys: np.ndarray) -> np.ndarray:
    """Bucket (``[0, 2**_HASH_BITS)``) of each key; equal keys share one."""
    if keys.dtype not in (np.float32, np.float64):
        keys = keys.astype(np.float64)
    bits = (
        keys +
        0.0).view(np.uint32 if keys.dtype == np.float32 else np.uint64).astype(
            np.uint64)  # -0.0 -> 0.0
    bits *= np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing
    return (bits >> np.uint64(64 - _HASH_BITS)).astype(np.intp)


def count_before(keys: np.ndarray,
                 sorted_keys: np.ndarray,
                 needle_keys: np.ndarray,
                 needle_positions: np.ndarray,
                 needles_are_items: bool = True,
                 positions: Optional[np.ndarray] = None) -> np.ndarray:
    """Count the items that come before each needle in a stable ranking.

    An item ``a`` (key ``keys[a]``, position ``a``) comes before a needle
    ``(k, p)`` when ``keys[a] < k`` or (``keys[a] == k`` and ``a < p``). A
    needle that is itself an item of ``keys`` does not count itself.

    Args:
        keys (np.ndarray): Ranking keys of the list (smaller first), shape
            ``[n]``.
        sorted_keys (np.ndarray): ``np.sort(keys)``, shape ``[n]``.
        needle_keys (np.ndarray): Keys of the needles, shape ``[m]``.
        needle_positions (np.ndarray): Positions of the needles in the list
            order, shape ``[m]`` (int).
        needles_are_items (bool): Whether every needle is an item of the
            list (at its position). Defaults to True.
        positions (np.ndarray, optional): Positions of the items of
            ``keys`` in the list order, shape ``[n]`` (int); use it when
            ``keys`` holds only a subset of a list. Defaults to
            ``arange(n)``.

    Returns:
        np.ndarray: Number of items before each needle, shape ``[m]``
        (int64).
    """
    left = np.searchsorted(sorted_keys, needle_keys, 'left').astype(np.int64)
    if needle_keys.size == 0:
        return left
    right = np.searchsorted(sorted_keys, needle_keys, 'right')
    tied = np.flatnonzero(right - left > int(needles_are_items))
    if tied.size == 0:
        return left
    # Items sharing a key with a tied needle, ordered by (key, position).
    tied_keys = needle_keys[tied]
    unique_keys = np.unique(tied_keys)
    # Items whose key is one of the tied keys: a hash pre-filter keeps the
    # exact (binary search) check to a few candidates.
    table = np.zeros(1 << _HASH_BITS, dtype=bool)
    table[_key_hash(unique_keys)] = True
    candidates = np.flatnonzero(table[_key_hash(keys)])
    slot = np.searchsorted(unique_keys, keys[candidates])
    np.minimum(slot, unique_keys.size - 1, out=slot)
    hit = unique_keys[slot] == keys[candidates]
    members = candidates[hit]
    group = slot[hit]
    member_pos = members if positions is None else positions[members]
    top = max(int(member_pos.max()), int(needle_positions.max()))
    stride = np.int64(top + 2)
    composite = np.sort(group * stride + member_pos)
    needle_group = np.searchsorted(unique_keys, tied_keys) * stride
    ties_before = (
        np.searchsorted(composite, needle_group + needle_positions[tied]) -
        np.searchsorted(composite, needle_group))
    left[tied] += ties_before
    return left


def descending_ranks(scores: ArrayLike,
                     index: Optional[ArrayLike] = None) -> np.ndarray:
    """1-based ranks in the stable descending order of ``scores``.

    Equal to ``np.argsort(np.argsort(-scores, kind='stable')) + 1`` taken at
    ``index``, computed with one ``np.sort`` and binary searches.

    Args:
        scores (array-like): Scores, shape ``[n]``.
        index (array-like, optional): Positions whose ranks are wanted,
            shape ``[m]``. Defaults to all positions.

    Returns:
        np.ndarray: Ranks, shape ``[m]`` (int64, 1-based).
    """
    scores = check_scores(scores)
    index = (
        np.arange(scores.size) if index is None else np.asarray(
            index, dtype=np.int64))
    if index.size and (index.min() < 0 or index.max() >= scores.size):
        raise ValueError(f'index must be in [0, {scores.size}), got '
                         f'[{index.min()}, {index.max()}]')
    keys = ranking_keys(scores)
    return count_before(keys, np.sort(keys), keys[index], index) + 1


def ranks_in_lists(
    scores: Sequence[np.ndarray],
    index: Sequence[np.ndarray],
    exclusions: Sequence[Optional[Sequence[np.ndarray]]] = (None, ),
    pooled: bool = True,
) -> List[Tuple[List[np.ndarray], Optional[List[np.ndarray]]]]:
    """Local and pooled ranks of chosen items of several ranked lists.

    Every list is sorted once; the ranks are then given for one or more
    *variants*, each removing a set of items from every list (e.g. the easy
    duplicates of FIVR's hard variant) before ranking. The pooled ranking
    concatenates the lists in the order given (see the module's tie rule).

    Args:
        scores (Sequence[np.ndarray]): ``Q`` lists of scores, list ``i`` of
            shape ``[n_i]`` (finite).
        index (Sequence[np.ndarray]): For each list, the positions whose
            ranks are wanted, shape ``[m_i]`` (int, distinct).
        exclusions (Sequence): One entry per variant: ``None`` (nothing
            removed) or ``Q`` arrays of positions removed from each list.
            Defaults to ``(None, )``.
        pooled (bool): Whether to compute pooled ranks. Defaults to True.

    Returns:
        list[tuple]: Per variant ``(local, pooled)``: ``local[i]`` holds the
        1-based ranks of ``index[i]`` inside list ``i`` with the variant's
        items removed, shape ``[m_i]``; ``pooled[i]`` the 1-based ranks in
        the pooled ranking of all lists (``None`` when ``pooled=False``).
        Needles removed by a variant get rank 0.
    """
    n_lists = len(scores)
    if len(index) != n_lists:
        raise ValueError(f'index must hold one array per list ({n_lists}), '
                         f'got {len(index)}')
    for ex in exclusions:
        if ex is not None and len(ex) != n_lists:
            raise ValueError(f'each exclusion must hold one array per list '
                             f'({n_lists}), got {len(ex)}')
    scores = [check_scores(s, f'scores[{j}]') for j, s in enumerate(scores)]
    idx = [np.asarray(i, dtype=np.int64).reshape(-1) for i in index]
    for j, (s, i) in enumerate(zip(scores, idx)):
        if i.size and (i.min() < 0 or i.max() >= s.size):
            raise ValueError(f'index[{j}] must be in [0, {s.size}), got '
                             f'[{i.min()}, {i.max()}]')
    sizes = np.array([i.size for i in idx], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    n_needles = int(starts[-1])
    needle_keys = (
        np.concatenate([ranking_keys(s[i]) for s, i in zip(scores, idx)])
        if n_needles else np.zeros(0))
    needle_list = np.repeat(np.arange(n_lists), sizes)
    # Sorted needles make the repeated binary searches cache friendly.
    order = np.argsort(needle_keys, kind='stable')
    sorted_needles = needle_keys[order]
    sorted_list = needle_list[order]

    n_var = len(exclusions)
    local = [[None] * n_lists for _ in range(n_var)]
    cross = [np.zeros(n_needles, dtype=np.int64) for _ in range(n_var)]
    for j in range(n_lists):
        keys = ranking_keys(scores[j])
        sorted_keys = np.sort(keys)
        own = slice(starts[j], starts[j + 1])
        base_local = count_before(keys, sorted_keys, needle_keys[own], idx[j])
        if pooled and n_needles:
            later = sorted_list > j  # lists after j: j's ties come first
            full_cross = np.where(
                later, np.searchsorted(sorted_keys, sorted_needles, 'right'),
                np.searchsorted(sorted_keys, sorted_needles, 'left'))
            full_cross[sorted_list == j] = 0
        for v, ex in enumerate(exclusions):
            loc = base_local.copy()
            if ex is not None and len(ex[j]):
                ex_pos = np.asarray(ex[j], dtype=np.int64)
                ex_keys = keys[ex_pos]
                ex_sorted = np.sort(ex_keys)
                loc -= count_before(
                    ex_keys,
                    ex_sorted,
                    needle_keys[own],
                    idx[j],
                    needles_are_items=False,
                    positions=ex_pos)
                removed = np.isin(idx[j], ex_pos)
                if pooled and n_needles:
                    ex_cross = np.where(
                        later,
                        np.searchsorted(ex_sorted, sorted_needles, 'right'),
                        np.searchsorted(ex_sorted, sorted_needles, 'left'))
                    ex_cross[sorted_list == j] = 0
                    cross[v][order] += full_cross - ex_cross
            else:
                removed = None
                if pooled and n_needles:
                    cross[v][order] += full_cross
            loc += 1
            if removed is not None:
                loc[removed] = 0
            local[v][j] = loc
    results = []
    for v in range(n_var):
        if not pooled:
            results.append((local[v], None))
            continue
        pooled_ranks = []
        for j in range(n_lists):
            own = slice(starts[j], starts[j + 1])
            pr = local[v][j] + cross[v][own]
            pr[local[v][j] == 0] = 0
            pooled_ranks.append(pr)
        results.append((local[v], pooled_ranks))
    return results


def average_precision_from_ranks(ranks: ArrayLike, n_relevant: int) -> float:
    """Step-wise AP from the ranks of the relevant items in the list.

    ``AP = (1 / G) * sum_i i / rank_i`` with the relevant ranks sorted
    ascending (``i`` = 1, 2, ...), which equals
    ``sum_k precision@k * r_k / G``.

    Args:
        ranks (array-like): Distinct 1-based ranks of the relevant items
            that are in the list, shape ``[m]``.
        n_relevant (int): ``G``, number of relevant items (``>= m``);
            relevant items not in the list contribute zero.

    Returns:
        float: AP in ``[0, 1]``; NaN when ``n_relevant == 0``.
    """
    ranks = np.sort(np.asarray(ranks, dtype=np.float64))
    if n_relevant < ranks.size:
        raise ValueError(f'n_relevant must be >= the number of ranks '
                         f'({ranks.size}), got {n_relevant}')
    if n_relevant == 0:
        return float('nan')
    hits = np.arange(1, ranks.size + 1, dtype=np.float64)
    return float(np.sum(hits / ranks) / n_relevant)


def average_precision(scores: ArrayLike,
                      relevant: ArrayLike,
                      n_relevant: Optional[int] = None) -> float:
    """Step-wise AP of one ranked list (stable ties, see module doc).

    Args:
        scores (array-like): Scores, shape ``[n]``.
        relevant (array-like): Relevance (bool or 0/1), shape ``[n]``.
        n_relevant (int, optional): ``G``; defaults to ``relevant.sum()``.
            A larger value counts relevant items missing from the list as
            never retrieved.

    Returns:
        float: AP; NaN when ``G == 0``.
    """
    scores = check_scores(scores)
    rel = _check_relevant(relevant, scores.size)
    pos = np.flatnonzero(rel)
    g = pos.size if n_relevant is None else int(n_relevant)
    keys = ranking_keys(scores)
    ranks = count_before(keys, np.sort(keys), keys[pos], pos) + 1
    return average_precision_from_ranks(ranks, g)


def _as_lists(scores, relevant) -> Tuple[List[np.ndarray], List[np.ndarray]]:
    if isinstance(scores, np.ndarray) and scores.ndim == 2:
        scores = list(scores)
    if isinstance(relevant, np.ndarray) and relevant.ndim == 2:
        relevant = list(relevant)
    if len(scores) != len(relevant):
        raise ValueError(f'scores and relevant must hold the same number of '
                         f'lists, got {len(scores)} and {len(relevant)}')
    s_list = [check_scores(s, f'scores[{i}]') for i, s in enumerate(scores)]
    r_list = [
        _check_relevant(r, s.size, f'relevant[{i}]')
        for i, (s, r) in enumerate(zip(s_list, relevant))
    ]
    return s_list, r_list


def _check_n_relevant(n_relevant, counts: np.ndarray) -> np.ndarray:
    if n_relevant is None:
        return counts
    g = np.asarray(n_relevant, dtype=np.int64).reshape(-1)
    if g.shape != counts.shape:
        raise ValueError(f'n_relevant must have shape [{counts.size}], got '
                         f'{np.shape(n_relevant)}')
    if (g < counts).any():
        raise ValueError('n_relevant must be >= the relevant items listed')
    return g


def batch_average_precision(
        scores: Union[np.ndarray, Sequence[ArrayLike]],
        relevant: Union[np.ndarray, Sequence[ArrayLike]],
        n_relevant: Optional[ArrayLike] = None) -> np.ndarray:
    """Step-wise AP of many ranked lists.

    Args:
        scores (np.ndarray | Sequence): ``[Q, n]`` array or ``Q`` lists of
            shape ``[n_i]``.
        relevant (np.ndarray | Sequence): Relevance, same shapes.
        n_relevant (array-like, optional): ``G`` per list, shape ``[Q]``.
            Defaults to the relevant counts.

    Returns:
        np.ndarray: AP per list, shape ``[Q]`` (NaN where ``G == 0``).
    """
    s_list, r_list = _as_lists(scores, relevant)
    idx = [np.flatnonzero(r) for r in r_list]
    g = _check_n_relevant(n_relevant, np.array([i.size for i in idx]))
    (local, _), = ranks_in_lists(s_list, idx, pooled=False)
    return np.array(
        [average_precision_from_ranks(r, n) for r, n in zip(local, g)],
        dtype=np.float64)


def micro_average_precision(scores: Union[np.ndarray, Sequence[ArrayLike]],
                            relevant: Union[np.ndarray, Sequence[ArrayLike]],
                            n_relevant: Optional[int] = None) -> float:
    """Micro AP (uAP): step-wise AP of all items of all lists pooled.

    Equivalent to :func:`average_precision` on the concatenation of the lists
    (stable ties: earlier list first), without concatenating.

    Args:
        scores (np.ndarray | Sequence): ``[Q, n]`` array or ``Q`` lists of
            shape ``[n_i]``.
        relevant (np.ndarray | Sequence): Relevance, same shapes.
        n_relevant (int, optional): Total ``G``; defaults to the number of
            relevant items listed.

    Returns:
        float: uAP; NaN when ``G == 0``.
    """
    s_list, r_list = _as_lists(scores, relevant)
    idx = [np.flatnonzero(r) for r in r_list]
    listed = int(sum(i.size for i in idx))
    g = listed if n_relevant is None else int(n_relevant)
    (_, pooled), = ranks_in_lists(s_list, idx, pooled=True)
    ranks = np.concatenate(pooled) if pooled else np.zeros(0)
    return average_precision_from_ranks(ranks, g)


def trapezoid_average_precision_from_ranks(ranks: ArrayLike,
                                           n_relevant: int) -> float:
    """EVVE's trapezoid AP from the ranks of the positives.

    With the positives' 0-based ranks ``R_0 < R_1 < ...`` in the ranked list
    (the query itself excluded) and ``G`` positives in total, the recall step
    is ``1 / G``; for the ``i``-th retrieved positive (``i`` = 0, 1, ...) the
    precision just before it is ``p0_i = i / R_i`` (1 when ``R_i == 0``) and
    at it ``p1_i = (i + 1) / (R_i + 1)``; the AP is the trapezoid area

        ``AP = sum_i (p0_i + p1_i) / 2 * (1 / G)``.

    Positives that are not retrieved add nothing (their area counts as zero).

    Args:
        ranks (array-like): Distinct 1-based ranks of the retrieved
            positives, shape ``[m]``.
        n_relevant (int): ``G`` (``>= m``).

    Returns:
        float: AP; NaN when ``G == 0``.
    """
    ranks0 = np.sort(np.asarray(ranks, dtype=np.float64)) - 1.0
    if n_relevant < ranks0.size:
        raise ValueError(f'n_relevant must be >= the number of ranks '
                         f'({ranks0.size}), got {n_relevant}')
    if n_relevant == 0:
        return float('nan')
    i = np.arange(ranks0.size, dtype=np.float64)
    p0 = np.divide(i, ranks0, out=np.ones_like(i), where=ranks0 > 0)
    p1 = (i + 1.0) / (ranks0 + 1.0)
    return float(np.sum(p0 + p1) / (2.0 * n_relevant))


def trapezoid_average_precision(scores: ArrayLike,
                                relevant: ArrayLike,
                                n_relevant: Optional[int] = None) -> float:
    """EVVE's trapezoid AP of one ranked list (stable ties).

    Args:
        scores (array-like): Scores, shape ``[n]`` (query excluded).
        relevant (array-like): Positives (bool or 0/1), shape ``[n]``.
        n_relevant (int, optional): ``G``; defaults to ``relevant.sum()``.

    Returns:
        float: AP (see :func:`trapezoid_average_precision_from_ranks`).
    """
    scores = check_scores(scores)
    rel = _check_relevant(relevant, scores.size)
    pos = np.flatnonzero(rel)
    g = pos.size if n_relevant is None else int(n_relevant)
    keys = ranking_keys(scores)
    ranks = count_before(keys, np.sort(keys), keys[pos], pos) + 1
    return trapezoid_average_precision_from_ranks(ranks, g)


def sklearn_average_precision_from_counts(positive_keys: np.ndarray,
                                          n_at_or_above: np.ndarray) -> float:
    """scikit-learn style AP from the positives' keys and threshold counts.

    Args:
        positive_keys (np.ndarray): Ranking keys (``-score``) of the
            positives, shape ``[P]``.
        n_at_or_above (np.ndarray): For each positive, the number of items
            (positive or not) whose score is ``>=`` its score, shape ``[P]``.

    Returns:
        float: ``sum_t (dTP_t / P) * TP_t / N_t`` over the distinct positive
        scores ``t``; NaN when ``P == 0``.
    """
    n_pos = positive_keys.size
    if n_pos == 0:
        return float('nan')
    order = np.argsort(positive_keys, kind='stable')
    keys = positive_keys[order]
    counts = np.asarray(n_at_or_above, dtype=np.float64)[order]
    last = np.flatnonzero(np.r_[keys[1:] != keys[:-1], True])
    tp = (last + 1).astype(np.float64)
    d_tp = np.diff(np.r_[0.0, tp])
    return float(np.sum(d_tp * tp / counts[last]) / n_pos)


def sklearn_average_precision(scores: ArrayLike, relevant: ArrayLike) -> float:
    """AP exactly as ``sklearn.metrics.average_precision_score``.

    Thresholds on the distinct scores: ``AP = sum_n (R_n - R_{n-1}) P_n``,
    so equal scores are taken together (no tie order).

    Args:
        scores (array-like): Scores, shape ``[n]``.
        relevant (array-like): Relevance (bool or 0/1), shape ``[n]``.

    Returns:
        float: AP; NaN when there is no positive.
    """
    scores = check_scores(scores)
    rel = _check_relevant(relevant, scores.size)
    keys = ranking_keys(scores)
    pos_keys = keys[rel]
    n_ge = np.searchsorted(np.sort(keys), pos_keys, 'right')
    return sklearn_average_precision_from_counts(pos_keys, n_ge)


def sklearn_micro_average_precision(
        scores: Union[np.ndarray, Sequence[ArrayLike]],
        relevant: Union[np.ndarray, Sequence[ArrayLike]]) -> float:
    """scikit-learn style AP of all items of all lists pooled.

    Args:
        scores (np.ndarray | Sequence): ``[Q, n]`` or ``Q`` lists ``[n_i]``.
        relevant (np.ndarray | Sequence): Relevance, same shapes.

    Returns:
        float: ``sklearn_average_precision`` of the concatenation; NaN when
        there is no positive.
    """
    s_list, r_list = _as_lists(scores, relevant)
    pos_keys = np.concatenate(
        [ranking_keys(s[r])
         for s, r in zip(s_list, r_list)]) if s_list else np.zeros(0)
    n_ge = np.zeros(pos_keys.size, dtype=np.int64)
    sorted_pos = np.sort(pos_keys)
    back = np.argsort(pos_keys, kind='stable')
    for s in s_list:
        counts = np.searchsorted(np.sort(ranking_keys(s)), sorted_pos, 'right')
        n_ge[back] += counts
    return sklearn_average_precision_from_counts(pos_keys, n_ge)
