"""A numeric column compared across the groups of another column."""

from __future__ import annotations

from typing import Any

from .base import Param, Template, finite, number

CODE = '''\
# $frame[value_column] compared across the groups of $frame[group_column].
import matplotlib.pyplot as plt
import pandas as pd
from jupyter_analyst.runtime import save_metrics, save_table

$params

values = pd.to_numeric($frame[value_column], errors="coerce")
groups = values.groupby($frame[group_column], observed=True)
table = groups.agg(["count", "mean", "median", "std", "var", "min", "max", "sum"])
table = table.sort_values(statistic, ascending=False)
save_table(table, "comparison")

ranked = table[statistic]
save_metrics({
    "groups": len(table),
    "statistic": statistic,
    "highest_group": str(ranked.index[0]),
    "highest_value": float(ranked.iloc[0]),
    "lowest_group": str(ranked.index[-1]),
    "lowest_value": float(ranked.iloc[-1]),
    "overall_value": float(values.agg(statistic)),
})

# Left: the chosen statistic per group. Right: each group's full spread.
fig, (ax_bar, ax_box) = plt.subplots(1, 2, figsize=(12, 4.5))
labels = [str(name) for name in ranked.index]
ax_bar.bar(labels, ranked, color="steelblue")
ax_bar.set_title(f"{statistic.capitalize()} of {value_column} by {group_column}")
ax_bar.set_ylabel(f"{statistic} of {value_column}")
ax_bar.tick_params(axis="x", rotation=45)
spreads = [values[$frame[group_column] == name].dropna() for name in ranked.index]
ax_box.boxplot(spreads)
ax_box.set_xticks(range(1, len(labels) + 1), labels, rotation=45)
ax_box.set_title(f"Spread of {value_column} by {group_column}")
fig.tight_layout()

print(f"{statistic} of {value_column} by {group_column}: highest {ranked.index[0]} "
      f"({ranked.iloc[0]:.4g}), lowest {ranked.index[-1]} ({ranked.iloc[-1]:.4g}).")
'''


def insights(metrics: dict[str, Any], bindings: dict[str, Any]) -> list[str]:
    value = bindings.get("value_column", "the value")
    group = bindings.get("group_column", "group")
    statistic = metrics.get("statistic", bindings.get("statistic", "mean"))
    found = []
    if finite(metrics, "highest_value", "lowest_value", "groups"):
        found.append(
            f"Across {number(metrics['groups'])} groups of {group}, the {statistic} of {value} is "
            f"highest for {metrics.get('highest_group')} ({number(metrics['highest_value'])}) "
            f"and lowest for {metrics.get('lowest_group')} ({number(metrics['lowest_value'])})."
        )
    if finite(metrics, "overall_value"):
        found.append(f"Over all rows the {statistic} is {number(metrics['overall_value'])}.")
    return found


TEMPLATE = Template(
    name="group_comparison",
    description="A numeric column compared across groups: a table per group, bars and box plots.",
    example="Compare the average {numeric} by {group}",
    params=(
        Param("value_column", "column", "the numbers to compare",
              '$frame.select_dtypes("number").columns[0]'),
        Param("group_column", "column", "the groups",
              '$frame.select_dtypes(exclude="number").columns[0]'),
        Param("statistic", "choice", '"mean", "median", "sum", "min", "max", "std" or "var"',
              '"mean"', ("mean", "median", "sum", "min", "max", "std", "var")),
    ),
    code=CODE,
    insights=insights,
)
