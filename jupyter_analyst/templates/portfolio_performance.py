"""Performance of one or more assets: return, volatility, Sharpe ratio, drawdown, equity curve."""

from __future__ import annotations

from typing import Any

from .base import ASSET_RETURNS, Param, Template, asset_params, finite, number, percent_points

CODE = '''\
# Performance of each asset: total and annualised return, volatility, Sharpe ratio and
# maximum drawdown, with the equity curves and the drawdowns underneath.
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import PercentFormatter
from jupyter_analyst.runtime import save_metrics, save_table

$params

''' + ASSET_RETURNS + '''\
results, equity, drawdowns = {}, {}, {}
for asset in asset_returns.columns:
    period_returns = asset_returns[asset].dropna()
    growth = (1 + period_returns).cumprod()  # growth of 1 invested at the start
    # The running peak starts at the initial 1, so a loss in the very first period counts.
    drawdown = growth / growth.cummax().clip(lower=1) - 1
    total = growth.iloc[-1] - 1
    excess = period_returns - risk_free_rate / periods_per_year
    worst = drawdown.idxmin()
    results[asset] = {
        "total_return_pct": round(100 * total, 2),
        "annualized_return_pct": round(
            100 * ((1 + total) ** (periods_per_year / len(period_returns)) - 1), 2),
        "annualized_volatility_pct": round(
            100 * period_returns.std() * np.sqrt(periods_per_year), 2),
        "sharpe_ratio": round(excess.mean() / excess.std() * np.sqrt(periods_per_year), 3),
        "max_drawdown_pct": round(100 * drawdown.min(), 2),
        "max_drawdown_date": f"{worst:%Y-%m-%d}" if isinstance(worst, pd.Timestamp)
        else int(worst),
        "periods": len(period_returns),
    }
    equity[asset], drawdowns[asset] = growth, drawdown

performance = pd.DataFrame(results).T
save_table(performance, "performance")
# One asset: plain metric names; several: each name prefixed with its asset.
metrics = {"periods_per_year": periods_per_year, "risk_free_rate_pct": 100 * risk_free_rate}
for asset, row in results.items():
    prefix = "" if len(results) == 1 else f"{asset} "
    metrics.update({prefix + key: value for key, value in row.items()})
if benchmark is not None:
    others = [asset for asset in results if asset != benchmark]
    metrics["excess_annualized_return_pct"] = round(
        results[others[0]]["annualized_return_pct"]
        - results[benchmark]["annualized_return_pct"], 2)
save_metrics(metrics)

fig, (ax_equity, ax_drawdown) = plt.subplots(
    2, 1, figsize=(10, 6.5), sharex=True, gridspec_kw={"height_ratios": [2, 1]}
)
for asset in results:
    line, = ax_equity.plot(equity[asset].index, equity[asset], label=str(asset))
    ax_drawdown.fill_between(drawdowns[asset].index, drawdowns[asset], 0,
                             color=line.get_color(), alpha=0.3)
ax_equity.set_title("Equity curve (growth of 1)")
ax_equity.set_ylabel("equity")
ax_equity.legend()
ax_drawdown.set_title("Drawdown from the running peak")
ax_drawdown.yaxis.set_major_formatter(PercentFormatter(1.0))
fig.tight_layout()

print(performance.to_string())
'''


def insights(metrics: dict[str, Any], bindings: dict[str, Any]) -> list[str]:
    # Several assets' metrics are prefixed with the asset's name.
    assets = [key.removesuffix(" sharpe_ratio") for key in metrics
              if key.endswith(" sharpe_ratio")] or [None]
    found = []
    for asset in assets:
        prefix = "" if asset is None else f"{asset} "
        m = {key: metrics.get(prefix + key) for key in (
            "total_return_pct", "annualized_return_pct", "annualized_volatility_pct",
            "sharpe_ratio", "max_drawdown_pct", "max_drawdown_date", "periods")}
        if not finite(m, "total_return_pct", "annualized_return_pct", "sharpe_ratio",
                      "max_drawdown_pct", "annualized_volatility_pct"):
            continue
        sharpe = m["sharpe_ratio"]
        verdict = ("below zero: it did not beat the risk-free rate" if sharpe < 0
                   else "below 1: modest reward for the risk" if sharpe < 1
                   else "1 or more: good reward for the risk")
        name = f"{asset}: t" if asset else "T"
        where = f" (trough on {m['max_drawdown_date']})" if isinstance(
            m["max_drawdown_date"], str) else ""
        found.append(
            f"{name}otal return {percent_points(m['total_return_pct'])} "
            f"({percent_points(m['annualized_return_pct'])} a year), volatility "
            f"{percent_points(m['annualized_volatility_pct'])} a year, Sharpe ratio "
            f"{number(sharpe)} ({verdict}), max drawdown "
            f"{percent_points(m['max_drawdown_pct'])}{where}.")
    if finite(metrics, "excess_annualized_return_pct"):
        found.append(f"Against the benchmark {bindings.get('benchmark')}, the annualised return "
                     f"differs by {percent_points(metrics['excess_annualized_return_pct'])}.")
    if finite(metrics, "periods_per_year"):
        found.append(f"Annualised with {number(metrics['periods_per_year'])} periods a year.")
    return found


TEMPLATE = Template(
    name="portfolio_performance",
    description="Per asset: total and annualised return, volatility, Sharpe ratio, max "
                "drawdown, with the equity curves and drawdowns.",
    example="Calculate total return, Sharpe ratio, max drawdown and volatility",
    params=(
        *asset_params(),
        Param("benchmark", "optional_column", "the asset the others are measured against",
              "None"),
        Param("periods_per_year", "int", "252 trading days; 52 weekly, 12 monthly", "252"),
        Param("risk_free_rate", "float", "annual, e.g. 0.02 for 2%", "0.0"),
    ),
    code=CODE,
    insights=insights,
)
