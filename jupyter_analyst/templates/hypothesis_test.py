"""t-tests: the mean of a series against a value (returns against zero), or between groups."""

from __future__ import annotations

from typing import Any

from .base import Param, Template, finite, number

CODE = '''\
# $test_comment
import matplotlib.pyplot as plt
import pandas as pd
from scipy import stats
from jupyter_analyst.runtime import save_metrics, save_table

$params

'''

ONE_SAMPLE = CODE.replace("$test_comment", "One-sample t-test of the mean against a value, "
                          "with its confidence interval.") + '''\
results = {}
samples = {}
for name in columns:
    values = pd.to_numeric($frame[name], errors="coerce")
    if column_holds == "prices":  # test the returns of each period, in percent
        values = 100 * values.pct_change(fill_method=None)
    values = values.dropna()
    test = stats.ttest_1samp(values, null_value)
    low, high = test.confidence_interval(confidence)
    results[name] = {"n": len(values), "mean": round(float(values.mean()), 4),
                     "t_statistic": round(float(test.statistic), 3),
                     "p_value": float(test.pvalue),
                     "ci_low": round(float(low), 4), "ci_high": round(float(high), 4)}
    samples[name] = values
save_table(pd.DataFrame(results).T, "t_tests")
metrics = {"null_value": null_value, "confidence_pct": round(100 * confidence, 1),
           "significance_level": 0.05}
for name, row in results.items():
    prefix = "" if len(results) == 1 else f"{name} "
    metrics.update({prefix + key: value for key, value in row.items()})
save_metrics(metrics)

fig, ax = plt.subplots(figsize=(9, 4.5))
for name, values in samples.items():
    ax.hist(values, bins=30, alpha=0.5, label=f"{name} (mean {values.mean():.3g})")
ax.axvline(null_value, color="black", linestyle="--", label=f"tested value {null_value:g}")
if len(results) == 1:
    ax.axvspan(low, high, color="darkorange", alpha=0.3, label=f"{confidence:.0%} CI of the mean")
ax.set_title("Values and the tested mean" + (" (returns, %)" if column_holds == "prices" else ""))
ax.legend()

print(pd.DataFrame(results).T.to_string())
'''

TWO_GROUP = CODE.replace("$test_comment", "Do the groups' means differ? Welch's t-test for two "
                         "groups (no equal-variance assumption), one-way ANOVA for more.") + '''\
values = pd.to_numeric($frame[columns[0]], errors="coerce")
samples = {name: values[$frame[group_column].astype(str) == name].dropna() for name in groups}
metrics = {f"mean {name}": round(float(s.mean()), 4) for name, s in samples.items()}
metrics.update({f"n {name}": len(s) for name, s in samples.items()})
metrics["groups"] = ", ".join(samples)  # the names compared (codes such as 1.0 and 2.0)
if len(samples) == 2:
    first, second = samples.values()
    test = stats.ttest_ind(first, second, equal_var=False)
    low, high = test.confidence_interval(confidence)
    metrics.update({"test": "Welch t-test", "difference": round(first.mean() - second.mean(), 4),
                    "ci_low": round(float(low), 4), "ci_high": round(float(high), 4)})
else:
    test = stats.f_oneway(*samples.values())
    metrics["test"] = "one-way ANOVA"
metrics.update({"statistic": round(float(test.statistic), 3),
                "p_value": float(test.pvalue),
                "confidence_pct": round(100 * confidence, 1), "significance_level": 0.05})
save_metrics(metrics)

fig, ax = plt.subplots(figsize=(8, 4.5))
ax.boxplot(list(samples.values()))
ax.set_xticks(range(1, len(samples) + 1), list(samples))
ax.set_title(f"{columns[0]} by {group_column}: p = {test.pvalue:.3g}")

print(f"{metrics['test']}: statistic {test.statistic:.3f}, p-value {test.pvalue:.4g}.")
'''

PARAMS = (
    Param("columns", "columns", "the numeric columns to test",
          'list($frame.select_dtypes("number").columns[:1])'),
    Param("column_holds", "choice", '"values" as they are, or "prices" to test returns',
          '"values"', ("values", "prices")),
    Param("null_value", "float", "the mean under the null hypothesis", "0.0"),
    Param("confidence", "float", "confidence level of the interval", "0.95"),
)
GROUP_PARAMS = (
    Param("columns", "columns", "the numeric column compared (the first)",
          'list($frame.select_dtypes("number").columns[:1])'),
    Param("group_column", "column", "the column whose groups are compared",
          '$frame.select_dtypes(exclude="number").columns[0]'),
    Param("groups", "strings", "the groups compared (as text)",
          '[str(g) for g in $frame[group_column].dropna().unique()]'),
    Param("confidence", "float", "confidence level of the interval", "0.95"),
)


def _p(value: float) -> str:
    """A p-value as written: three significant figures below 0.01 (2.42e-07), never 0."""
    return f"{value:.3g}" if 0 < value < 0.01 else number(value)


def _verdict(p: float) -> str:
    return "significant at the 5% level" if p < 0.05 else "not significant at the 5% level"


def insights(metrics: dict[str, Any], bindings: dict[str, Any]) -> list[str]:
    names = bindings.get("columns") or [None]
    found = []
    for name in names:
        prefix = "" if len(names) == 1 else f"{name} "
        m = {k: metrics.get(prefix + k) for k in ("mean", "p_value", "t_statistic", "ci_low",
                                                   "ci_high")}
        if finite(m, *m):
            unit = "% a period" if bindings.get("column_holds") == "prices" else ""
            found.append(f"{name or 'The mean'}: mean {number(m['mean'])}{unit}, "
                         f"{number(metrics.get('confidence_pct', 95))}% CI "
                         f"[{number(m['ci_low'])}, {number(m['ci_high'])}], t = "
                         f"{number(m['t_statistic'])}, p = {_p(m['p_value'])}: "
                         f"{_verdict(m['p_value'])} against "
                         f"{number(metrics.get('null_value', 0))}.")
    return found


def group_insights(metrics: dict[str, Any], bindings: dict[str, Any]) -> list[str]:
    if not finite(metrics, "statistic", "p_value"):
        return []
    means = ", ".join(f"{k.removeprefix('mean ')} {number(v)}" for k, v in metrics.items()
                      if k.startswith("mean ") and finite(metrics, k))
    found = [f"Means: {means}."]
    found.append(f"{metrics.get('test')}: statistic {number(metrics['statistic'])}, p = "
                 f"{_p(metrics['p_value'])}, {_verdict(metrics['p_value'])}.")
    if finite(metrics, "difference", "ci_low", "ci_high"):
        found.append(f"The difference of means is {number(metrics['difference'])} "
                     f"(CI [{number(metrics['ci_low'])}, {number(metrics['ci_high'])}]).")
    return found


TEMPLATE = Template(
    name="t_test",
    description="One-sample t-test of a mean (returns against zero) with a confidence "
                "interval.",
    example="Are the mean returns significantly different from zero?",
    params=PARAMS, code=ONE_SAMPLE, insights=insights,
)
GROUP_TEMPLATE = Template(
    name="group_test",
    description="Welch's t-test (two groups) or one-way ANOVA (more) of a column's means.",
    example="Is {numeric} significantly different between the groups of {group}?",
    params=GROUP_PARAMS, code=TWO_GROUP, insights=group_insights,
)
