"""The offline generator on real data: what it recognises, refuses, and what its code computes.

Code is executed in a real ipykernel (as in an ordinary notebook) and every metric
is checked against a value computed here independently with numpy/scipy.
"""

from __future__ import annotations

import asyncio
import random
import re

import numpy as np
import offline_frames
import pandas as pd
import pytest
from conftest import read_seaborn
from notebook_kernel import NotebookKernel
from scipy import stats

from jupyter_analyst.context import describe_frames
from jupyter_analyst.datasets import load
from jupyter_analyst.errors import AnalystError, InputError, NotUnderstoodError
from jupyter_analyst.generation import GenerationRequest, make_generator
from jupyter_analyst.generation.grounding import ground_insights
from jupyter_analyst.generation.offline import OfflineGenerator
from jupyter_analyst.generation.offline.intent import RECIPES, plan
from jupyter_analyst.safety import SafetyValidator


def frame(name: str) -> pd.DataFrame:
    return load("prices") if name == "prices" else offline_frames.frame(name)


def request(question: str, analysis_type: str | None = None, mode: str = "sample",
            **frames: pd.DataFrame) -> GenerationRequest:
    return GenerationRequest(question, describe_frames(frames, mode=mode), analysis_type)


def generate(question: str, analysis_type: str | None = None, **frames):
    return asyncio.run(OfflineGenerator().generate(request(question, analysis_type, **frames)))


def insights(question: str, metrics: dict, **frames) -> list[str]:
    found, usage = asyncio.run(OfflineGenerator().insights(request(question, **frames),
                                                           metrics, ""))
    assert usage == {}
    return found


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    kernel = NotebookKernel(tmp_path_factory.mktemp("notebook"))
    yield kernel
    kernel.close()


# What it recognises, and how it binds the words of the question to columns.

RECOGNISED = [
    ("tips", "Show the distribution of total_bill", "distribution", {"column": "total_bill"}),
    ("tips", "histogram of Total Bill", "distribution", {"column": "total_bill"}),
    ("tips", "How skewed are the tips?", "distribution", {"column": "tip"}),
    ("tips", "describe tip", "distribution", {"column": "tip"}),
    ("tips", "Give me an overview of the data", "summary", {"columns": None}),
    ("tips", "Summary statistics of tip and size", "summary", {"columns": ["tip", "size"]}),
    ("tips", "How are the numeric columns correlated?", "correlation", {"columns": None}),
    ("tips", "correlation between tip and total bill", "correlation",
     {"columns": ["tip", "total_bill"], "method": "pearson"}),
    ("tips", "correlation between size and tip", "correlation",
     {"columns": ["size", "tip"]}),
    ("tips", "Show the distribution of tips", "distribution", {"column": "tip"}),
    ("tips", "Give me a summary of tips", "summary", {"columns": None}),
    ("tips", "average tip by party size", "group_statistic",
     {"value_column": "tip", "group_column": "size"}),
    ("tips", "What is the average tip by day?", "group_statistic",
     {"value_column": "tip", "group_column": "day", "statistic": "mean"}),
    ("tips", "compare the median total bill across days", "group_comparison",
     {"value_column": "total_bill", "group_column": "day", "statistic": "median"}),
    ("tips", "compare tip between Lunch and Dinner", "group_comparison",
     {"value_column": "tip", "group_column": "time"}),
    ("tips", "distribution of day", "value_counts", {"column": "day"}),
    ("tips", "top 3 days", "value_counts", {"column": "day", "top_n": 3}),
    ("tips", "how many rows per day", "value_counts", {"column": "day"}),
    ("tips", "top 5 total bills", "top_rows",
     {"column": "total_bill", "n": 5, "order": "largest"}),
    ("planets", "the 3 smallest masses", "top_rows", {"column": "mass", "n": 3,
                                                       "order": "smallest"}),
    ("planets", "Show the top 10 rows by distance", "top_rows", {"column": "distance", "n": 10}),
    ("tips", "plot tip over time", "time_series", {"column": "tip", "date_column": None}),
    ("penguins", "compare body mass by species", "group_comparison",
     {"value_column": "body_mass_g", "group_column": "species"}),
    ("penguins", "Spearman correlation of bill length and flipper length", "correlation",
     {"columns": ["bill_length_mm", "flipper_length_mm"], "method": "spearman"}),
    ("penguins", "What are the most common islands?", "value_counts", {"column": "island"}),
    ("planets", "distribution of orbital period", "distribution", {"column": "orbital_period"}),
    ("exercise", "average pulse per kind", "group_statistic",
     {"value_column": "pulse", "group_column": "kind"}),
    ("prices", "Calculate total return, Sharpe ratio, max drawdown and volatility. Plot the "
               "equity curve with the drawdown underneath.", "portfolio_performance",
     {"columns": ["price"], "column_holds": "prices", "date_column": "date",
      "periods_per_year": 252, "risk_free_rate": 0.0}),
    ("prices", "Sharpe ratio with a risk-free rate of 2.5%", "portfolio_performance",
     {"risk_free_rate": 0.025}),
    ("prices", "Plot price over time with a 30-day rolling mean", "time_series",
     {"column": "price", "date_column": "date", "window": 30, "resample": "auto"}),
    ("prices", "monthly average price", "time_series", {"resample": "monthly"}),
    ("prices", "Perform a time series analysis with moving averages", "time_series",
     {"column": "price"}),
    ("prices", "What is the maximum drawdown?", "portfolio_performance", {"columns": ["price"]}),
    ("prices", "trend of price with a rolling mean over 60 days", "time_series", {"window": 60}),
]


