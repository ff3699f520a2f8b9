"""The most frequent values of one column, with counts and shares."""

from __future__ import annotations

from typing import Any

from .base import Param, Template, finite, number, percent

CODE = '''\
# The most frequent values of $frame[column], with counts and shares.
import matplotlib.pyplot as plt
import pandas as pd
from jupyter_analyst.runtime import save_metrics, save_table

$params

counts = $frame[column].value_counts(dropna=False)
table = pd.DataFrame({"count": counts, "share": counts / counts.sum()})
top = table.head(top_n)
save_table(top, "value_counts")

save_metrics({
    "rows": int(counts.sum()),
    "distinct_values": len(counts),
    "most_common": str(counts.index[0]),
    "most_common_count": int(counts.iloc[0]),
    "most_common_share": float(table["share"].iloc[0]),
    "missing": int($frame[column].isna().sum()),
})

# Horizontal bars, most common at the top.
fig, ax = plt.subplots(figsize=(8, max(3, 0.4 * len(top) + 1)))
ax.barh([str(value) for value in top.index[::-1]], top["count"].iloc[::-1], color="steelblue")
ax.set_title(f"Most common values of {column}")
ax.set_xlabel("rows")
fig.tight_layout()

print(f"{column}: {len(counts)} distinct values; most common {counts.index[0]} "
      f"({int(counts.iloc[0])} rows, {table['share'].iloc[0]:.1%}).")
'''


def insights(metrics: dict[str, Any], bindings: dict[str, Any]) -> list[str]:
    column = bindings.get("column", "The column")
    found = []
    if finite(metrics, "distinct_values", "rows"):
        found.append(
            f"{column} takes {number(metrics['distinct_values'])} distinct values over "
            f"{number(metrics['rows'])} rows."
        )
    if finite(metrics, "most_common_count", "most_common_share"):
        found.append(
            f"The most common is {metrics.get('most_common')} with "
            f"{number(metrics['most_common_count'])} rows "
            f"({percent(metrics['most_common_share'])})."
        )
    if finite(metrics, "missing") and metrics["missing"] > 0:
        found.append(f"{number(metrics['missing'])} rows have no value.")
    return found


TEMPLATE = Template(
    name="value_counts",
    description="The most frequent values of a column, with counts, shares and a bar chart.",
    example="What are the most common values of {group}?",
    params=(
        Param("column", "column", "the column to count",
              '$frame.select_dtypes(exclude="number").columns[0]'),
        Param("top_n", "int", "show this many values", "10"),
    ),
    code=CODE,
    insights=insights,
)
