"""A column over time: the values, a rolling mean, a linear trend and period averages."""

from __future__ import annotations

from typing import Any

from .base import DATED_SERIES, Param, Template, finite, number

CODE = '''\
# $frame[column] over time: the values, a rolling mean, a linear trend and period averages.
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from jupyter_analyst.runtime import save_metrics, save_table

$params

''' + DATED_SERIES + '''\
has_dates = isinstance(series.index, pd.DatetimeIndex)
if has_dates:
    series = series.sort_index()

rolling = series.rolling(window).mean()

# Least-squares line through the values: its slope is the trend per day (per row without dates).
if has_dates:
    steps = np.asarray((series.index - series.index[0]) / pd.Timedelta(days=1), dtype=float)
else:
    steps = np.arange(len(series), dtype=float)
slope, intercept = np.polyfit(steps, np.asarray(series, dtype=float), 1)

first, last = float(series.iloc[0]), float(series.iloc[-1])
metrics = {
    "observations": len(series),
    "first_value": first,
    "last_value": last,
    "change": last - first,
    "mean": float(series.mean()),
    "min": float(series.min()),
    "max": float(series.max()),
    # per year over more than two years of dates, else per day (per row without dates)
    "trend_slope": float(slope) * (365.25 if has_dates and steps[-1] > 730 else 1),
    "trend_unit": ("per year" if steps[-1] > 730 else "per day") if has_dates else "per row",
    "rolling_window": window,
}
if first != 0:
    metrics["percent_change"] = (last - first) / abs(first)

rows = 2 if has_dates else 1
fig, axes = plt.subplots(rows, 1, figsize=(10, 3.5 * rows), squeeze=False)
ax = axes[0, 0]
ax.plot(series.index, series, linewidth=1, alpha=0.6, label=str(column))
ax.plot(rolling.index, rolling, linewidth=2, label=f"{window}-period rolling mean")
ax.plot(series.index, intercept + slope * steps, "--", color="black", label="linear trend")
ax.set_title(f"{column} over time" if has_dates else f"{column} in row order (no dates found)")
ax.legend()

# With dates, average over calendar periods ("auto" sizes them to the span, and makes them
# longer than the gap between observations: quarterly data is averaged by year).
if has_dates:
    rules = {"daily": "D", "weekly": "W", "monthly": "ME", "quarterly": "QE", "yearly": "YE"}
    period = resample
    if period == "auto":
        gap = float(np.median(np.diff(steps))) if len(steps) > 1 else 1.0
        period = ("yearly" if steps[-1] > 7300 or gap > 25 else "monthly"
                  if steps[-1] > 730 or gap > 6 else "weekly" if steps[-1] > 60 else "daily")
    period_means = series.resample(rules[period]).mean().dropna().rename(f"{period} mean")
    save_table(period_means, f"{period}_mean")
    metrics["resampled"] = period
    axes[1, 0].plot(period_means.index, period_means, marker="o")
    axes[1, 0].set_title(f"{period.capitalize()} mean of {column}")
fig.tight_layout()
save_metrics(metrics)

print(f"{column}: {first:.4g} -> {last:.4g} over {len(series)} observations; "
      f"trend {slope:+.3g} {metrics['trend_unit']}.")
'''


def insights(metrics: dict[str, Any], bindings: dict[str, Any]) -> list[str]:
    column = bindings.get("column", "The column")
    found = []
    if finite(metrics, "first_value", "last_value", "observations"):
        moved = (f"{column} went from {number(metrics['first_value'])} to "
                 f"{number(metrics['last_value'])} over {number(metrics['observations'])} "
                 "observations")
        if finite(metrics, "percent_change"):
            moved += f" ({metrics['percent_change']:+.1%})"
        found.append(moved + ".")
    if finite(metrics, "trend_slope"):
        slope = metrics["trend_slope"]
        unit = metrics.get("trend_unit", "per step")
        if slope == 0:
            found.append("The fitted linear trend is flat.")
        else:
            direction = "upward" if slope > 0 else "downward"
            found.append(f"The linear trend is {direction}: {number(slope)} {unit}.")
    if finite(metrics, "min", "max"):
        found.append(f"It ranged from {number(metrics['min'])} to {number(metrics['max'])}.")
    return found


TEMPLATE = Template(
    name="time_series",
    description="A numeric column over time: rolling mean, linear trend, period averages.",
    example="Plot {numeric} over time with a rolling mean",
    params=(
        Param("column", "column", "the values to follow over time",
              '$frame.select_dtypes("number").columns[0]'),
        Param("date_column", "optional_column", "None means the frame's index", "None"),
        Param("window", "int", "rolling mean over this many observations", "7"),
        Param("resample", "choice", '"auto", "daily", "weekly", "monthly", "quarterly" or "yearly"',
              '"auto"', ("auto", "daily", "weekly", "monthly", "quarterly", "yearly")),
    ),
    code=CODE,
    insights=insights,
)
