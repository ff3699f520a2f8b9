"""Every recipe on real data, in a real kernel: its numbers against an independent computation.

Questions go through the whole offline path (plan, code, kernel, insights). The expected
numbers are computed here with plain numpy/scipy formulas, not with the template's code:
returns from price ratios, drawdowns from a running peak, t statistics and OLS by hand.
Percent metrics are rounded to 0.01 points, so they are compared to within half of that.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pandas as pd
import pytest
from notebook_kernel import NotebookKernel
from offline_frames import frame
from scipy import stats
from sklearn.model_selection import train_test_split

from jupyter_analyst.context import describe_frames
from jupyter_analyst.generation import GenerationRequest
from jupyter_analyst.generation.grounding import ground_insights
from jupyter_analyst.generation.offline import OfflineGenerator
from jupyter_analyst.safety import RiskLevel, SafetyValidator

pytestmark = pytest.mark.kernel
PCT = 0.0051  # percent metrics are rounded to 0.01 points


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    kernel = NotebookKernel(tmp_path_factory.mktemp("notebook"))
    yield kernel
    kernel.close()


@pytest.fixture(scope="module")
def ask(kernel):
    """Ask a question of a named real data set; the result's metrics, insights and code."""

    def run(question: str, data: str, table: pd.DataFrame | None = None):
        frames = {data: frame(data) if table is None else table}
        request = GenerationRequest(question, describe_frames(frames))
        generator = OfflineGenerator()
        generated = asyncio.run(generator.generate(request))
        report = SafetyValidator().validate(generated.code)
        assert report.risk_level is RiskLevel.SAFE, report.summary()
        out = kernel.run(generated.code, **frames)
        assert out.error is None, f"{out.error}\n{generated.code}"
        written, _ = asyncio.run(generator.insights(request, out.metrics, out.stdout))
        # every number in the insights is one of the results
        assert ground_insights(written, out.metrics, out.stdout) == written
        return out, written, generated

    return run


def price_stats(prices: np.ndarray, per_year: int) -> dict[str, float]:
    """Performance of one price series, from first principles."""
    returns = prices[1:] / prices[:-1] - 1
    peak, deepest, trough = prices[0], 0.0, 0
    for i, price in enumerate(prices):
        peak = max(peak, price)
        if price / peak - 1 < deepest:
            deepest, trough = price / peak - 1, i
    total = prices[-1] / prices[0] - 1
    return {
        "total_return_pct": 100 * total,
        "annualized_return_pct": 100 * ((1 + total) ** (per_year / len(returns)) - 1),
        "annualized_volatility_pct": 100 * returns.std(ddof=1) * np.sqrt(per_year),
        "sharpe_ratio": returns.mean() / returns.std(ddof=1) * np.sqrt(per_year),
        "max_drawdown_pct": 100 * deepest,
        "trough": trough,
    }


def assert_performance(metrics: dict, prefix: str, prices: pd.Series, per_year: int = 12):
    expected = price_stats(prices.to_numpy(dtype=float), per_year)
    for key in ("total_return_pct", "annualized_return_pct", "annualized_volatility_pct",
                "max_drawdown_pct"):
        assert metrics[prefix + key] == pytest.approx(expected[key], abs=PCT), key
    assert metrics[prefix + "sharpe_ratio"] == pytest.approx(expected["sharpe_ratio"], abs=5e-4)
    trough = prices.index[expected["trough"]]
    assert metrics[prefix + "max_drawdown_date"] == f"{trough:%Y-%m-%d}"


# 1. Performance: wide, long, a portfolio against its benchmark.


def test_performance_of_each_column_of_a_wide_price_table(ask):
    out, written, generated = ask("Calculate the Sharpe ratio and max drawdown, and plot the "
                                  "equity curve", "closes")
    closes = frame("closes")
    for symbol in closes.columns:
        assert_performance(out.metrics, f"{symbol} ", closes[symbol].dropna())
    assert out.metrics["periods_per_year"] == 12  # monthly prices
    assert out.figures == ["Equity curve (growth of 1); Drawdown from the running peak"]
    # insights in the metrics' units: "-57.5%" and a date without a time of day
    amzn = out.metrics["AMZN max_drawdown_pct"]
    assert any(f"{amzn:.1f}%" in line and "AMZN" in line for line in written)
    assert "00:00:00" not in " ".join(written)
    assert "12 periods a year" in generated.explanation