@pytest.mark.parametrize("data, question, template, bindings", RECOGNISED,
                         ids=[q for _, q, _, _ in RECOGNISED])
def test_recognised_questions_bind_the_named_columns(data, question, template, bindings):
    chosen = plan(question, describe_frames({data: frame(data)}))
    assert chosen.template == template
    assert chosen.frame == data
    assert {k: chosen.bindings[k] for k in bindings} == bindings


REFUSED = [
    ("tips", "hello", NotUnderstoodError, "does not recognise"),
    ("tips", "What's the tip percentage?", NotUnderstoodError, "does not recognise"),
    ("tips", "forecast next month's tips", NotUnderstoodError, "'forecast'"),
    ("tips", "correlation and distribution of tip", NotUnderstoodError, "several analyses"),
    ("tips", "distribution of tip when the bill was split", NotUnderstoodError, "'split'"),
    ("tips", "correlation of tip with day", NotUnderstoodError, "'day' is categorical"),
    ("tips", "Show the distribution", NotUnderstoodError, "which numeric column"),
    ("tips", "distribution of tip and total bill", NotUnderstoodError, "several numeric"),
    ("tips", "most common total bills", NotUnderstoodError, "continuous"),
    ("tips", "top 5 and bottom 5 tips", NotUnderstoodError, "both the largest"),
    ("tips", "Calculate the Sharpe ratio", NotUnderstoodError, "price or returns column"),
    ("tips", "Show the distribution of revenue", InputError, "'revenue', which is not a column"),
    ("prices", "distribution of daily returns", InputError, "'returns', which is not a column"),
    ("prices", "Show the revenue distribution", NotUnderstoodError, "'revenue'"),
    ("tips", "Show the revenue distribution of tips", NotUnderstoodError, "'revenue'"),
]


@pytest.mark.parametrize("data, question, error, says", REFUSED,
                         ids=[q for _, q, _, _ in REFUSED])
def test_questions_it_would_answer_wrongly_are_refused(data, question, error, says):
    with pytest.raises(error) as raised:
        plan(question, describe_frames({data: frame(data)}))
    assert type(raised.value) is error
    assert says in raised.value.problem
    assert raised.value.fix


