"""How many rows, columns and missing values a frame has."""

from __future__ import annotations

from typing import Any

from .base import Template, finite, number

CODE = '''\
# Rows, columns and missing values of $frame.
from jupyter_analyst.runtime import save_metrics, save_table

$params
missing = $frame.isna().sum()
save_table(missing[missing > 0].rename("missing").to_frame(), "missing_by_column")
save_metrics({"rows": len($frame), "columns": $frame.shape[1], "missing_values": int(missing.sum()),
              "columns_with_missing": int((missing > 0).sum())})
print(f"{len($frame)} rows, {$frame.shape[1]} columns, {int(missing.sum())} missing values.")
'''


def insights(metrics: dict[str, Any], bindings: dict[str, Any]) -> list[str]:
    if not finite(metrics, "rows", "columns", "missing_values", "columns_with_missing"):
        return []
    return [f"{number(metrics['rows'])} rows and {number(metrics['columns'])} columns, with "
            f"{number(metrics['missing_values'])} missing values in "
            f"{number(metrics['columns_with_missing'])} columns."]


TEMPLATE = Template(
    name="counts",
    description="Number of rows, columns and missing values.",
    example="How many rows are there?",
    params=(),
    code=CODE,
    insights=insights,
)
