"""Similarities files: write the loop's scores, read them back.

Two forms, chosen by the file's extension:

* **compact** (``.npz``, the default of ``tools/test.py
  --save-similarities``): three arrays, ``query_ids`` (str ``[Q]``),
  ``target_ids`` (str ``[T]``) and ``scores`` (float32 ``[Q, T]``, NaN for a
  pair that was not scored). Read back as a
  :class:`~hapvr_mm.evaluation.annotations.ScoreMatrix`, which every
  annotation evaluates directly.
* **dict of dicts** ``{query: {target: score}}`` as JSON (``.json`` or any
  other extension) or pickle (``.pkl`` / ``.pickle`` / ``.pk``); ``{query:
  (target_ids, scores)}`` is read too.

The form is chosen by the extension only, never by the content: a pickle
named ``.json`` fails as bad JSON. Nothing read can run code: ``.npz`` is
loaded with ``allow_pickle=False`` and pickles with
:func:`~hapvr_mm.utils.safe_io.safe_pickle_load` (plain data only).
"""
import json
import os.path as osp
import pickle
from typing import Any, Dict, Mapping, Sequence, Tuple, Union

import numpy as np

from hapvr_mm.evaluation.annotations import ScoreMatrix
from hapvr_mm.utils.safe_io import (UnsafePickleError, data_format,
                                    safe_pickle_load)

__all__ = [
    'pieces_to_similarities', 'pieces_to_matrix', 'write_similarities',
    'load_similarities', 'read_scores', 'similarities_to_scores',
    'write_score_matrix', 'load_score_matrix', 'COMPACT_EXTENSIONS'
]

#: Extensions written and read as the compact ``.npz`` form.
COMPACT_EXTENSIONS = ('.npz', )

Similarities = Mapping[str, Mapping[str, float]]


def _is_compact(path: str) -> bool:
    return str(path).lower().endswith(COMPACT_EXTENSIONS)


def pieces_to_similarities(pieces: Sequence[Mapping[str, Any]]
                           ) -> Dict[str, Dict[str, float]]:
    """Merge score pieces into ``{query: {target: score}}``.

    Args:
        pieces (sequence[dict]): ``query_id``, ``target_ids`` ``[n]``,
            ``scores`` ``[n]``, in order; pieces of one query are merged in
            the given order (first occurrence of a target wins).

    Returns:
        dict: query id -> (target id -> float score).
    """
    out: Dict[str, Dict[str, float]] = {}
    for piece in pieces:
        row = out.setdefault(str(piece['query_id']), {})
        for tid, score in zip(
                np.asarray(piece['target_ids']).tolist(),
                np.asarray(piece['scores'], dtype=np.float64).tolist()):
            row.setdefault(str(tid), score)
    return out


def pieces_to_matrix(pieces: Sequence[Mapping[str, Any]]) -> ScoreMatrix:
    """Merge score pieces into a :class:`ScoreMatrix`.

    Queries keep the order of their first piece, targets the order of their
    first appearance; a pair scored twice keeps its first score; pairs never
    scored are NaN.

    Args:
        pieces (sequence[dict]): ``query_id``, ``target_ids`` ``[n]``,
            ``scores`` ``[n]``.

    Returns:
        ScoreMatrix: query ids ``[Q]``, target ids ``[T]``, scores
        float32 ``[Q, T]``.
    """
    rows: Dict[str, int] = {}
    columns: Dict[str, int] = {}
    placed = []
    # the pieces of one rank share their targets: look each list up once
    seen: Dict[Tuple[str, str, int], Tuple[np.ndarray, np.ndarray]] = {}
    for piece in pieces:
        ids = np.asarray(piece['target_ids']).astype(str)
        key = ((str(ids[0]), str(ids[-1]), ids.size) if ids.size else
               ('', '', 0))
        hit = seen.get(key)
        if hit is None or not np.array_equal(hit[0], ids):
            cols = np.fromiter(
                (columns.setdefault(t, len(columns)) for t in ids.tolist()),
                dtype=np.int64,
                count=ids.size)
            hit = seen[key] = (ids, cols)
        row = rows.setdefault(str(piece['query_id']), len(rows))
        placed.append(
            (row, hit[1], np.asarray(piece['scores'], dtype=np.float32)))
    scores = np.full((len(rows), len(columns)), np.nan, dtype=np.float32)
    for row, cols, values in reversed(placed):  # first score wins
        scores[row, cols] = values
    return ScoreMatrix(list(rows), list(columns), scores)


def write_score_matrix(matrix: ScoreMatrix, path: str) -> str:
    """Write a score matrix as an uncompressed ``.npz``.

    Args:
        matrix (ScoreMatrix): The scores.
        path (str): Output file (``.npz``).

    Returns:
        str: ``path``.
    """
    with open(path, 'wb') as f:
        np.savez(
            f,
            query_ids=matrix.query_ids,
            target_ids=matrix.target_ids,
            scores=matrix.scores)
    return path