def test_performance_per_symbol_of_a_long_table(ask):
    out, written, _ = ask("total return and volatility per stock", "stocks")
    stocks = frame("stocks")
    for symbol in ("AAPL", "GOOG", "IBM"):
        rows = stocks[stocks["symbol"] == symbol].sort_values("date")
        assert_performance(out.metrics, f"{symbol} ", rows.set_index("date")["price"])


def test_performance_of_one_symbol_in_one_year(ask):
    out, written, generated = ask("Sharpe ratio of IBM in 2008", "stocks")
    stocks = frame("stocks")
    rows = stocks[(stocks["symbol"] == "IBM") & (stocks["date"].dt.year == 2008)]
    assert_performance(out.metrics, "", rows.set_index("date")["price"])
    assert out.metrics["periods"] == 11
    assert "symbol is IBM; in 2008" in generated.explanation


def test_a_portfolio_against_its_benchmark(ask):
    out, written, _ = ask("How did the portfolio do against the benchmark?", "fund")
    fund = frame("fund")
    for column in ("portfolio_value", "benchmark"):
        assert_performance(out.metrics, f"{column} ", fund[column])
    excess = (price_stats(fund["portfolio_value"].to_numpy(), 12)["annualized_return_pct"]
              - price_stats(fund["benchmark"].to_numpy(), 12)["annualized_return_pct"])
    assert out.metrics["excess_annualized_return_pct"] == pytest.approx(excess, abs=2 * PCT)
    assert any("benchmark" in line for line in written)


# 2. Correlation of holdings: returns, not levels.


def test_correlation_of_holdings_is_of_returns(ask):
    out, written, generated = ask("How are the tickers correlated?", "closes")
    closes = frame("closes")
    returns = {s: closes[s].to_numpy()[1:] / closes[s].to_numpy()[:-1] - 1 for s in closes}
    pairs = {}
    for i, a in enumerate(closes.columns):
        for b in closes.columns[i + 1:]:
            both = ~(np.isnan(returns[a]) | np.isnan(returns[b]))
            pairs[a, b] = np.corrcoef(returns[a][both], returns[b][both])[0, 1]
    best = max(pairs, key=lambda pair: abs(pairs[pair]))
    assert out.metrics["strongest_pair"] == f"{best[0]} ~ {best[1]}"
    assert out.metrics["strongest_correlation"] == pytest.approx(pairs[best])
    assert "not of price levels" in generated.explanation
    assert any("not of price levels" in line for line in written)
    levels = closes.corr()
    # For some pair the price levels would have told another story.
    assert max(abs(levels.loc[a, b] - r) for (a, b), r in pairs.items()) > 0.3


def test_a_named_pair_gets_its_correlation_and_a_scatter(ask):
    out, _, _ = ask("correlation between tip and total bill", "tips")
    tips = frame("tips")
    assert out.metrics["strongest_correlation"] == pytest.approx(
        np.corrcoef(tips["tip"], tips["total_bill"])[0, 1])
    assert out.figures[-1].startswith("total_bill against tip: r = ")


# 3. Value at Risk.


def test_value_at_risk_historical_and_parametric(ask):
    out, written, _ = ask("What is the 95% VaR and CVaR?", "closes")
    closes = frame("closes").dropna()
    returns = closes.to_numpy()[1:] / closes.to_numpy()[:-1] - 1
    portfolio = returns.mean(axis=1)  # equal weights, all five assets listed
    cutoff = np.quantile(portfolio, 0.05)
    mean, std = portfolio.mean(), portfolio.std(ddof=1)
    z = stats.norm.ppf(0.05)
    expected = {
        "historical_var_pct": -100 * cutoff,
        "historical_cvar_pct": -100 * portfolio[portfolio <= cutoff].mean(),
        "parametric_var_pct": -100 * (mean + z * std),
        "parametric_cvar_pct": -100 * (mean - std * stats.norm.pdf(z) / 0.05),
    }
    for key, value in expected.items():
        assert out.metrics[key] == pytest.approx(value, abs=PCT), key
    assert out.metrics["periods"] == len(portfolio)
    assert out.figures == ["Returns per period and the 95% Value at Risk"]
    assert any("equal-weight portfolio" in line for line in written)


