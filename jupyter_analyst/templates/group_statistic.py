"""One statistic of a column per group ("average tip by day"), or per pair of groups of two
columns ("average tip by day and sex", "how many rows by species and island"): a table and
a bar chart, grouped bars for two columns."""

from __future__ import annotations

from typing import Any

from .base import Param, Template, number

CODE = '''\
from jupyter_analyst.runtime import save_metrics, save_table

$params
grouped = $frame.groupby([group_column, by_column] if by_column else group_column, observed=True)
result = grouped[value_column].agg(statistic) if value_column else grouped.size()
save_metrics({f"{statistic} {' / '.join(map(str, k)) if by_column else k}": round(float(v), 4)
              for k, v in result.items()})
table = result.unstack(by_column) if by_column else result  # by_column's groups as columns
save_table(table, "by_group")
what = f"{statistic} of {value_column or 'rows'}"
table.plot.bar(title=f"{what} by {' and '.join(result.index.names)}", ylabel=value_column)
'''


def insights(metrics: dict[str, Any], bindings: dict[str, Any]) -> list[str]:
    statistic = bindings.get("statistic", "mean")
    values = {k.removeprefix(f"{statistic} "): v for k, v in metrics.items()
              if k.startswith(f"{statistic} ") and isinstance(v, (int, float))}
    if not values:
        return []
    high = max(values, key=values.get)
    low = min(values, key=values.get)
    by = bindings.get("by_column")
    counted = "value_column" in bindings and bindings["value_column"] is None
    what = "The number of rows" if counted else \
        f"The {statistic} of {bindings.get('value_column', 'the value')}"
    pairs = f" ({bindings.get('group_column')} / {by})" if by else ""
    return [f"{what} is highest for {high} ({number(values[high])}) and lowest for {low} "
            f"({number(values[low])}){pairs}."]


TEMPLATE = Template(
    name="group_statistic",
    description="One statistic (mean, median, sum, count, min, max, std, var) per group, or "
                "per pair of groups of two columns.",
    example="average {numeric} by {group}",
    params=(
        Param("value_column", "optional_column", "the column summarised (None: rows counted)",
              '$frame.select_dtypes("number").columns[0]'),
        Param("group_column", "column", "the column that defines the groups",
              '$frame.select_dtypes(exclude="number").columns[0]'),
        Param("statistic", "choice", "how each group is summarised", '"mean"',
              ("mean", "median", "sum", "count", "min", "max", "std", "var")),
        Param("by_column", "optional_column",
              "a second column of groups, the table's columns (None: one column of groups)",
              "None"),
    ),
    code=CODE,
    insights=insights,
)
