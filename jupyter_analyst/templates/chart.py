"""The chart the question names: box, violin, bar, line, scatter, pie or histogram."""

from __future__ import annotations

from typing import Any

from .base import Param, Template

CODE = '''\
import matplotlib.pyplot as plt
from jupyter_analyst.runtime import save_metrics

$params
fig, ax = plt.subplots(figsize=(8, 4.5))
$body
save_metrics({"chart": kind, "rows": len($frame)})
'''

# The plotting lines of each kind: x is the category or first column, y the value.
BODIES = {
    "box": '''\
groups = $frame.groupby(x, observed=True)[y] if x is not None else [(y, $frame[y])]
labels = [str(name) for name, _ in groups]
ax.boxplot([values.dropna() for _, values in groups])
ax.set_xticks(range(1, len(labels) + 1), labels)
ax.set_title(f"{y} by {x}" if x is not None else f"{y}")''',
    "violin": '''\
groups = $frame.groupby(x, observed=True)[y] if x is not None else [(y, $frame[y])]
labels = [str(name) for name, _ in groups]
ax.violinplot([values.dropna() for _, values in groups], showmedians=True)
ax.set_xticks(range(1, len(labels) + 1), labels)
ax.set_title(f"{y} by {x}" if x is not None else f"{y}")''',
    "bar": '''\
# Bars of the mean of y per category, or how often each category occurs.
if y is not None:
    heights = $frame.groupby(x, observed=True)[y].mean()
else:
    heights = $frame[x].value_counts()
heights.plot.bar(ax=ax, title=f"mean {y} by {x}" if y is not None else f"rows by {x}")''',
    "line": '''\
$frame.plot.line(x=x, y=y, ax=ax, title=f"{y} over {x or 'rows'}")''',
    "scatter": '''\
ax.scatter($frame[x], $frame[y], alpha=0.6)
ax.set_xlabel(str(x))
ax.set_ylabel(str(y))
ax.set_title(f"{y} against {x}: r = {$frame[x].corr($frame[y]):.2f}")''',
    "pie": '''\
$frame[x].value_counts().plot.pie(ax=ax, autopct="%1.0f%%", title=f"share of rows by {x}")
ax.set_ylabel("")''',
    "histogram": '''\
# One histogram of y per group of x, overlaid on the same bins (matplotlib computes them
# from all the groups together), so that the groups' shapes can be compared.
groups = $frame.groupby(x, observed=True)[y] if x is not None else [(y, $frame[y])]
ax.hist([values.dropna() for _, values in groups], bins="auto", histtype="stepfilled",
        alpha=0.4, label=[f"{name} (n = {values.count()})" for name, values in groups])
ax.legend(title=x)
ax.set_xlabel(str(y))
ax.set_ylabel("rows")
ax.set_title(f"Histograms of {y} by {x}" if x is not None else f"Histogram of {y}")''',
}


def insights(metrics: dict[str, Any], bindings: dict[str, Any]) -> list[str]:
    return []  # a chart is its own finding


FIRST_NUMBER = '$frame.select_dtypes("number").columns[0]'
FIRST_CATEGORY = '$frame.select_dtypes(exclude="number").columns[0]'
# Unbound x and y: a category and a number, two numbers, or a number over the index.
DEFAULTS = {"box": (FIRST_CATEGORY, FIRST_NUMBER), "violin": (FIRST_CATEGORY, FIRST_NUMBER),
            "bar": (FIRST_CATEGORY, FIRST_NUMBER), "line": ("None", FIRST_NUMBER),
            "scatter": (FIRST_NUMBER, '$frame.select_dtypes("number").columns[1]'),
            "pie": (FIRST_CATEGORY, "None"), "histogram": (FIRST_CATEGORY, FIRST_NUMBER)}
EXAMPLES = {"scatter": "scatter plot of {numeric} against another column",
            "histogram": "histogram of {numeric} for each {group}"}

TEMPLATES = [
    Template(
        name=f"{kind}_chart",
        description=f"A {kind} chart of the columns the question names.",
        example=EXAMPLES.get(kind, f"{kind} chart of {{numeric}} by {{group}}"),
        params=(
            Param("kind", "choice", "the chart", repr(kind), (kind,)),
            Param("x", "optional_column", "category or x-axis column", DEFAULTS[kind][0]),
            Param("y", "optional_column", "value or y-axis column", DEFAULTS[kind][1]),
        ),
        code=CODE.replace("$body", body),
        insights=insights,
    )
    for kind, body in BODIES.items()
]