def test_not_understood_names_what_it_can_do_and_the_llm_options(tips):
    with pytest.raises(NotUnderstoodError) as raised:
        asyncio.run(OfflineGenerator().generate(request("What should I do next?", tips=tips)))
    fix = raised.value.fix
    assert "ANTHROPIC_API_KEY" in fix and "LLM" in fix and "--model" in fix
    for recipe in RECIPES:
        assert recipe.name.replace("_", " ") in fix
    assert "Show the distribution of total_bill" in fix  # examples use this frame's columns


def test_every_example_it_offers_is_understood():
    """The examples in the refusal message are answered by the recipe they illustrate."""
    answered = set()
    for data in ("tips", "closes"):
        context = describe_frames({data: frame(data)})
        with pytest.raises(NotUnderstoodError) as raised:
            plan("?", context)
        examples = dict(re.findall(r"- ([a-z ]+): \"(.+)\"", raised.value.fix))
        assert len(examples) == len(RECIPES)
        for recipe in RECIPES:
            try:
                chosen = plan(examples[recipe.name.replace("_", " ")], context)
            except AnalystError:
                continue  # e.g. an optimisation of restaurant bills, a closing price by group
            assert chosen.template in recipe.templates, (data, recipe.name, chosen.template)
            answered.add(recipe.name)
    assert answered == {recipe.name for recipe in RECIPES}


def test_unknown_column_lists_the_columns(tips):
    with pytest.raises(InputError) as raised:
        plan("Compare revenue by day", describe_frames({"tips": tips}))
    assert "total_bill, tip, sex, smoker, day, time, size" in raised.value.problem


def test_empty_question_is_an_input_error(tips):
    with pytest.raises(InputError):
        plan("   ", describe_frames({"tips": tips}))


def test_analysis_type_overrides_the_wording(tips):
    chosen = plan("tip please", describe_frames({"tips": tips}), analysis_type="distribution")
    assert (chosen.template, chosen.bindings) == ("distribution", {"column": "tip"})
    with pytest.raises(InputError, match="Unknown analysis type"):
        plan("tip", describe_frames({"tips": tips}), analysis_type="astrology")


def test_the_frame_named_in_the_question_is_used(tips):
    context = describe_frames({"tips": tips, "penguins": frame("penguins")})
    assert plan("distribution of tip", context).frame == "tips"
    assert plan("summary of penguins", context).frame == "penguins"
    with pytest.raises(NotUnderstoodError, match="several frames"):
        plan("summary of tips and penguins", context)


def test_fallback_by_dtype_only_when_unambiguous():
    single = pd.DataFrame({"label": list("abcabc"), "value": [1.0, 2, 3, 4, 5, 9]})
    assert plan("Show the distribution", describe_frames({"df": single})).bindings == \
        {"column": "value"}


def test_schema_mode_still_binds_named_columns(tips):
    chosen = plan("average tip by day", describe_frames({"tips": tips}, mode="schema"))
    assert chosen.bindings["group_column"] == "day"


def test_periods_per_year_follow_the_dates():
    weekly = pd.DataFrame({"close": np.linspace(10, 20, 104)},
                          index=pd.date_range("2020-01-05", periods=104, freq="W"))
    chosen = plan("max drawdown and Sharpe ratio", describe_frames({"fund": weekly}))
    assert chosen.bindings["periods_per_year"] == 52
    assert chosen.bindings["date_column"] is None  # the DatetimeIndex


@pytest.mark.parametrize("name, values, holds", [
    ("daily_return", [0.01, -0.02, 0.005, 0.01], "returns"),
    ("close", [10.0, 10.5, 10.2, 10.9], "prices"),
    ("x", [0.01, -0.02, 0.005, 0.01], "returns"),  # told apart by its values: losses
    ("x", [10.0, 10.5, 10.2, 10.9], "prices"),
])
def test_price_or_returns_column(name, values, holds):
    data = pd.DataFrame({"when": pd.date_range("2024-01-01", periods=4), name: values})
    chosen = plan("What is the Sharpe ratio?", describe_frames({"book": data}))
    assert (chosen.bindings["columns"], chosen.bindings["column_holds"]) == ([name], holds)
    assert chosen.bindings["date_column"] == "when"


