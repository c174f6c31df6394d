"""Tests of the NumPy AP functions against loop transcriptions."""
import numpy as np
import pytest

from hapvr_mm.evaluation.functional.average_precision import (
    average_precision, average_precision_from_ranks, batch_average_precision,
    descending_ranks, micro_average_precision, pooled_ranks,
    sklearn_average_precision, sklearn_micro_average_precision,
    stable_descending_order, trapezoid_average_precision)


def loop_ap(scores, relevant, n_relevant=None):
    """sum_k precision@k * r_k / G with a stable descending ranking."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])  # stable
    g = sum(bool(r) for r in relevant) if n_relevant is None else n_relevant
    hits, total = 0, 0.0
    for k, i in enumerate(order, 1):
        if relevant[i]:
            hits += 1
            total += hits / k
    return total / g


def loop_trapezoid(scores, relevant, n_relevant=None):
    """EVVE: trapezoids of width 1/G between precision before and at."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    g = sum(bool(r) for r in relevant) if n_relevant is None else n_relevant
    ap, ntp = 0.0, 0
    for rank, i in enumerate(order):
        if not relevant[i]:
            continue
        p0 = 1.0 if rank == 0 else ntp / rank
        p1 = (ntp + 1) / (rank + 1)
        ap += (p0 + p1) / 2 / g
        ntp += 1
    return ap


def loop_sklearn(scores, relevant):
    """sum_n (R_n - R_{n-1}) P_n over distinct thresholds, descending."""
    n_pos = sum(bool(r) for r in relevant)
    ap, prev_recall = 0.0, 0.0
    for t in sorted(set(scores), reverse=True):
        above = [i for i, s in enumerate(scores) if s >= t]
        tp = sum(bool(relevant[i]) for i in above)
        recall = tp / n_pos
        ap += (recall - prev_recall) * tp / len(above)
        prev_recall = recall
    return ap


def random_lists(rng, n_lists, tie_levels):
    scores, relevant = [], []
    for _ in range(n_lists):
        n = int(rng.integers(1, 25))
        s = rng.integers(0, tie_levels, n).astype(np.float64)
        r = rng.random(n) < 0.35
        r[rng.integers(n)] = True
        scores.append(s)
        relevant.append(r)
    return scores, relevant


@pytest.mark.parametrize('tie_levels', [2, 5, 1000])
def test_single_list_variants_match_loops(tie_levels):
    rng = np.random.default_rng(tie_levels)
    scores, relevant = random_lists(rng, 60, tie_levels)
    for s, r in zip(scores, relevant):
        assert average_precision(s, r) == pytest.approx(loop_ap(s, r))
        extra = int(r.sum()) + 3
        assert average_precision(s, r,
                                 extra) == pytest.approx(loop_ap(s, r, extra))
        assert trapezoid_average_precision(s, r) == pytest.approx(
            loop_trapezoid(s, r))
        assert trapezoid_average_precision(s, r, extra) == pytest.approx(
            loop_trapezoid(s, r, extra))
        assert sklearn_average_precision(s, r) == pytest.approx(
            loop_sklearn(list(s), list(r)))
        expected = np.argsort(np.argsort(-s, kind='stable')) + 1
        np.testing.assert_array_equal(descending_ranks(s), expected)


def test_ties_follow_given_order():
    # all scores equal: the stable order is the given order
    s = np.zeros(4)
    assert average_precision(s, [0, 1, 0, 1]) == pytest.approx(
        (1 / 2 + 2 / 4) / 2)
    assert average_precision(s, [1, 1, 0, 0]) == 1.0
    # sklearn-style: one threshold, precision 2/4 whatever the order
    assert sklearn_average_precision(s, [1, 1, 0, 0]) == pytest.approx(0.5)
    # -0.0 and 0.0 are equal scores; float32 keeps ties too
    assert average_precision([0.0, -0.0, 1.0],
                             [0, 1, 0]) == pytest.approx(1 / 3)
    s32 = np.array([0.5, 0.5, 0.5, 0.25], dtype=np.float32)
    assert average_precision(s32, [0, 0, 1, 1]) == pytest.approx(
        (1 / 3 + 2 / 4) / 2)


