"""The rows with the largest (or smallest) values of one numeric column."""

from __future__ import annotations

from typing import Any

from .base import Param, Template, finite, number

CODE = '''\
# The rows of $frame with the largest (or smallest) values of one column.
import matplotlib.pyplot as plt
import pandas as pd
from jupyter_analyst.runtime import save_metrics, save_table

$params

values = pd.to_numeric($frame[column], errors="coerce")
ranked = values.nlargest(n) if order == "largest" else values.nsmallest(n)
save_table($frame.loc[ranked.index], "top_rows")
# Each row by its name (the label column, else the index); dates without a midnight time.
names = ($frame[label] if label is not None else $frame.index.to_series()).loc[ranked.index]
if pd.api.types.is_datetime64_any_dtype(names) and (names == names.dt.normalize()).all():
    names = names.dt.strftime("%Y-%m-%d")
names = names.astype(str)

save_metrics({
    "rows_shown": len(ranked),
    "first_row": names.iloc[0],
    "first_value": float(ranked.iloc[0]),
    "last_value": float(ranked.iloc[-1]),
    "median_of_all": float(values.median()),
    "rows": int(values.count()),
})

# One bar per row, labelled by its name; the first-ranked row at the top.
fig, ax = plt.subplots(figsize=(8, max(3, 0.4 * len(ranked) + 1)))
ax.barh(list(names[::-1]), ranked.iloc[::-1], color="steelblue")
ax.axvline(values.median(), color="black", linestyle="--", label="median of all rows")
ax.set_title(f"{len(ranked)} {order} values of {column}")
ax.set_xlabel(str(column))
ax.set_ylabel(str(label) if label is not None else "row")
ax.legend()
fig.tight_layout()

print(f"{order.capitalize()} {column}: {ranked.iloc[0]:.4g} ({names.iloc[0]}) to "
      f"{ranked.iloc[-1]:.4g}; median of all {int(values.count())} rows {values.median():.4g}.")
'''


def insights(metrics: dict[str, Any], bindings: dict[str, Any]) -> list[str]:
    column = bindings.get("column", "the column")
    order = bindings.get("order", "largest")
    found = []
    if finite(metrics, "first_value", "last_value", "rows_shown"):
        towards = "down" if order == "largest" else "up"
        first = str(metrics.get("first_row"))
        found.append(
            f"The {order} {column} is {number(metrics['first_value'])} "
            f"({'row ' * first.isdigit()}{first})" + (
                f"; the {number(metrics['rows_shown'])} rows shown go {towards} to "
                f"{number(metrics['last_value'])}." if metrics["rows_shown"] > 1 else ".")
        )
    if finite(metrics, "median_of_all", "rows"):
        found.append(f"For comparison, the median over all {number(metrics['rows'])} rows is "
                     f"{number(metrics['median_of_all'])}.")
    return found


TEMPLATE = Template(
    name="top_rows",
    description="The rows with the largest or smallest values of a numeric column.",
    example="Show the top 5 rows by {numeric}",
    params=(
        Param("column", "column", "the column to rank by",
              '$frame.select_dtypes("number").columns[0]'),
        Param("n", "int", "how many rows", "10"),
        Param("order", "choice", '"largest" or "smallest"', '"largest"',
              ("largest", "smallest")),
        Param("label", "optional_column", "the column naming each row; None means the index",
              "None"),
    ),
    code=CODE,
    insights=insights,
)