def test_value_at_risk_of_one_symbol_at_99(ask):
    out, _, _ = ask("99% value at risk and expected shortfall of AAPL", "closes")
    prices = frame("closes")["AAPL"].to_numpy()
    returns = prices[1:] / prices[:-1] - 1
    assert out.metrics["historical_var_pct"] == pytest.approx(
        -100 * np.quantile(returns, 0.01), abs=PCT)


# 4. Mean-variance optimisation.


def test_optimal_weights_beat_every_random_portfolio(ask):
    out, written, _ = ask("optimal portfolio weights and the efficient frontier", "closes")
    closes = frame("closes").dropna()
    returns = closes.to_numpy()[1:] / closes.to_numpy()[:-1] - 1
    mean, cov = returns.mean(axis=0) * 12, np.cov(returns, rowvar=False) * 12

    def weights(name):
        return np.array([out.metrics[f"{name}_weight_pct {s}"] for s in closes.columns]) / 100

    for name in ("max_sharpe", "min_variance"):
        w = weights(name)
        assert w.sum() == pytest.approx(1, abs=1e-3) and (w >= -1e-4).all()  # long only
        assert out.metrics[f"{name}_return_pct"] == pytest.approx(100 * w @ mean, abs=0.05)
    # No long-only portfolio of 20,000 drawn at random does better than the optimum.
    random = np.random.default_rng(4).dirichlet(np.ones(len(mean)), 20_000)
    vols = np.sqrt(np.einsum("ij,jk,ik->i", random, cov, random))
    sharpes = random @ mean / vols
    best = weights("max_sharpe")
    assert best @ mean / np.sqrt(best @ cov @ best) >= sharpes.max() - 1e-3
    least = weights("min_variance")
    assert np.sqrt(least @ cov @ least) <= vols.min() + 1e-4
    equal = np.full(len(mean), 1 / len(mean))
    assert out.metrics["equal_weight_return_pct"] == pytest.approx(100 * equal @ mean, abs=PCT)
    assert out.figures == ["Efficient frontier (long only)"]
    assert any("maximum-Sharpe portfolio holds" in line for line in written)


# 5. Decomposition and ADF.


def test_decomposition_period_and_adf_statistic(ask):
    out, written, generated = ask("decompose the MSFT price into trend and seasonal parts",
                                  "stocks")
    stocks = frame("stocks")
    prices = stocks[stocks["symbol"] == "MSFT"].sort_values("date")["price"].to_numpy()
    assert out.metrics["period"] == 12 and out.metrics["observations"] == len(prices)
    # The ADF regression by least squares: change on lagged level, constant, lagged changes.
    lags = out.metrics["adf_lags"]
    change = np.diff(prices)
    rows = range(lags, len(change))
    design = np.array([[prices[t], 1.0, *change[t - lags:t][::-1]] for t in rows])
    target = change[lags:]
    coef, *_ = np.linalg.lstsq(design, target, rcond=None)
    residual = target - design @ coef
    sigma2 = residual @ residual / (len(target) - design.shape[1])
    se = np.sqrt(sigma2 * np.linalg.inv(design.T @ design)[0, 0])
    assert out.metrics["adf_statistic"] == pytest.approx(coef[0] / se, abs=1e-3)
    assert out.metrics["stationary_at_5pct"] == (out.metrics["adf_p_value"] < 0.05)
    assert "period of 12" in generated.explanation
    assert out.figures == ["Decomposition of price (period 12, additive)"]


# 6. t-tests.


