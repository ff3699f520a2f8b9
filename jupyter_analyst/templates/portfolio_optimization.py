"""Mean-variance optimisation: max-Sharpe and min-variance weights and the efficient frontier."""

from __future__ import annotations

from typing import Any

from .base import ASSET_RETURNS, Param, Template, asset_params, finite, number, percent_points

CODE = '''\
# Mean-variance optimisation: the maximum-Sharpe and minimum-variance weights, the efficient
# frontier, and the equal-weight portfolio for comparison.
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy.optimize import minimize
from jupyter_analyst.runtime import save_metrics, save_table

$params

''' + ASSET_RETURNS + '''\
# The period all assets share, annualised.
common = asset_returns.dropna()
mean = common.mean().to_numpy() * periods_per_year
cov = common.cov().to_numpy() * periods_per_year
n = len(mean)
bounds = [(0.0, 1.0)] * n if long_only else [(-1.0, 1.0)] * n
budget = {"type": "eq", "fun": lambda w: w.sum() - 1}  # fully invested
start = np.full(n, 1 / n)


def volatility(w):
    return float(np.sqrt(w @ cov @ w))


def best(objective, *constraints):
    found = minimize(objective, start, method="SLSQP", bounds=bounds,
                     constraints=[budget, *constraints])
    return found.x


max_sharpe = best(lambda w: -(w @ mean - risk_free_rate) / volatility(w))
min_variance = best(volatility)

# The frontier: the least volatility for each target return above the minimum-variance one.
targets = np.linspace(min_variance @ mean, mean.max(), 30)
frontier = [volatility(best(volatility, {"type": "eq", "fun": lambda w, t=t: w @ mean - t}))
            for t in targets]

portfolios = {"max_sharpe": max_sharpe, "min_variance": min_variance, "equal_weight": start}
weights = pd.DataFrame({name: np.round(100 * w, 2) for name, w in portfolios.items()},
                       index=common.columns)
weights.index.name = "asset"
save_table(weights, "weights_pct")

metrics = {"assets": n, "periods": len(common), "long_only": long_only}
for name, w in portfolios.items():
    metrics[f"{name}_return_pct"] = round(100 * float(w @ mean), 2)
    metrics[f"{name}_volatility_pct"] = round(100 * volatility(w), 2)
    metrics[f"{name}_sharpe_ratio"] = round((float(w @ mean) - risk_free_rate) / volatility(w), 3)
for asset, weight in weights["max_sharpe"].items():
    metrics[f"max_sharpe_weight_pct {asset}"] = float(weight)
for asset, weight in weights["min_variance"].items():
    metrics[f"min_variance_weight_pct {asset}"] = float(weight)
save_metrics(metrics)

fig, ax = plt.subplots(figsize=(9, 5.5))
ax.plot(100 * np.array(frontier), 100 * targets, color="navy", label="efficient frontier")
ax.scatter(100 * np.sqrt(np.diag(cov)), 100 * mean, color="grey")
for asset, x, y in zip(common.columns, np.sqrt(np.diag(cov)), mean):
    ax.annotate(str(asset), (100 * x, 100 * y), textcoords="offset points", xytext=(4, 4))
markers = {"max_sharpe": ("*", "firebrick"), "min_variance": ("D", "darkgreen"),
           "equal_weight": ("o", "darkorange")}
for name, w in portfolios.items():
    marker, color = markers[name]
    ax.scatter(100 * volatility(w), 100 * float(w @ mean), marker=marker, color=color, s=120,
               label=name.replace("_", " "), zorder=3)
ax.set_xlabel("annualised volatility (%)")
ax.set_ylabel("annualised return (%)")
ax.set_title("Efficient frontier" + (" (long only)" if long_only else ""))
ax.legend()

print(weights.to_string())
'''


def insights(metrics: dict[str, Any], bindings: dict[str, Any]) -> list[str]:
    found = []
    for name, label in (("max_sharpe", "The maximum-Sharpe portfolio"),
                        ("min_variance", "The minimum-variance portfolio")):
        prefix = f"{name}_weight_pct "
        held = sorted(((v, k.removeprefix(prefix)) for k, v in metrics.items()
                       if k.startswith(prefix) and isinstance(v, (int, float)) and v >= 0.5),
                      reverse=True)
        if held and finite(metrics, f"{name}_return_pct", f"{name}_volatility_pct"):
            parts = ", ".join(f"{asset} {percent_points(v)}" for v, asset in held)
            found.append(f"{label} holds {parts}: expected return "
                         f"{percent_points(metrics[f'{name}_return_pct'])} a year at volatility "
                         f"{percent_points(metrics[f'{name}_volatility_pct'])}.")
    if finite(metrics, "equal_weight_sharpe_ratio", "max_sharpe_sharpe_ratio"):
        found.append(f"The equal-weight portfolio has Sharpe ratio "
                     f"{number(metrics['equal_weight_sharpe_ratio'])} against "
                     f"{number(metrics['max_sharpe_sharpe_ratio'])} at the maximum.")
    found.append("The weights fit past returns; expected returns estimated from history are "
                 "noisy, so out of sample the optimum differs.")
    return found


TEMPLATE = Template(
    name="portfolio_optimization",
    description="Mean-variance optimisation: max-Sharpe and min-variance weights, efficient "
                "frontier, equal-weight portfolio on it.",
    example="Find the optimal portfolio weights",
    params=(
        *asset_params(),
        Param("periods_per_year", "int", "252 trading days; 52 weekly, 12 monthly", "252"),
        Param("risk_free_rate", "float", "annual, e.g. 0.02 for 2%", "0.0"),
        Param("long_only", "choice", "True: no short positions", "True", (True, False)),
    ),
    code=CODE,
    insights=insights,
)
