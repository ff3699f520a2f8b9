"""Correlation between numeric columns: matrix, heatmap and the strongest pairs."""

from __future__ import annotations

from typing import Any

from .base import ASSET_RETURNS, Param, Template, asset_params, finite, indented, number

CODE = '''\
# Correlation between numeric columns: the matrix, a heatmap and the strongest pairs.
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from jupyter_analyst.runtime import save_metrics, save_table

$params

if column_holds == "values" and symbol_column is None:
    numeric = $frame[columns] if columns else $frame.select_dtypes("number", exclude="timedelta")
else:
''' + indented(ASSET_RETURNS) + '''\
    # Prices are correlated through their returns: price levels that merely trend
    # correlate strongly whatever the assets do from one period to the next.
    numeric = asset_returns if column_holds == "prices" else asset_table
if numeric.shape[1] > max_columns:  # bounded: the most variable columns only
    numeric = numeric[numeric.var().nlargest(max_columns).index]
matrix = numeric.corr(method=method)
save_table(matrix.round(3), "correlation_matrix")

# Every pair once (the upper triangle), strongest first by absolute value.
upper = matrix.where(np.triu(np.ones(matrix.shape, dtype=bool), k=1))
pairs = upper.stack().dropna().reset_index()
pairs.columns = ["column_a", "column_b", "correlation"]
pairs = pairs.sort_values("correlation", key=abs, ascending=False, ignore_index=True)
save_table(pairs, "correlation_pairs")

metrics = {
    "columns_compared": numeric.shape[1],
    "strong_pairs": int((pairs["correlation"].abs() >= 0.5).sum()),  # |r| of 0.5 or more
}
if len(pairs):
    strongest = pairs.iloc[0]
    metrics["strongest_pair"] = f"{strongest['column_a']} ~ {strongest['column_b']}"
    metrics["strongest_correlation"] = float(strongest["correlation"])
save_metrics(metrics)

size = max(4, 0.8 * len(matrix) + 2)
fig, ax = plt.subplots(figsize=(size + 1, size))
image = ax.imshow(matrix, cmap="RdBu_r", vmin=-1, vmax=1)
labels = [str(name) for name in matrix.columns]
ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
ax.set_yticks(range(len(labels)), labels)
if len(labels) <= 12:  # numbers stay readable up to about a dozen columns
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{matrix.iat[i, j]:.2f}", ha="center", va="center", fontsize=8)
fig.colorbar(image, ax=ax, label=f"{method} correlation")
ax.set_title(f"{method.capitalize()} correlation")

if numeric.shape[1] == 2:  # a named pair: its scatter shows what r summarises
    fig, ax = plt.subplots(figsize=(6, 4.5))
    first, second = numeric.columns
    ax.scatter(numeric[first], numeric[second], alpha=0.6)
    ax.set_xlabel(str(first))
    ax.set_ylabel(str(second))
    ax.set_title(f"{second} against {first}: r = {matrix.iat[0, 1]:.2f}")

print(f"{numeric.shape[1]} numeric columns compared ({method}).")
for row in pairs.head(5).itertuples():
    print(f"  {row.column_a} ~ {row.column_b}: {row.correlation:+.2f}")
'''


def _strength(r: float) -> str:
    size = abs(r)
    if size >= 0.7:
        return "strong"
    if size >= 0.5:
        return "moderate"
    if size >= 0.3:
        return "weak"
    return "very weak"


def insights(metrics: dict[str, Any], bindings: dict[str, Any]) -> list[str]:
    found = []
    if bindings.get("column_holds") == "prices":
        found.append("These are correlations of the returns of each period, not of price "
                     "levels.")
    if finite(metrics, "strongest_correlation") and "strongest_pair" in metrics:
        r = metrics["strongest_correlation"]
        direction = "positive" if r > 0 else "negative"
        found.append(
            f"The strongest correlation is {metrics['strongest_pair']}: r = {number(r)}, "
            f"a {_strength(r)} {direction} relationship."
        )
    if finite(metrics, "strong_pairs", "columns_compared"):
        count = metrics["strong_pairs"]
        pairs = "pair is" if count == 1 else "pairs are"
        found.append(
            f"Across {number(metrics['columns_compared'])} numeric columns, {number(count)} "
            f"{pairs} at least moderately correlated (either direction)."
        )
    found.append("Correlation measures association, not cause.")
    return found


TEMPLATE = Template(
    name="correlation",
    description="Correlation matrix of numeric columns, a heatmap and the strongest pairs.",
    example="How are the numeric columns correlated?",
    params=(
        Param("columns", "columns", "None means every numeric column", "None"),
        *asset_params('"values"', ("values", "prices"))[1:],
        Param("max_columns", "int", "at most this many columns, the most variable", "50"),
        Param("method", "choice", '"pearson", "spearman" (rank) or "kendall"', '"pearson"',
              ("pearson", "spearman", "kendall")),
    ),
    code=CODE,
    insights=insights,
)