def load_score_matrix(path: str) -> ScoreMatrix:
    """Read a ``.npz`` written by :func:`write_score_matrix`.

    Args:
        path (str): The file.

    Returns:
        ScoreMatrix: The scores.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'similarities file not found: {path}')
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = {'query_ids', 'target_ids', 'scores'} - set(data.files)
            if missing:
                raise ValueError(f'missing arrays {sorted(missing)}')
            return ScoreMatrix(data['query_ids'], data['target_ids'],
                               data['scores'])
    except Exception as err:  # noqa: BLE001 - any read failure
        raise ValueError(f'{path} is not a compact similarities file '
                         '(.npz with query_ids [Q], target_ids [T], scores '
                         f'[Q, T]): {type(err).__name__}: {err}') from err


def write_similarities(sims: Union[Similarities, ScoreMatrix],
                       path: str) -> str:
    """Write similarities in the form the extension names.

    Args:
        sims (dict | ScoreMatrix): ``{query: {target: score}}`` or a score
            matrix.
        path (str): ``*.npz`` writes the compact form, ``*.pkl`` /
            ``*.pickle`` / ``*.pk`` a pickled dict of dicts, anything else
            JSON.

    Returns:
        str: ``path``.
    """
    if _is_compact(path):
        if not isinstance(sims, ScoreMatrix):
            sims = pieces_to_matrix([
                dict(
                    query_id=q,
                    target_ids=list(row.keys()),
                    scores=list(row.values())) for q, row in sims.items()
            ])
        return write_score_matrix(sims, path)
    if isinstance(sims, ScoreMatrix):
        sims = {
            q: dict(zip(ids.tolist(), values.tolist()))
            for q, (ids, values) in sims.items()
        }
    if data_format(path) == 'pickle':
        with open(path, 'wb') as f:
            pickle.dump({q: dict(t) for q, t in sims.items()}, f)
    else:
        with open(path, 'w', encoding='utf-8') as f:
            json.dump(sims, f)
    return path


def _load_dict_file(path: str) -> Mapping:
    """Read a dict-of-dicts similarities file in its extension's format.

    Args:
        path (str): ``.pkl`` / ``.pickle`` / ``.pk`` (restricted pickle),
            anything else JSON.

    Returns:
        Mapping: the file's top-level mapping.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'similarities file not found: {path}')
    fmt = data_format(path, default='json')
    try:
        if fmt == 'pickle':
            data = safe_pickle_load(path)
        else:
            with open(path, 'r', encoding='utf-8') as f:
                data = json.load(f)
    except UnsafePickleError:
        raise
    except Exception as err:  # noqa: BLE001 - any parse failure
        raise ValueError(f'{path} is not a {fmt} file of '
                         '{query: {target: score}} (the format is chosen by '
                         'the extension: .npz, .pkl/.pickle/.pk, else JSON; '
                         f'{type(err).__name__}: {err})') from err
    if not isinstance(data, Mapping):
        raise ValueError(f'{path}: expected {{query: {{target: score}}}}, '
                         f'got {type(data).__name__}')
    return data


def read_scores(
        path: str
) -> Union[ScoreMatrix, Dict[str, Tuple[np.ndarray, np.ndarray]]]:
    """Read a similarities file in the form the annotations evaluate.

    Args:
        path (str): ``.npz`` (compact), JSON or pickle.

    Returns:
        ScoreMatrix | dict: a mapping query id -> ``(target_ids [n],
        scores [n])``.
    """
    if _is_compact(path):
        return load_score_matrix(path)
    out = {}
    for query, row in _load_dict_file(path).items():
        if isinstance(row, Mapping):
            ids = np.asarray(list(row.keys())).astype(str)
            values = np.fromiter(
                row.values(), dtype=np.float64, count=len(row))
        elif isinstance(row, (tuple, list)) and len(row) == 2:
            ids = np.asarray(row[0]).astype(str)
            values = np.asarray(row[1], dtype=np.float64)
        else:
            raise ValueError(f'{path}: entry of query {query!r} must be '
                             f'{{target: score}} or (target_ids, scores), '
                             f'got {type(row).__name__}')
        if ids.shape != values.shape:
            raise ValueError(f'{path}: query {query!r} has {ids.size} target '
                             f'ids but {values.size} scores')
        out[str(query)] = (ids, values)
    return out


def load_similarities(path: str) -> Dict[str, Dict[str, float]]:
    """Read any similarities file as ``{query: {target: score}}``.

    Args:
        path (str): ``.npz`` (compact), JSON or pickle.

    Returns:
        dict: query id -> (target id -> float score), scored pairs only.
    """
    return {
        q: dict(zip(ids.tolist(),
                    np.asarray(values, np.float64).tolist()))
        for q, (ids, values) in read_scores(path).items()
    }


def similarities_to_scores(sims: Similarities
                           ) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
    """``{query: {target: score}}`` to the annotations' score format.

    Args:
        sims (dict): similarities.

    Returns:
        dict: query id -> ``(target_ids [n] str, scores [n] float64)``.
    """
    return {
        q: (np.asarray(list(row.keys()), dtype=str),
            np.asarray(list(row.values()), dtype=np.float64))
        for q, row in sims.items()
    }
