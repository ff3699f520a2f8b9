"""One statistic of a column per group ("average tip by day"): a table and a bar chart."""

from __future__ import annotations

from typing import Any

from .base import Param, Template, number

CODE = '''\
from jupyter_analyst.runtime import save_metrics, save_table

$params
result = $frame.groupby(group_column, observed=True)[value_column].agg(statistic)
save_table(result.to_frame(), "by_group")
save_metrics({f"{statistic} {group}": round(float(value), 4) for group, value in result.items()})
result.plot.bar(title=f"{statistic} of {value_column} by {group_column}", ylabel=value_column)
print(result.to_string())
'''


def insights(metrics: dict[str, Any], bindings: dict[str, Any]) -> list[str]:
    statistic = bindings.get("statistic", "mean")
    values = {k.removeprefix(f"{statistic} "): v for k, v in metrics.items()
              if k.startswith(f"{statistic} ") and isinstance(v, (int, float))}
    if not values:
        return []
    high = max(values, key=values.get)
    low = min(values, key=values.get)
    return [f"The {statistic} of {bindings.get('value_column')} is highest for {high} "
            f"({number(values[high])}) and lowest for {low} ({number(values[low])})."]


TEMPLATE = Template(
    name="group_statistic",
    description="One statistic (mean, median, sum, count, min, max, std, var) per group.",
    example="average {numeric} by {group}",
    params=(
        Param("value_column", "column", "the column summarised",
              '$frame.select_dtypes("number").columns[0]'),
        Param("group_column", "column", "the column that defines the groups",
              '$frame.select_dtypes(exclude="number").columns[0]'),
        Param("statistic", "choice", "how each group is summarised", '"mean"',
              ("mean", "median", "sum", "count", "min", "max", "std", "var")),
    ),
    code=CODE,
    insights=insights,
)
