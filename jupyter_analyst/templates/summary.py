"""Overview of a whole frame: size, column types, missing values, statistics, histograms."""

from __future__ import annotations

from typing import Any

from .base import Param, Template, finite, number

CODE = '''\
# Overview of $frame: size, column types, missing values and summary statistics.
import matplotlib.pyplot as plt
import pandas as pd
from jupyter_analyst.runtime import save_metrics, save_table

$params

selected = $frame[columns] if columns else $frame
# Cells holding lists or dicts cannot be counted as they are; count their text instead.
countable = selected.apply(
    lambda column: column.map(str, na_action="ignore") if column.dtype == object else column)
# Durations are "number" to pandas, but histograms cannot draw them.
numeric = selected.select_dtypes("number", exclude="timedelta")
missing = selected.isna().sum()

# One row per column: its type, missing and distinct values, then the usual statistics.
overview = pd.DataFrame({
    "dtype": selected.dtypes.astype(str),
    "missing": missing,
    "distinct": countable.nunique(),
})
if not numeric.empty:
    overview = overview.join(numeric.describe().T.drop(columns="count"))
save_table(overview, "summary")

duplicate_rows = int(countable.duplicated().sum())
save_metrics({
    "rows": len(selected),
    "columns": selected.shape[1],
    "numeric_columns": numeric.shape[1],
    "missing_values": int(missing.sum()),
    "duplicate_rows": duplicate_rows,
})

# A small histogram per numeric column shows ranges and skew at a glance.
shown = list(numeric.columns[:max_plots])
if shown:
    ncols = min(3, len(shown))
    nrows = -(-len(shown) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4 * ncols, 3 * nrows), squeeze=False)
    for ax, name in zip(axes.flat, shown):
        ax.hist(numeric[name].dropna(), bins=30, color="steelblue", edgecolor="white")
        ax.set_title(str(name))
    for ax in axes.flat[len(shown):]:
        ax.set_visible(False)
    fig.suptitle("Numeric columns of $frame")
    fig.tight_layout()

print(f"$frame: {len(selected)} rows, {selected.shape[1]} columns "
      f"({numeric.shape[1]} numeric), {int(missing.sum())} missing values, "
      f"{duplicate_rows} duplicate rows.")
'''


def insights(metrics: dict[str, Any], bindings: dict[str, Any]) -> list[str]:
    frame = bindings.get("frame", "The frame")
    found = []
    if finite(metrics, "rows", "columns", "numeric_columns"):
        found.append(
            f"{frame} has {number(metrics['rows'])} rows and {number(metrics['columns'])} columns,"
            f" {number(metrics['numeric_columns'])} of them numeric."
        )
    if finite(metrics, "missing_values"):
        missing = metrics["missing_values"]
        found.append("There are no missing values." if missing == 0
                     else f"{number(missing)} values are missing (see the summary table).")
    if finite(metrics, "duplicate_rows") and metrics["duplicate_rows"] > 0:
        found.append(f"{number(metrics['duplicate_rows'])} rows are exact duplicates.")
    return found


TEMPLATE = Template(
    name="summary",
    description="Overview of a frame: size, types, missing values, statistics and histograms.",
    example="Give me an overview of the data",
    params=(
        Param("columns", "columns", "None means every column", "None"),
        Param("max_plots", "int", "at most this many histograms", "12"),
    ),
    code=CODE,
    insights=insights,
)