def test_dates_read_as_text_are_used_as_dates():
    data = load("prices").astype({"date": str})  # as read from a CSV without parse_dates
    chosen = plan("plot price over time", describe_frames({"prices": data}))
    assert chosen.bindings["date_column"] == "date"
    tips = read_seaborn("tips")  # "day" holds "Sun", "Sat": not dates
    assert plan("plot tip over time", describe_frames({"tips": tips})).bindings[
        "date_column"] is None


def test_an_injected_column_name_stays_a_string(tips):
    hostile = 'x"]); import os; #'
    data = tips.rename(columns={"total_bill": hostile})
    code = generate(f"Show the distribution of {hostile}", df=data).code
    assert f"column = {hostile!r}" in code
    assert "import os" not in code.replace(repr(hostile), "")
    assert SafetyValidator().validate(code).allowed


def test_generated_code_is_offline_valid_and_described(tips):
    generator = make_generator(model="offline")
    assert isinstance(generator, OfflineGenerator)
    assert generator.describe() == "offline templates"
    code = asyncio.run(generator.generate(request("average tip by day", tips=tips)))
    assert code.generator == "offline" and code.usage == {}
    assert "group_statistic" in code.explanation and "'tip'" in code.explanation
    report = SafetyValidator().validate(code.code)
    assert report.allowed and not report.violations, report.summary()


# What the code computes, in a real kernel, against independent numbers.


@pytest.mark.kernel
def test_distribution_of_total_bill(kernel, tips):
    question = "Show the distribution of total_bill"
    out = kernel.run(generate(question, tips=tips).code, tips=tips)
    assert out.error is None, out.error
    values = tips["total_bill"].to_numpy()
    q1, q3 = np.percentile(values, [25, 75])
    outside = (values < q1 - 1.5 * (q3 - q1)) | (values > q3 + 1.5 * (q3 - q1))
    assert out.metrics["mean"] == pytest.approx(values.mean())
    assert out.metrics["median"] == pytest.approx(np.median(values))
    assert out.metrics["std"] == pytest.approx(values.std(ddof=1))
    assert out.metrics["skewness"] == pytest.approx(stats.skew(values, bias=False))
    assert out.metrics["outliers"] == int(outside.sum())
    assert out.figures == ["Distribution of total_bill"]
    assert "total_bill" in out.stdout
    written = insights(question, out.metrics, tips=tips)
    assert any("skewed to the right" in s for s in written)
    assert ground_insights(written, out.metrics, out.stdout) == written  # no invented number


@pytest.mark.kernel
def test_portfolio_performance_on_synthetic_prices(kernel):
    rng = np.random.default_rng(11)
    dates = pd.bdate_range("2021-01-01", periods=750)
    price = 50 * np.exp(np.cumsum(rng.normal(0.0003, 0.012, len(dates))))
    prices = pd.DataFrame({"close": price}, index=dates)
    question = ("Calculate total return, Sharpe ratio, max drawdown and volatility. "
                "Plot the equity curve with the drawdown underneath.")
    out = kernel.run(generate(question, prices=prices).code, prices=prices)
    assert out.error is None, out.error

    returns = price[1:] / price[:-1] - 1
    peak, deepest = price[0], 0.0
    for p in price:
        peak = max(peak, p)
        deepest = min(deepest, p / peak - 1)
    years = len(returns) / 252
    # Percentages rounded to 0.01 points, the Sharpe ratio to 0.001.
    assert out.metrics["total_return_pct"] == pytest.approx(100 * (price[-1] / price[0] - 1),
                                                            abs=0.005)
    assert out.metrics["annualized_return_pct"] == pytest.approx(
        100 * ((price[-1] / price[0]) ** (1 / years) - 1), abs=0.005)
    assert out.metrics["annualized_volatility_pct"] == pytest.approx(
        100 * returns.std(ddof=1) * np.sqrt(252), abs=0.005)
    assert out.metrics["sharpe_ratio"] == pytest.approx(
        returns.mean() / returns.std(ddof=1) * np.sqrt(252), abs=0.0005)
    assert out.metrics["max_drawdown_pct"] == pytest.approx(100 * deepest, abs=0.005)
    assert out.metrics["periods_per_year"] == 252
    assert out.figures == ["Equity curve (growth of 1); Drawdown from the running peak"]
    written = insights(question, out.metrics, prices=prices)
    assert "Sharpe ratio" in written[0] and f"{100 * deepest:.1f}%" in written[0]
    assert ground_insights(written, out.metrics, out.stdout) == written


