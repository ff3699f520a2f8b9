"""Seasonal decomposition (trend, seasonal, residual) and an ADF stationarity test."""

from __future__ import annotations

from typing import Any

from .base import DATED_SERIES, Param, Template, finite, number

CODE = '''\
# Decomposition of one series into trend, seasonal and residual parts, and an augmented
# Dickey-Fuller test of whether the series is stationary.
import matplotlib.pyplot as plt
import pandas as pd
from statsmodels.tsa.seasonal import seasonal_decompose
from statsmodels.tsa.stattools import adfuller
from jupyter_analyst.runtime import save_metrics

$params

''' + DATED_SERIES + '''\
series = series.sort_index()
parts = seasonal_decompose(series, model=model, period=period)
adf_statistic, p_value, lags, observations, critical, _ = adfuller(series, autolag="AIC")

# Strength of trend and seasonality (Hyndman's measure): near 1 strong, near 0 absent.
residual = parts.resid.dropna()
detrended = (parts.seasonal + parts.resid).dropna()
deseasoned = (parts.trend + parts.resid).dropna()
metrics = {
    "period": period,
    "observations": len(series),
    "cycles": round(len(series) / period, 1),
    "adf_statistic": round(float(adf_statistic), 4),
    "adf_p_value": round(float(p_value), 4),
    "adf_critical_5pct": round(float(critical["5%"]), 4),
    "adf_lags": int(lags),
    "stationary_at_5pct": bool(p_value < 0.05),
    "trend_strength": round(float(max(0, 1 - residual.var() / deseasoned.var())), 3),
}
# Under three cycles, the trend's cut ends leave about one value per season: the seasonal
# part copies the noise and its strength would read near 1 whatever the data.
if len(series) >= 3 * period:
    metrics["seasonal_strength"] = round(float(max(0, 1 - residual.var() / detrended.var())), 3)
save_metrics(metrics)

fig, axes = plt.subplots(4, 1, figsize=(10, 8), sharex=True)
for ax, (label, part) in zip(axes, [("observed", series), ("trend", parts.trend),
                                    ("seasonal", parts.seasonal), ("residual", parts.resid)]):
    ax.plot(part.index, part, color="navy" if label != "residual" else "grey")
    ax.set_ylabel(label)
axes[0].set_title(f"Decomposition of {column} (period {period}, {model})")
fig.tight_layout()

print(f"ADF statistic {adf_statistic:.3f}, p-value {p_value:.4f}: "
      + ("stationary" if p_value < 0.05 else "not shown to be stationary") + " at 5%.")
'''


def insights(metrics: dict[str, Any], bindings: dict[str, Any]) -> list[str]:
    found = []
    column = bindings.get("column", "The series")
    if finite(metrics, "adf_statistic", "adf_p_value"):
        p = metrics["adf_p_value"]
        verdict = ("stationary at the 5% level (the unit root is rejected)" if p < 0.05 else
                   "not shown to be stationary at the 5% level: it wanders (a unit root is "
                   "not rejected), so model its changes rather than its level")
        found.append(f"ADF test on {column}: statistic {number(metrics['adf_statistic'])}, "
                     f"p-value {number(p)}; {verdict}.")
    if finite(metrics, "trend_strength", "seasonal_strength", "period"):
        found.append(f"With a period of {number(metrics['period'])} observations, trend strength "
                     f"is {number(metrics['trend_strength'])} and seasonal strength "
                     f"{number(metrics['seasonal_strength'])} (0 none, 1 all of the variation).")
    elif finite(metrics, "trend_strength", "cycles", "period"):
        found.append(f"The series covers only {number(metrics['cycles'])} cycles of "
                     f"{number(metrics['period'])} observations, too few to measure its "
                     "seasonality (three at least); trend strength is "
                     f"{number(metrics['trend_strength'])} (0 none, 1 all of the variation).")
    return found


TEMPLATE = Template(
    name="decomposition",
    description="Trend, seasonal and residual parts of a series (period from the dates) and "
                "an ADF stationarity test.",
    example="Decompose {numeric} into trend and seasonality",
    params=(
        Param("column", "column", "the series", '$frame.select_dtypes("number").columns[0]'),
        Param("date_column", "optional_column", "None means the frame's index", "None"),
        Param("period", "int", "observations per seasonal cycle: 12 monthly, 7 daily", "12"),
        Param("model", "choice", '"additive" or "multiplicative"', '"additive"',
              ("additive", "multiplicative")),
    ),
    code=CODE,
    insights=insights,
)
