"""One statistic of a column per group ("average tip by day"), or each group's share of a total
("share of total sales by region"); per group, or per pair of groups of two columns ("average
tip by day and sex", "how many rows by species and island"): a table and a bar chart, grouped
bars for two columns."""

from __future__ import annotations

from typing import Any

from .base import Param, Template, number

# Both templates group the rows, compute `result` per group (or pair of groups), then report.
GROUPS = '''\
from jupyter_analyst.runtime import save_metrics, save_table

$params
grouped = $frame.groupby([group_column, by_column] if by_column else group_column, observed=True)
'''
REPORT = '''\
save_metrics({f"{statistic} {' / '.join(map(str, k)) if by_column else k}": round(float(v), 4)
              for k, v in result.items()})
table = result.unstack(by_column) if by_column else result  # by_column's groups as columns
save_table(table, "by_group")
what = f"{statistic} of {value_column or 'rows'}"
table.plot.bar(title=f"{what} by {' and '.join(result.index.names)}", ylabel=value_column)
'''
STATISTIC = '''\
result = grouped.size() if value_column is None else grouped[value_column].agg(statistic)
'''
SHARE = '''\
# Each group's percent of the total (of value_column, or of the rows), over the groups shown.
result = grouped.size() if value_column is None else grouped[value_column].sum()
result = 100 * result / result.sum()
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
    rows = "value_column" in bindings and bindings["value_column"] is None
    value = "rows" if rows else bindings.get("value_column", "the value")
    what = "The number of rows" if rows and statistic == "count" else \
        f"The {statistic} of {value}"
    unit = "%" if statistic == "share" else ""
    pairs = f" ({bindings.get('group_column')} / {by})" if by else ""
    return [f"{what} is highest for {high} ({number(values[high])}{unit}) and lowest for {low} "
            f"({number(values[low])}{unit}){pairs}."]


VALUE = Param("value_column", "optional_column", "the column summarised (None: rows counted)",
              '$frame.select_dtypes("number").columns[0]')
GROUP = Param("group_column", "column", "the column that defines the groups",
              '$frame.select_dtypes(exclude="number").columns[0]')
BY = Param("by_column", "optional_column",
           "a second column of groups, the table's columns (None: one column of groups)", "None")
# name, description, example, the statistic (or the share) and how `result` is computed
KINDS = (
    ("group_statistic", "One statistic (mean, median, sum, count, min, max, std, var) per group, "
     "or per pair of groups of two columns.", "average {numeric} by {group}",
     Param("statistic", "choice", "how each group is summarised", '"mean"',
           ("mean", "median", "sum", "count", "min", "max", "std", "var")), STATISTIC),
    ("group_share", "Each group's share of the total of a column, or of the rows, in percent; "
     "per group or per pair of groups of two columns.", "share of total {numeric} by {group}",
     Param("statistic", "choice", "each group's percent of the total", '"share"', ("share",)),
     SHARE),
)
TEMPLATES = [
    Template(name=name, description=description, example=example,
             params=(VALUE, GROUP, statistic, BY), code=GROUPS + result + REPORT,
             insights=insights)
    for name, description, example, statistic, result in KINDS
]