@pytest.mark.kernel
@pytest.mark.parametrize("dates_as", ["datetime64[ns]", "str"])
def test_portfolio_from_the_bundled_prices_with_a_date_column(kernel, dates_as):
    prices = load("prices").astype({"date": dates_as})
    out = kernel.run(generate("total return and max drawdown", prices=prices).code,
                     prices=prices)
    assert out.error is None, out.error
    assert out.metrics["total_return_pct"] == pytest.approx(
        100 * (prices["price"].iloc[-1] / prices["price"].iloc[0] - 1), abs=0.005)
    # a date without a midnight time stamp, not a row number
    assert re.fullmatch(r"20\d\d-\d\d-\d\d", out.metrics["max_drawdown_date"])


@pytest.mark.kernel
def test_correlation_of_penguins(kernel):
    penguins = frame("penguins")
    question = "How are the numeric columns correlated?"
    out = kernel.run(generate(question, penguins=penguins).code, penguins=penguins)
    assert out.error is None, out.error
    numeric = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
    best = max(((a, b) for i, a in enumerate(numeric) for b in numeric[i + 1:]),
               key=lambda pair: abs(_pearson(penguins, *pair)))
    assert out.metrics["strongest_pair"] == f"{best[0]} ~ {best[1]}"
    assert out.metrics["strongest_correlation"] == pytest.approx(_pearson(penguins, *best))
    assert out.metrics["columns_compared"] == 4
    assert out.figures == ["Pearson correlation"]
    written = insights(question, out.metrics, penguins=penguins)
    assert ground_insights(written, out.metrics, out.stdout) == written


def _pearson(data: pd.DataFrame, a: str, b: str) -> float:
    both = data[[a, b]].dropna().to_numpy()
    return float(np.corrcoef(both[:, 0], both[:, 1])[0, 1])


@pytest.mark.kernel
def test_average_tip_by_day(kernel, tips):
    question = "What is the average tip by day?"
    out = kernel.run(generate(question, tips=tips).code, tips=tips)
    assert out.error is None, out.error
    means = {day: np.mean([t for t, d in zip(tips["tip"], tips["day"], strict=True) if d == day])
             for day in set(tips["day"])}
    best = max(means, key=means.get)
    for day, mean in means.items():
        assert out.metrics[f"mean {day}"] == pytest.approx(mean, abs=5e-5)
    assert out.figures == ["mean of tip by day"]
    # a few lines to review (the template also reads a second column of groups, unset here)
    assert len(generate(question, tips=tips).code.splitlines()) <= 14
    written = insights(question, out.metrics, tips=tips)
    assert best in written[0] and ground_insights(written, out.metrics, out.stdout) == written


@pytest.mark.kernel
def test_most_common_planet_discovery_methods(kernel):
    planets = frame("planets")
    out = kernel.run(generate("top 5 methods", planets=planets).code, planets=planets)
    assert out.error is None, out.error
    methods, counts = np.unique(planets["method"].to_numpy(dtype=str), return_counts=True)
    assert out.metrics["most_common"] == methods[counts.argmax()]
    assert out.metrics["most_common_count"] == counts.max()
    assert out.metrics["distinct_values"] == len(methods)
    assert out.figures == ["Most common values of method"]