def test_one_sample_t_test_of_monthly_returns(ask):
    out, written, _ = ask("Are AAPL returns significantly different from zero?", "closes")
    prices = frame("closes")["AAPL"].to_numpy()
    returns = 100 * (prices[1:] / prices[:-1] - 1)
    n, mean, sd = len(returns), returns.mean(), returns.std(ddof=1)
    t = mean / (sd / np.sqrt(n))
    half = stats.t.ppf(0.975, n - 1) * sd / np.sqrt(n)
    assert out.metrics["t_statistic"] == pytest.approx(t, abs=1e-3)
    assert out.metrics["p_value"] == pytest.approx(2 * stats.t.sf(abs(t), n - 1), abs=1e-4)
    assert out.metrics["ci_low"] == pytest.approx(mean - half, abs=1e-4)
    assert out.metrics["ci_high"] == pytest.approx(mean + half, abs=1e-4)
    assert any("significant at the 5% level" in line for line in written)


def welch(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Welch's t statistic and two-sided p-value, from the formula."""
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    t = (a.mean() - b.mean()) / np.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    return t, 2 * stats.t.sf(abs(t), df)


def test_welch_t_test_between_two_named_groups(ask):
    out, written, _ = ask("is total bill significantly different between Lunch and Dinner?",
                          "tips")
    tips = frame("tips")
    a = tips["total_bill"][tips["time"] == "Dinner"].to_numpy()
    b = tips["total_bill"][tips["time"] == "Lunch"].to_numpy()
    t, p = welch(a, b)
    assert out.metrics["test"] == "Welch t-test"
    assert out.metrics["statistic"] == pytest.approx(t, abs=1e-3)
    assert out.metrics["p_value"] == pytest.approx(p, abs=1e-4)
    assert out.metrics["difference"] == pytest.approx(a.mean() - b.mean(), abs=1e-4)


@pytest.mark.parametrize("question, column, first, second", [
    ("Do Lunch and Dinner tips differ?", "time", "Dinner", "Lunch"),
    ("do smokers and non-smokers tip differently?", "smoker", "No", "Yes"),
    ("do males and females tip differently?", "sex", "Female", "Male"),
])
def test_whether_two_groups_differ_is_a_welch_test(ask, question, column, first, second):
    out, written, generated = ask(question, "tips")
    tips = frame("tips")
    tip, group = tips["tip"].to_numpy(), tips[column].astype(str).to_numpy()
    t, p = welch(tip[group == first], tip[group == second])
    assert out.metrics["test"] == "Welch t-test"
    assert out.metrics["statistic"] == pytest.approx(t, abs=1e-3)
    assert out.metrics["p_value"] == pytest.approx(p, abs=1e-6)
    assert out.metrics[f"mean {first}"] == pytest.approx(tip[group == first].mean(), abs=1e-4)
    assert "Welch's t-test" in generated.explanation


def test_anova_across_penguin_species(ask):
    out, _, _ = ask("is body mass significantly different between the species?", "penguins")
    penguins = frame("penguins").dropna(subset=["body_mass_g"])
    groups = [g["body_mass_g"].to_numpy() for _, g in penguins.groupby("species")]
    grand = np.concatenate(groups).mean()
    between = sum(len(g) * (g.mean() - grand) ** 2 for g in groups) / (len(groups) - 1)
    within = sum(((g - g.mean()) ** 2).sum() for g in groups) / (
        sum(map(len, groups)) - len(groups))
    assert out.metrics["test"] == "one-way ANOVA"
    assert out.metrics["statistic"] == pytest.approx(between / within, abs=1e-3)


# 7. Regression.


def test_regression_coefficients_and_held_out_score(ask):
    out, written, _ = ask("predict tip from total bill and size", "tips")
    tips = frame("tips")
    x_train, x_test, y_train, y_test = train_test_split(
        tips[["total_bill", "size"]], tips["tip"], test_size=0.25, random_state=0)
    design = np.column_stack([np.ones(len(x_train)), x_train.to_numpy()])
    coef, *_ = np.linalg.lstsq(design, y_train.to_numpy(), rcond=None)
    predicted = np.column_stack([np.ones(len(x_test)), x_test.to_numpy()]) @ coef
    residual = ((y_test.to_numpy() - predicted) ** 2).sum()
    total = ((y_test.to_numpy() - y_test.mean()) ** 2).sum()
    assert out.metrics["intercept"] == pytest.approx(coef[0], abs=1e-4)
    assert out.metrics["coefficient total_bill"] == pytest.approx(coef[1], abs=1e-4)
    assert out.metrics["coefficient size"] == pytest.approx(coef[2], abs=1e-4)
    assert out.metrics["r2_test"] == pytest.approx(1 - residual / total, abs=1e-4)


def test_regression_of_returns_on_returns(ask):
    out, _, generated = ask("regress MSFT returns on the other stocks", "closes")
    closes = frame("closes")
    returns = (closes / closes.shift(1) - 1).dropna()
    assert out.metrics["rows_used"] == len(returns)
    assert "returns" in generated.explanation


# 8. Clustering.


def silhouette(points: np.ndarray, labels: np.ndarray) -> float:
    """Mean silhouette by its definition: (b - a) / max(a, b) for each point."""
    distances = np.sqrt(((points[:, None, :] - points[None, :, :]) ** 2).sum(axis=2))
    scores = []
    for i, label in enumerate(labels):
        own = labels == label
        if own.sum() == 1:
            scores.append(0.0)
            continue
        a = distances[i, own].sum() / (own.sum() - 1)
        b = min(distances[i, labels == other].mean() for other in set(labels) - {label})
        scores.append((b - a) / max(a, b))
    return float(np.mean(scores))


def test_clustering_assets_by_their_returns(ask):
    out, written, _ = ask("cluster the stocks by their returns", "closes")
    closes = frame("closes").dropna()
    returns = closes.to_numpy()[1:] / closes.to_numpy()[:-1] - 1
    points = ((returns - returns.mean(axis=0)) / returns.std(axis=0, ddof=1)).T
    labels = np.empty(len(closes.columns), dtype=int)
    for cluster in range(out.metrics["k"]):
        for name in out.metrics[f"cluster {cluster} members"].split(", "):
            labels[list(closes.columns).index(name)] = cluster
    assert out.metrics["silhouette"] == pytest.approx(silhouette(points, labels), abs=1e-3)
    tried = {k: v for k, v in out.metrics.items() if k.startswith("silhouette k=")}
    assert out.metrics["silhouette"] == max(tried.values())
    assert any("Members" in line for line in written)


def test_clustering_rows_by_numeric_features(ask):
    out, _, _ = ask("cluster the rows", "tips")
    sizes = [v for k, v in out.metrics.items() if k.startswith("cluster ") and k.endswith("size")]
    assert len(sizes) == out.metrics["k"] and sum(sizes) == 244
    assert out.figures[0].startswith("k-means, k = ")


# Everyday questions.


def test_clustering_into_the_number_of_clusters_asked(ask):
    out, written, generated = ask("cluster the penguins into 3 clusters", "penguins")
    assert "k = 3, as asked" in generated.explanation
    assert out.metrics["k"] == 3 and list(out.metrics).count("silhouette k=3") == 1
    sizes = [out.metrics[f"cluster {c} size"] for c in range(3)]
    assert sum(sizes) == len(frame("penguins").select_dtypes("number").dropna())


def test_counts_of_rows_columns_and_missing_values(ask):
    out, written, generated = ask("how many missing values?", "penguins")
    penguins = frame("penguins")
    assert out.metrics["rows"] == 344 and out.metrics["columns"] == 7
    assert out.metrics["missing_values"] == int(penguins.isna().to_numpy().sum())
    assert len(generated.code.splitlines()) <= 15


def test_a_numeric_filter(ask):
    out, _, generated = ask("how many tips over 5", "tips")
    assert out.metrics["rows"] == int((frame("tips")["tip"].to_numpy() > 5).sum())
    assert "tip > 5" in generated.explanation


def test_weekend_filter_on_a_day_column(ask):
    out, _, _ = ask("average tip on weekends", "tips")
    tips = frame("tips")
    weekend = np.isin(tips["day"].to_numpy(), ["Sat", "Sun"])
    assert out.metrics["mean"] == pytest.approx(tips["tip"].to_numpy()[weekend].mean())


def test_weekends_are_both_days_even_when_the_description_lists_only_one(ask):
    # Seven day names, of which the description lists the five most frequent: Saturday
    # is among them, Sunday (the rarest) is not, yet it is a weekend day all the same.
    days = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
    counts = [30, 30, 30, 30, 30, 31, 12]
    rng = np.random.default_rng(7)
    day = np.repeat(days, counts)
    sales = pd.DataFrame({"day": day, "amount": rng.gamma(2.0, 10.0, len(day))})
    out, _, _ = ask("average amount on weekends", "sales", sales)
    weekend = np.isin(day, ["Saturday", "Sunday"])
    assert out.metrics["count"] == 43
    assert out.metrics["mean"] == pytest.approx(sales["amount"].to_numpy()[weekend].mean())


def test_how_many_units_adds_up_a_column_of_counts(ask):
    rng = np.random.default_rng(3)
    region = rng.choice(["North", "South", "East"], 200)
    units = rng.integers(1, 20, 200)
    sales = pd.DataFrame({"region": region, "units": units, "price": rng.uniform(5, 50, 200)})
    out, _, generated = ask("how many units per region", "sales", sales)
    assert generated.explanation.startswith("Sum of 'units'")
    assert out.metrics["highest_value"] == max(units[region == r].sum() for r in "North South "
                                               "East".split())
    out, _, generated = ask("how many units in North", "sales", sales)
    assert "total (sum) of 'units'" in generated.explanation
    assert out.metrics["sum"] == units[region == "North"].sum()


def test_a_value_the_question_excludes_is_left_out_not_kept(ask):
    tips = frame("tips")
    day, bill = tips["day"].astype(str).to_numpy(), tips["total_bill"].to_numpy()
    out, _, generated = ask("average total bill by day except Thur and Fri", "tips")
    assert "day not in Fri, Thur" in generated.explanation
    shown = {key.removeprefix("mean "): value for key, value in out.metrics.items()}
    assert set(shown) == {"Sat", "Sun"}
    assert shown["Sun"] == pytest.approx(bill[day == "Sun"].mean(), abs=1e-4)
    out, _, _ = ask("how many penguins are not on Biscoe?", "penguins")
    assert out.metrics["rows"] == int((frame("penguins")["island"] != "Biscoe").sum())


def test_two_years_are_a_range_or_a_list_not_two_conditions(ask):
    stocks = frame("stocks")
    year, price = stocks["date"].dt.year.to_numpy(), stocks["price"].to_numpy()
    out, _, generated = ask("average price between 2003 and 2005", "stocks")
    assert "2003 <= year <= 2005" in generated.explanation
    assert out.metrics["mean"] == pytest.approx(price[(year >= 2003) & (year <= 2005)].mean())
    out, _, _ = ask("how many rows in 2003 or 2005", "stocks")
    assert out.metrics["rows"] == int(np.isin(year, [2003, 2005]).sum()) > 0


def test_named_groups_are_the_only_groups_shown(ask):
    tips = frame("tips")
    out, written, _ = ask("average tip by day for Sat and Sun", "tips")
    shown = {key.removeprefix("mean "): value for key, value in out.metrics.items()}
    assert set(shown) == {"Sat", "Sun"}
    assert shown["Sat"] == pytest.approx(tips.loc[tips["day"] == "Sat", "tip"].mean(), abs=1e-4)
    assert "Thur" not in " ".join(written) and "Fri" not in " ".join(written)


def test_a_statistic_by_two_columns_is_a_table_of_each_pair(ask):
    tips = frame("tips")
    day, sex = tips["day"].astype(str).to_numpy(), tips["sex"].astype(str).to_numpy()
    tip = tips["tip"].to_numpy()
    out, written, generated = ask("average tip by day and sex", "tips")
    expected = {f"mean {d} / {s}": tip[(day == d) & (sex == s)].mean()
                for d in set(day) for s in set(sex)}
    assert out.metrics == pytest.approx(expected, abs=1e-4)
    assert out.figures == ["mean of tip by day and sex"]
    assert "'day' (the table's rows) and 'sex' (its columns)" in generated.explanation
    best = max(expected, key=expected.get).removeprefix("mean ")
    assert f"highest for {best}" in written[0] and "(day / sex)" in written[0]


def test_rows_counted_by_two_columns(ask):
    penguins = frame("penguins")
    species, island = penguins["species"].to_numpy(), penguins["island"].to_numpy()
    out, written, _ = ask("count of rows by species and island", "penguins")
    expected = {f"count {a} / {b}": int(((species == a) & (island == b)).sum())
                for a in set(species) for b in set(island)}
    assert out.metrics == {key: n for key, n in expected.items() if n}  # pairs with rows
    assert sum(out.metrics.values()) == len(penguins)
    assert out.figures == ["count of rows by species and island"]
    assert written[0].startswith("The number of rows is highest for Gentoo / Biscoe (124)")


def test_a_share_of_the_rows_per_group_in_percent(ask):
    island = frame("penguins")["island"].to_numpy()
    out, written, generated = ask("percentage of rows by island", "penguins")
    assert out.metrics == pytest.approx(
        {f"share {name}": 100 * (island == name).sum() / len(island) for name in set(island)},
        abs=1e-4)
    assert out.figures == ["share of rows by island"]
    assert written[0].startswith("The share of rows is highest for Biscoe (48.84%)")
    tips = frame("tips")
    out, _, generated = ask("what share of the tips are from smokers", "tips")
    smokers = (tips["smoker"] == "Yes").to_numpy()
    assert out.metrics["share Yes"] == pytest.approx(100 * smokers.mean(), abs=1e-4)
    assert "each one of the tips" in generated.explanation


def test_a_share_of_a_columns_total_per_group_in_percent(ask):
    rng = np.random.default_rng(5)
    region = rng.choice(["North", "South", "East"], 300)
    channel = rng.choice(["Online", "Store"], 300)
    amount = rng.gamma(2.0, 50.0, 300)
    sales = pd.DataFrame({"region": region, "channel": channel, "sales": amount})
    out, written, _ = ask("share of total sales by region", "sales", sales)
    expected = {f"share {r}": 100 * amount[region == r].sum() / amount.sum()
                for r in ("North", "South", "East")}
    assert out.metrics == pytest.approx(expected, abs=1e-4)
    assert sum(out.metrics.values()) == pytest.approx(100)
    out, _, _ = ask("share of sales by region and channel", "sales", sales)
    assert out.metrics["share North / Online"] == pytest.approx(
        100 * amount[(region == "North") & (channel == "Online")].sum() / amount.sum(), abs=1e-4)
    assert len(out.metrics) == 6


def test_a_share_over_one_year(ask):
    stocks = frame("stocks")
    year = stocks["date"].dt.year.to_numpy()
    symbol = stocks["symbol"].to_numpy()[year == 2008]
    out, _, generated = ask("share of rows by symbol in 2008", "stocks")
    assert out.metrics == pytest.approx(
        {f"share {s}": 100 * (symbol == s).mean() for s in set(symbol)}, abs=1e-4)
    assert "in 2008" in generated.explanation


def test_the_variance_by_group_ranks_the_groups_by_their_variance(ask):
    penguins = frame("penguins")
    out, written, _ = ask("variance of bill depth by island", "penguins")
    variance = penguins.groupby("island")["bill_depth_mm"].var()
    assert out.metrics["statistic"] == "var"
    assert out.metrics["overall_value"] == pytest.approx(penguins["bill_depth_mm"].var())
    assert variance.idxmax() in " ".join(written)


def test_when_a_price_was_highest_is_its_date(ask):
    closes = frame("closes")
    out, written, _ = ask("when was AAPL highest?", "closes")
    assert out.metrics["first_value"] == pytest.approx(closes["AAPL"].max())
    assert f"{closes['AAPL'].idxmax():%Y-%m-%d}" in " ".join(written) + out.stdout


def test_a_symbol_filter_on_a_long_table(ask):
    out, _, _ = ask("top 5 prices for AAPL", "stocks")
    stocks = frame("stocks")
    aapl = np.sort(stocks["price"].to_numpy()[stocks["symbol"].to_numpy() == "AAPL"])[::-1]
    assert out.metrics["first_value"] == aapl[0] and out.metrics["last_value"] == aapl[4]


def test_a_derived_column_the_question_defines(ask):
    out, _, generated = ask("histogram of tip percent", "tips")
    tips = frame("tips")
    ratio = 100 * tips["tip"].to_numpy() / tips["total_bill"].to_numpy()
    assert out.metrics["mean"] == pytest.approx(ratio.mean())
    assert out.metrics["median"] == pytest.approx(np.median(ratio))
    assert out.figures == ["Distribution of tip_percent"]
    assert "tip_percent = 100 × tip / total_bill" in generated.explanation


@pytest.mark.parametrize("question, data, title", [
    ("boxplot of tip by day", "tips", "tip by day"),
    ("violin plot of total bill by sex", "tips", "total_bill by sex"),
    ("pie chart of day", "tips", "share of rows by day"),
    ("bar chart of average tip by day", "tips", "mean tip by day"),
    ("line chart of MSFT", "closes", "MSFT over rows"),
])
def test_the_chart_kind_asked_for(ask, question, data, title):
    out, _, _ = ask(question, data)
    assert out.figures == [title]


def test_a_histogram_by_group_is_one_histogram_per_group(ask):
    out, _, generated = ask("histogram of body mass for each sex", "penguins")
    assert out.figures == ["Histograms of body_mass_g by sex"]
    assert out.metrics == {"chart": "histogram", "rows": len(frame("penguins"))}
    assert "one for each 'sex', overlaid" in generated.explanation
    out, _, _ = ask("histograms of flipper length by species on Biscoe", "penguins")
    assert out.metrics["rows"] == int((frame("penguins")["island"] == "Biscoe").sum())


def test_scatter_shows_the_pairs_correlation(ask):
    out, _, _ = ask("scatter of tip against total bill", "tips")
    tips = frame("tips")
    r = np.corrcoef(tips["total_bill"], tips["tip"])[0, 1]
    assert out.figures == [f"tip against total_bill: r = {r:.2f}"]


def test_a_very_wide_frame_is_worked_on_a_stated_subset(ask):
    """3,000 columns: the correlation uses the 50 most variable, and says so."""
    rng = np.random.default_rng(8)
    scale = np.linspace(0.1, 3, 3000)
    wide = pd.DataFrame(rng.normal(size=(300, 3000)) * scale,
                        columns=[f"x{i}" for i in range(3000)])
    out, _, generated = ask("How are the numeric columns correlated?", "wide", wide)
    assert "(the 50 most variable)" in generated.explanation
    assert out.metrics["columns_compared"] == 50
    most_variable = set(wide.var().nlargest(50).index)
    assert set(out.metrics["strongest_pair"].split(" ~ ")) <= most_variable


def test_top_rows_are_named_by_the_column_of_row_names(ask):
    states = frame("statecrime")
    out, written, _ = ask("which 5 states have the highest murder rate?", "statecrime")
    ranked = states.sort_values("murder", ascending=False)
    assert out.metrics["first_row"] == ranked["state"].iloc[0]
    assert out.metrics["first_value"] == ranked["murder"].iloc[0]
    assert out.metrics["last_value"] == ranked["murder"].iloc[4]
    assert f"({ranked['state'].iloc[0]})" in written[0]


def test_a_seasonality_too_short_to_measure_is_not_given_a_strength(ask):
    prices = frame("weekly_stocks")
    out, written, _ = ask("decompose AAPL", "weekly_stocks")
    assert out.metrics["period"] == 52
    assert out.metrics["cycles"] == round(len(prices) / 52, 1)
    assert "seasonal_strength" not in out.metrics  # two cycles: the seasonal part is noise
    assert any("too few to measure its seasonality" in line for line in written)


def test_a_group_test_reports_a_tiny_p_value_as_it_is(ask):
    iris = frame("iris")
    out, written, _ = ask("is petal width significantly different between versicolor and "
                          "virginica?", "iris")
    width = iris.groupby("species")["petal width (cm)"]
    expected = stats.ttest_ind(width.get_group("versicolor"), width.get_group("virginica"),
                               equal_var=False).pvalue
    assert out.metrics["p_value"] == pytest.approx(expected)
    assert expected < 1e-20 and "p = 0," not in " ".join(written)


def test_numeric_codes_are_the_groups_of_a_test(ask):
    diabetes = frame("diabetes")
    out, _, generated = ask("is bp different between the sexes? t-test", "diabetes")
    bp = [diabetes.loc[diabetes["sex"] == code, "bp"] for code in (1.0, 2.0)]
    assert out.metrics["p_value"] == pytest.approx(
        stats.ttest_ind(*bp, equal_var=False).pvalue)