def test_known_values_and_edge_cases():
    assert average_precision([3, 2, 1], [1, 0, 1]) == pytest.approx(
        (1 + 2 / 3) / 2)
    assert average_precision([3, 2, 1], [0, 0, 0]) != average_precision(
        [3, 2, 1], [0, 0, 0])  # NaN when G == 0
    assert average_precision_from_ranks([1, 2], 4) == pytest.approx(0.5)
    with pytest.raises(ValueError, match='n_relevant'):
        average_precision_from_ranks([1, 2, 3], 2)
    with pytest.raises(ValueError, match=r'shape \[3\]'):
        average_precision([1, 2, 3], [1, 0])
    with pytest.raises(ValueError, match='finite'):
        average_precision([1, np.nan], [1, 0])
    with pytest.raises(ValueError, match='1-D'):
        average_precision(np.zeros((2, 2)), np.zeros((2, 2)))


@pytest.mark.parametrize('tie_levels', [2, 1000])
def test_batch_and_micro_match_loops(tie_levels):
    rng = np.random.default_rng(10 + tie_levels)
    scores, relevant = random_lists(rng, 12, tie_levels)
    batch = batch_average_precision(scores, relevant)
    np.testing.assert_allclose(
        batch, [loop_ap(s, r) for s, r in zip(scores, relevant)])
    cat_s, cat_r = np.concatenate(scores), np.concatenate(relevant)
    assert micro_average_precision(scores, relevant) == pytest.approx(
        loop_ap(cat_s, cat_r))
    g = int(cat_r.sum()) + 5
    assert micro_average_precision(scores, relevant, g) == pytest.approx(
        loop_ap(cat_s, cat_r, g))
    assert sklearn_micro_average_precision(scores, relevant) == pytest.approx(
        loop_sklearn(list(cat_s), list(cat_r)))
    # 2-D input
    s2 = rng.integers(0, tie_levels, (4, 7)).astype(float)
    r2 = rng.random((4, 7)) < 0.5
    r2[:, 0] = True
    np.testing.assert_allclose(
        batch_average_precision(s2, r2),
        [loop_ap(s, r) for s, r in zip(s2, r2)])


@pytest.mark.parametrize('tie_levels', [2, 3, 1000])
@pytest.mark.parametrize('n_lists', [1, 3, 40])
def test_pooled_ranks_match_a_pooled_walk(tie_levels, n_lists):
    """Both ways of pooled_ranks (counting for few chosen items, sorting
    the concatenation for many) give the ranks of a stable pooled sort."""
    rng = np.random.default_rng(tie_levels * 100 + n_lists)
    scores, relevant = random_lists(rng, n_lists, tie_levels)
    orders = [np.argsort(-s, kind='stable') for s in scores]
    sorted_lists = [s[o] for s, o in zip(scores, orders)]
    for density in (0.05, 1.0):  # few chosen items (counting), all (sort)
        chosen = [r & (rng.random(r.size) < density) for r in relevant]
        local = [np.flatnonzero(c[o]) + 1 for c, o in zip(chosen, orders)]
        got = pooled_ranks(sorted_lists, local)
        items = [(j, i) for j, s in enumerate(scores) for i in range(s.size)]
        items.sort(key=lambda ji: -scores[ji[0]][ji[1]])  # stable
        rank = {ji: k for k, ji in enumerate(items, 1)}
        for j, c in enumerate(chosen):
            # chosen items in their list's stable order
            expected = [rank[(j, i)] for i in orders[j] if c[i]]
            np.testing.assert_array_equal(got[j], expected)


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
def test_stable_descending_order_is_the_stable_argsort(dtype):
    rng = np.random.default_rng(5)
    for levels in (1, 3, 50, 10**9):
        s = rng.integers(0, levels, 5000).astype(dtype)
        s[::7] = -0.0  # -0.0 ties with 0.0
        s[1::7] = 0.0
        np.testing.assert_array_equal(
            stable_descending_order(s), np.argsort(-s, kind='stable'))
    assert stable_descending_order(np.zeros(0)).size == 0