@pytest.mark.kernel
def test_time_series_of_the_bundled_prices(kernel):
    prices = load("prices")
    question = "Plot price over time with a 30-day rolling mean"
    out = kernel.run(generate(question, prices=prices).code, prices=prices)
    assert out.error is None, out.error
    days = (prices["date"] - prices["date"].iloc[0]).dt.days.to_numpy()
    fit = stats.linregress(days, prices["price"].to_numpy())
    # four years of dates: the trend is stated per year
    assert out.metrics["trend_slope"] == pytest.approx(fit.slope * 365.25)
    assert out.metrics["trend_unit"] == "per year"
    assert out.metrics["rolling_window"] == 30
    assert out.metrics["resampled"] == "monthly"  # four years of data
    assert out.figures == ["price over time", "Monthly mean of price"] or \
        out.figures == ["price over time; Monthly mean of price"]
    written = insights(question, out.metrics, prices=prices)
    assert ground_insights(written, out.metrics, out.stdout) == written


@pytest.mark.kernel
def test_summary_of_a_frame_with_missing_values(kernel):
    penguins = frame("penguins")
    out = kernel.run(generate("Give me an overview of the data", penguins=penguins).code,
                     penguins=penguins)
    assert out.error is None, out.error
    assert out.metrics["rows"] == len(penguins) == 344
    assert out.metrics["missing_values"] == int(penguins.isna().to_numpy().sum())
    assert out.metrics["numeric_columns"] == 4
    assert out.figures == ["Numeric columns of penguins"]
    written = insights("Give me an overview of the data", out.metrics, penguins=penguins)
    assert "344 rows" in written[0]
    assert ground_insights(written, out.metrics, out.stdout) == written


@pytest.mark.kernel
def test_exercise_pulse_by_kind(kernel):
    exercise = frame("exercise")
    out = kernel.run(generate("average pulse per kind", exercise=exercise).code,
                     exercise=exercise)
    assert out.error is None, out.error
    for kind in set(exercise["kind"]):
        pulses = exercise["pulse"].to_numpy()[exercise["kind"].to_numpy() == kind]
        assert out.metrics[f"mean {kind}"] == pytest.approx(pulses.mean(), abs=5e-5)


@pytest.mark.kernel
def test_top_five_total_bills(kernel, tips):
    question = "top 5 total bills"
    out = kernel.run(generate(question, tips=tips).code, tips=tips)
    assert out.error is None, out.error
    bills = tips["total_bill"].to_numpy()
    largest = np.sort(bills)[::-1][:5]
    assert out.metrics["first_value"] == largest[0] and out.metrics["last_value"] == largest[4]
    assert out.metrics["first_row"] == str(int(bills.argmax()))
    assert out.metrics["median_of_all"] == pytest.approx(np.median(bills))
    assert out.figures == ["5 largest values of total_bill"]
    written = insights(question, out.metrics, tips=tips)
    assert ground_insights(written, out.metrics, out.stdout) == written


def test_any_wording_gets_code_or_a_clear_error():
    """Seeded word salad from analysis vocabulary and column names: never a crash."""
    vocabulary = ("show distribution of by per for each the top 5 average median correlation "
                  "between and over time trend rolling 30 day monthly summary describe compare "
                  "across how many most common sharpe drawdown returns price tips 2021 > only "
                  "largest bottom 3 vs of in").split()
    rng = random.Random(2)
    for name in ("tips", "penguins", "planets", "exercise", "prices"):
        data = frame(name)
        context = describe_frames({name: data})
        for _ in range(150):
            question = " ".join(rng.sample(vocabulary + list(data.columns), rng.randint(1, 7)))
            try:
                chosen = plan(question, context)
            except AnalystError as error:
                assert error.fix, question
                continue
            assert chosen.uses <= set(data.columns), question
            assert SafetyValidator().validate(chosen.code()).allowed, question


def test_a_column_beyond_the_described_ones_is_named_as_such():
    wide = pd.DataFrame(np.ones((3, 80)), columns=[f"c{i}" for i in range(79)] + ["revenue"])
    with pytest.raises(NotUnderstoodError, match="'revenue' is beyond the first 60 columns"):
        plan("distribution of revenue", describe_frames({"wide": wide}))
    assert plan("distribution of c3", describe_frames({"wide": wide})).bindings == {"column": "c3"}
