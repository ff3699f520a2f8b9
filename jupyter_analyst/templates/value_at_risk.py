"""Value at Risk and CVaR (expected shortfall), historical and parametric (normal)."""

from __future__ import annotations

from typing import Any

from .base import ASSET_RETURNS, Param, Template, asset_params, finite, percent_points

CODE = '''\
# Value at Risk and CVaR of the per-period returns, historical and parametric (normal).
import matplotlib.pyplot as plt
import pandas as pd
from scipy import stats
from jupyter_analyst.runtime import save_metrics

$params

''' + ASSET_RETURNS + '''\
# Several assets are held as an equal-weight portfolio, rebalanced every period.
series = asset_returns.dropna().mean(axis=1)
tail = 1 - confidence

# Historical: the loss exceeded in only `tail` of the periods, and the average beyond it.
cutoff = series.quantile(tail)
historical_var = -cutoff
historical_cvar = -series[series <= cutoff].mean()
# Parametric: the same from a normal distribution with the returns' mean and deviation.
mean, std = series.mean(), series.std()
z = stats.norm.ppf(tail)
parametric_var = -(mean + z * std)
parametric_cvar = -(mean - std * stats.norm.pdf(z) / tail)

save_metrics({
    "confidence_pct": round(100 * confidence, 1),
    "historical_var_pct": round(100 * historical_var, 2),
    "historical_cvar_pct": round(100 * historical_cvar, 2),
    "parametric_var_pct": round(100 * parametric_var, 2),
    "parametric_cvar_pct": round(100 * parametric_cvar, 2),
    "periods": len(series),
    "assets": asset_returns.shape[1],
})

fig, ax = plt.subplots(figsize=(9, 4.5))
ax.hist(100 * series, bins=40, color="steelblue", edgecolor="white")
ax.axvline(-100 * historical_var, color="firebrick", label="historical VaR")
ax.axvline(-100 * historical_cvar, color="firebrick", linestyle="--", label="historical CVaR")
ax.axvline(-100 * parametric_var, color="darkorange", label="parametric VaR")
ax.axvline(-100 * parametric_cvar, color="darkorange", linestyle="--", label="parametric CVaR")
ax.set_title(f"Returns per period and the {confidence:.0%} Value at Risk")
ax.set_xlabel("return per period (%)")
ax.set_ylabel("periods")
ax.legend()

print(f"{confidence:.0%} VaR: historical {historical_var:.2%}, parametric {parametric_var:.2%}; "
      f"CVaR: historical {historical_cvar:.2%}, parametric {parametric_cvar:.2%}.")
'''


def insights(metrics: dict[str, Any], bindings: dict[str, Any]) -> list[str]:
    found = []
    keys = ("confidence_pct", "historical_var_pct", "historical_cvar_pct",
            "parametric_var_pct", "parametric_cvar_pct")
    if finite(metrics, *keys):
        c, hv, hc, pv, pc = (metrics[k] for k in keys)
        held = "an equal-weight portfolio of the assets" if metrics.get("assets", 1) > 1 \
            else "the asset"
        found.append(f"For {held}, in {percent_points(100 - c)} of periods the loss exceeded "
                     f"{percent_points(hv)} (historical VaR at {percent_points(c)}); in those "
                     f"periods it averaged {percent_points(hc)} (CVaR).")
        found.append(f"A normal distribution gives VaR {percent_points(pv)} and CVaR "
                     f"{percent_points(pc)}; "
                     + ("the history's tail is heavier than the normal one." if hc > pc
                        else "the normal model is no lighter-tailed than the history."))
    return found


TEMPLATE = Template(
    name="value_at_risk",
    description="Value at Risk and CVaR, historical and parametric, with the return "
                "distribution and markers.",
    example="What is the 95% VaR and CVaR?",
    params=(
        *asset_params(),
        Param("confidence", "float", "e.g. 0.95 for the 95% VaR", "0.95"),
    ),
    code=CODE,
    insights=insights,
)
