"""Linear regression of a target on other columns: coefficients, R², a held-out score."""

from __future__ import annotations

from typing import Any

from .base import Param, Template, finite, number

CODE = '''\
# Linear regression of the target on the features, fitted on 75% of the rows and scored on
# the 25% held out.
import matplotlib.pyplot as plt
import pandas as pd
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import train_test_split
from jupyter_analyst.runtime import save_metrics, save_table

$params

rows = $frame[[target, *features]].apply(pd.to_numeric, errors="coerce")
if column_holds == "prices":  # regress returns on returns: price levels trend together
    rows = rows.pct_change(fill_method=None)
rows = rows.dropna()
x_train, x_test, y_train, y_test = train_test_split(
    rows[features], rows[target], test_size=0.25, random_state=0)
model = LinearRegression().fit(x_train, y_train)

# Importance: the coefficient times the feature's standard deviation, i.e. how much the
# target moves for a typical change of that feature.
coefficients = pd.DataFrame({
    "coefficient": model.coef_,
    "importance": model.coef_ * rows[features].std().to_numpy(),
}, index=features).sort_values("importance", key=abs, ascending=False)
save_table(coefficients.round(4), "coefficients")

metrics = {
    "target": target,
    "rows_used": len(rows),
    "intercept": round(float(model.intercept_), 4),
    "r2_train": round(float(model.score(x_train, y_train)), 4),
    "r2_test": round(float(model.score(x_test, y_test)), 4),
}
metrics.update({f"coefficient {name}": round(float(value), 4)
                for name, value in coefficients["coefficient"].items()})
save_metrics(metrics)

fig, (ax_fit, ax_bars) = plt.subplots(1, 2, figsize=(12, 4.5))
predicted = model.predict(x_test)
ax_fit.scatter(y_test, predicted, alpha=0.6)
ax_fit.axline((y_test.mean(), y_test.mean()), slope=1, color="grey", linestyle="--")
ax_fit.set_xlabel(f"actual {target}")
ax_fit.set_ylabel(f"predicted {target}")
ax_fit.set_title(f"Held-out rows: R² = {metrics['r2_test']:.2f}")
ax_bars.barh([str(name) for name in coefficients.index], coefficients["importance"])
ax_bars.set_title("Importance (coefficient × std of the feature)")
fig.tight_layout()

print(coefficients.to_string())
print(f"R² {metrics['r2_train']:.3f} on the training rows, {metrics['r2_test']:.3f} held out.")
'''


def insights(metrics: dict[str, Any], bindings: dict[str, Any]) -> list[str]:
    found = []
    if finite(metrics, "r2_train", "r2_test"):
        found.append(f"The linear model explains {number(100 * metrics['r2_train'])}% of the "
                     f"variance of {metrics.get('target')} on the rows it was fitted on (R² "
                     f"{number(metrics['r2_train'])}) and R² {number(metrics['r2_test'])} on "
                     "the held-out quarter.")
    coefficients = [(k.removeprefix("coefficient "), v) for k, v in metrics.items()
                    if k.startswith("coefficient ") and finite(metrics, k)]
    if coefficients:
        name, value = coefficients[0]
        found.append(f"The most important feature is {name}: each unit more goes with "
                     f"{number(value)} more {metrics.get('target')}, the others held fixed.")
    found.append("A regression shows association, not cause.")
    return found


TEMPLATE = Template(
    name="regression",
    description="Linear regression of a target on other columns: coefficients, importance, "
                "R² and a held-out R².",
    example="Regress {numeric} on the other numeric columns",
    params=(
        Param("target", "column", "the column explained",
              '$frame.select_dtypes("number").columns[0]'),
        Param("features", "columns", "the explaining columns",
              'list($frame.select_dtypes("number").columns.drop(target))'),
        Param("column_holds", "choice", '"values" as they are, or "prices" for their returns',
              '"values"', ("values", "prices")),
    ),
    code=CODE,
    insights=insights,
)
