"""Distribution of one numeric column: statistics, skew, outliers and a histogram."""

from __future__ import annotations

from typing import Any

from .base import Param, Template, finite, number

CODE = '''\
# Distribution of one numeric column: summary statistics, skewness, outliers and a histogram.
import matplotlib.pyplot as plt
import pandas as pd
from jupyter_analyst.runtime import save_metrics

$params

values = pd.to_numeric($frame[column], errors="coerce").dropna()
q1, median, q3 = values.quantile([0.25, 0.5, 0.75])
# Tukey's rule: points more than 1.5 interquartile ranges outside the middle half.
iqr = q3 - q1
outliers = values[(values < q1 - 1.5 * iqr) | (values > q3 + 1.5 * iqr)]

save_metrics({
    "count": int(values.count()),
    "missing": int($frame[column].isna().sum()),
    "mean": float(values.mean()),
    "median": float(median),
    "std": float(values.std()),
    "min": float(values.min()),
    "q1": float(q1),
    "q3": float(q3),
    "max": float(values.max()),
    "sum": float(values.sum()),
    "skewness": float(values.skew()),
    "excess_kurtosis": float(values.kurt()),
    "outliers": int(len(outliers)),
})

fig, ax = plt.subplots(figsize=(8, 4.5))
ax.hist(values, bins="auto", color="steelblue", edgecolor="white")
ax.axvspan(q1, q3, color="grey", alpha=0.15, label="middle 50%")
ax.axvline(values.mean(), color="darkorange", label=f"mean {values.mean():.3g}")
ax.axvline(median, color="black", linestyle="--", label=f"median {median:.3g}")
ax.set_title(f"Distribution of {column}")
ax.set_xlabel(str(column))
ax.set_ylabel("count")
ax.legend()

print(f"{column}: mean {values.mean():.3g}, median {median:.3g}, std {values.std():.3g}, "
      f"skewness {values.skew():.2f}, {len(outliers)} outliers of {len(values)} values.")
'''


def insights(metrics: dict[str, Any], bindings: dict[str, Any]) -> list[str]:
    column = bindings.get("column", "The column")
    found = []
    if finite(metrics, "mean", "median", "std"):
        found.append(
            f"{column} has mean {number(metrics['mean'])}, median {number(metrics['median'])} "
            f"and standard deviation {number(metrics['std'])}."
        )
    if finite(metrics, "min", "max"):
        found.append(f"Values range from {number(metrics['min'])} to {number(metrics['max'])}.")
    if finite(metrics, "skewness"):
        skew = metrics["skewness"]
        side = ("right (a long tail of high values)" if skew > 0
                else "left (a long tail of low values)")
        if abs(skew) < 0.5:
            shape = "roughly symmetric"
        elif abs(skew) < 1:
            shape = f"moderately skewed to the {side}"
        else:
            shape = f"strongly skewed to the {side}"
        found.append(f"The distribution is {shape}: skewness {number(skew)}.")
    if finite(metrics, "outliers", "count") and metrics["outliers"] > 0:
        found.append(
            f"{number(metrics['outliers'])} of {number(metrics['count'])} values are outliers "
            "by Tukey's rule (far outside the middle half of the data)."
        )
    return found


TEMPLATE = Template(
    name="distribution",
    description="Distribution of a numeric column: statistics, skewness, outliers, histogram.",
    example="Show the distribution of {numeric}",
    params=(
        Param("column", "column", "the column to describe",
              '$frame.select_dtypes("number").columns[0]'),
    ),
    code=CODE,
    insights=insights,
)
