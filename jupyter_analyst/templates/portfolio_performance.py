"""Portfolio performance from prices or returns: return, risk, Sharpe ratio, drawdown."""

from __future__ import annotations

from typing import Any

from .base import DATED_SERIES, Param, Template, finite, number, percent

CODE = '''\
# Portfolio performance: total and annualised return, volatility, Sharpe ratio and maximum
# drawdown, with the equity curve and the drawdown underneath it.
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import PercentFormatter
from jupyter_analyst.runtime import save_metrics, save_table

$params

''' + DATED_SERIES + '''\
if isinstance(series.index, pd.DatetimeIndex):
    series = series.sort_index()

# Growth of 1 invested at the start, and the return of each period.
if column_holds == "prices":
    equity = series / series.iloc[0]
    period_returns = series.pct_change().dropna()
else:
    period_returns = series
    equity = (1 + period_returns).cumprod()
# The running peak starts at the initial 1, so a loss in the very first period counts.
drawdown = equity / equity.cummax().clip(lower=1) - 1

periods = len(period_returns)
total_return = equity.iloc[-1] - 1
annualized_return = (1 + total_return) ** (periods_per_year / periods) - 1
annualized_volatility = period_returns.std() * np.sqrt(periods_per_year)
excess = period_returns - risk_free_rate / periods_per_year
sharpe_ratio = excess.mean() / excess.std() * np.sqrt(periods_per_year)
max_drawdown = drawdown.min()

save_metrics({
    "total_return": float(total_return),
    "annualized_return": float(annualized_return),
    "annualized_volatility": float(annualized_volatility),
    "sharpe_ratio": float(sharpe_ratio),
    "max_drawdown": float(max_drawdown),
    "max_drawdown_at": drawdown.idxmin(),
    "best_period_return": float(period_returns.max()),
    "worst_period_return": float(period_returns.min()),
    "periods": periods,
    "periods_per_year": periods_per_year,
    "risk_free_rate": risk_free_rate,
})
save_table(pd.DataFrame({"equity": equity, "drawdown": drawdown}), "equity_curve")

fig, (ax_equity, ax_drawdown) = plt.subplots(
    2, 1, figsize=(10, 6), sharex=True, gridspec_kw={"height_ratios": [2, 1]}
)
ax_equity.plot(equity.index, equity, color="navy")
ax_equity.set_title("Equity curve (growth of 1)")
ax_equity.set_ylabel("equity")
ax_drawdown.fill_between(drawdown.index, drawdown, 0, color="firebrick", alpha=0.4)
ax_drawdown.set_title("Drawdown from the running peak")
ax_drawdown.yaxis.set_major_formatter(PercentFormatter(1.0))
fig.tight_layout()

print(f"Total return {total_return:.1%} ({annualized_return:.1%} a year), "
      f"volatility {annualized_volatility:.1%}, Sharpe ratio {sharpe_ratio:.2f}, "
      f"max drawdown {max_drawdown:.1%} over {periods} periods.")
'''


def insights(metrics: dict[str, Any], bindings: dict[str, Any]) -> list[str]:
    found = []
    if finite(metrics, "total_return", "annualized_return", "periods"):
        found.append(
            f"Total return was {percent(metrics['total_return'])} over "
            f"{number(metrics['periods'])} periods, {percent(metrics['annualized_return'])} "
            "a year annualised."
        )
    if finite(metrics, "annualized_volatility", "sharpe_ratio"):
        sharpe = metrics["sharpe_ratio"]
        verdict = ("negative: the returns did not beat the risk-free rate" if sharpe < 0
                   else "below 1: modest reward for the risk taken" if sharpe < 1
                   else "1 or more: good reward for the risk taken")
        found.append(
            f"Annualised volatility was {percent(metrics['annualized_volatility'])}; the Sharpe "
            f"ratio of {number(sharpe)} is {verdict}."
        )
    if finite(metrics, "max_drawdown"):
        where = metrics.get("max_drawdown_at")
        if isinstance(where, str):  # a date, written without a midnight time
            where = f", reached on {where.removesuffix('T00:00:00')}"
        elif isinstance(where, int):
            where = f", reached at row {where}"
        else:
            where = ""
        found.append(f"The deepest fall from a peak was {percent(metrics['max_drawdown'])}{where}.")
    return found


TEMPLATE = Template(
    name="portfolio_performance",
    description="Returns, volatility, Sharpe ratio and max drawdown from prices or returns, "
                "with the equity curve and drawdown.",
    example="Calculate total return, Sharpe ratio, max drawdown and volatility",
    params=(
        Param("column", "column", "prices or returns",
              '$frame.select_dtypes("number").columns[0]'),
        Param("column_holds", "choice", '"prices" or "returns" (per period)', '"prices"',
              ("prices", "returns")),
        Param("date_column", "optional_column", "None means the frame's index", "None"),
        Param("periods_per_year", "int", "252 trading days; 52 weekly, 12 monthly", "252"),
        Param("risk_free_rate", "float", "annual, e.g. 0.02 for 2%", "0.0"),
    ),
    code=CODE,
    insights=insights,
)
