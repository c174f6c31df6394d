"""Ranked search results as a table, JSON and CSV."""
import csv
import json
import math
from typing import Dict, List, Sequence

__all__ = [
    'format_results', 'write_results_json', 'write_results_csv', 'json_safe'
]


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return '-'
    return f'{value:.4f}'


def format_results(results: Sequence[Dict]) -> str:
    """Plain-text ranked tables, one per query.

    Args:
        results (sequence[dict]): per query ``dict(query, results=[dict(
            rank, id, path, score, global_score), ...])``.

    Returns:
        str: the tables.
    """
    blocks = []
    for item in results:
        rows = item['results']
        name_w = max([len('video')] + [len(r['id']) for r in rows])
        lines = [
            f"query: {item['query']}",
            f"{'rank':>4}  {'video':<{name_w}}  {'score':>7}  "
            f"{'global':>7}"
        ]
        for r in rows:
            lines.append(f"{r['rank']:>4}  {r['id']:<{name_w}}  "
                         f"{_fmt(r['score']):>7}  "
                         f"{_fmt(r.get('global_score')):>7}")
        if not rows:
            lines.append('  (no result)')
        blocks.append('\n'.join(lines))
    return '\n\n'.join(blocks)


def json_safe(obj):
    """``obj`` with NaN floats replaced by None (valid JSON)."""
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def write_results_json(path: str, results: Sequence[Dict], meta: Dict) -> None:
    """Write ``{"meta": ..., "queries": results}`` as JSON (NaN -> null)."""
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(
            json_safe(dict(meta=meta, queries=list(results))), f, indent=1)


def write_results_csv(path: str, results: Sequence[Dict]) -> None:
    """Write one CSV row per (query, result): ``query, rank, id, path,
    score, global_score``."""
    fields: List[str] = [
        'query', 'rank', 'id', 'path', 'score', 'global_score'
    ]
    with open(path, 'w', newline='', encoding='utf-8') as f:
        writer = csv.writer(f)
        writer.writerow(fields)
        for item in results:
            for r in item['results']:
                writer.writerow([
                    item['query'], r['rank'], r['id'],
                    r.get('path', ''), '' if r['score'] is None or
                    (isinstance(r['score'], float) and math.isnan(r['score']))
                    else f"{r['score']:.6f}", '' if r.get('global_score')
                    is None else f"{r['global_score']:.6f}"
                ])
