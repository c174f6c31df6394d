"""Plain-text table of metrics, as printed by the test tools."""
from typing import Any, Mapping

import numpy as np

__all__ = ['format_metrics_table']


def format_metrics_table(metrics: Mapping[str, Any],
                         title: str = 'Retrieval metrics') -> str:
    """A plain-text table of metric names and values.

    Args:
        metrics (dict): name -> value (floats printed with 4 decimals).
        title (str): first line.

    Returns:
        str: the table (no trailing newline).
    """
    rows = []
    for name, value in metrics.items():
        if isinstance(value, (float, np.floating)):
            text = f'{float(value):.4f}'
        else:
            text = str(value)
        rows.append((str(name), text))
    w1 = max([len('metric')] + [len(r[0]) for r in rows])
    w2 = max([len('value')] + [len(r[1]) for r in rows])
    sep = f'+-{"-" * w1}-+-{"-" * w2}-+'
    lines = [title, sep, f'| {"metric":<{w1}} | {"value":>{w2}} |', sep]
    lines += [f'| {n:<{w1}} | {v:>{w2}} |' for n, v in rows]
    lines.append(sep)
    return '\n'.join(lines)
