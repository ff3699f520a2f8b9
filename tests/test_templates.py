"""Templates: the public get_template/list_templates, safe bindings, and real runs in a kernel."""

from __future__ import annotations

import ast

import numpy as np
import pandas as pd
import pytest
from notebook_kernel import NotebookKernel

from jupyter_analyst.datasets import load, stock_prices
from jupyter_analyst.errors import InputError
from jupyter_analyst.generation.offline.intent import RECIPES
from jupyter_analyst.safety import RiskLevel, SafetyValidator
from jupyter_analyst.templates import get_template, list_templates

REQUIRED = ["portfolio_performance", "correlation", "distribution", "time_series", "summary"]
# The templates of the financial analyses run on a price table (one column per asset).
ON_PRICES = {"portfolio_performance", "value_at_risk", "portfolio_optimization",
             "decomposition", "time_series", "line_chart"}
INJECTION = 'x"]); import os; #'


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    kernel = NotebookKernel(tmp_path_factory.mktemp("notebook"))
    yield kernel
    kernel.close()


def test_list_templates_has_the_seed_templates_and_more():
    names = list_templates()
    assert set(REQUIRED) <= set(names)
    assert {"group_comparison", "value_counts"} <= set(names)


@pytest.mark.parametrize("name", list_templates())
def test_template_code_follows_the_contract_and_passes_the_validator(name):
    code = get_template(name, frame="tips")
    tree = ast.parse(code)
    imports = {ast.unparse(node) for node in tree.body if isinstance(node, (ast.Import,
                                                                           ast.ImportFrom))}
    # Each imports what it uses: a count needs neither pandas nor a plot.
    assert ("plt." in code) == ("import matplotlib.pyplot as plt" in imports)
    assert ("pd." in code) == ("import pandas as pd" in imports)
    assert any(i.startswith("from jupyter_analyst.runtime import save_metrics") for i in imports)
    assert "save_metrics(" in code and "plt.show" not in code
    assert "tips" in code and "df" not in ast.unparse(tree).split()  # bound to the given name
    report = SafetyValidator().validate(code)
    assert report.risk_level is RiskLevel.SAFE, report.summary()  # not even a warning


def test_the_recipes_and_the_templates_agree():
    """Every template is rendered by a recipe, every recipe renders templates that exist."""
    rendered = [name for recipe in RECIPES for name in recipe.templates]
    assert sorted(rendered) == sorted(list_templates())
    assert len({recipe.name for recipe in RECIPES}) == len(RECIPES)
    for recipe in RECIPES:
        assert recipe.bind.__name__.startswith("_"), recipe.name


def test_bindings_become_literal_assignments():
    code = get_template("distribution", frame="tips", column="total_bill")
    assignments = {node.targets[0].id: node.value for node in ast.parse(code).body
                   if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)}
    assert isinstance(assignments["column"], ast.Constant)
    assert assignments["column"].value == "total_bill"


def test_a_column_name_cannot_inject_code():
    code = get_template("distribution", frame="df", column=INJECTION)
    tree = ast.parse(code)
    modules = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
               for alias in node.names}
    assert "os" not in modules
    constants = [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)]
    assert INJECTION in constants
    assert SafetyValidator().validate(code).allowed


@pytest.mark.parametrize("name, frame", [
    ("summary", "numeric"), ("portfolio_performance", "equity"), ("distribution", "column"),
    ("correlation", "pd"),
])
def test_a_frame_named_like_a_template_variable_is_refused(name, frame):
    with pytest.raises(InputError, match="would overwrite it"):
        get_template(name, frame=frame)


def test_common_frame_names_do_not_collide():
    for name in list_templates():
        for frame in ("df", "data", "tips", "prices", "returns", "sales"):
            get_template(name, frame=frame)


def test_a_dollar_in_a_column_name_is_kept_as_is():
    code = get_template("distribution", frame="df", column="$frame cost $$")
    assert "column = '$frame cost $$'" in code


@pytest.mark.parametrize(
    "call",
    [
        lambda: get_template("forecast"),
        lambda: get_template("distribution", colum="tip"),
        lambda: get_template("distribution", column=3),
        lambda: get_template("correlation", method="magic"),
        lambda: get_template("time_series", window=0),
        lambda: get_template("distribution", frame="df; import os"),
        lambda: get_template("distribution", frame="class"),
    ],
    ids=["unknown template", "unknown parameter", "not a str", "bad choice", "window 0",
         "frame expression", "frame keyword"],
)
def test_bad_bindings_are_clear_errors(call):
    with pytest.raises(InputError) as error:
        call()
    assert error.value.fix  # every error names its fix


@pytest.mark.kernel
@pytest.mark.parametrize("name", list_templates())
def test_every_template_runs_with_its_defaults_in_a_notebook_kernel(kernel, name):
    """Unbound parameters fall back to kernel-side choices: runnable on a suitable frame."""
    frame = stock_prices().dropna() if name in ON_PRICES else load("tips")
    out = kernel.run(get_template(name), df=frame)
    assert out.error is None, out.error
    assert out.metrics
    if name != "counts":  # a count is its own answer: no chart
        assert out.figures


@pytest.mark.kernel
def test_odd_column_names_run_and_give_the_right_numbers(kernel):
    tips = load("tips").rename(columns={"total_bill": INJECTION, "tip": "tip amount ($)"})
    code = get_template("correlation", frame="tips", columns=[INJECTION, "tip amount ($)"])
    out = kernel.run(code, tips=tips)
    assert out.error is None, out.error
    expected = np.corrcoef(tips[INJECTION], tips["tip amount ($)"])[0, 1]
    assert out.metrics["strongest_correlation"] == pytest.approx(expected)
    assert out.metrics["strongest_pair"] == f"{INJECTION} ~ tip amount ($)"


@pytest.mark.kernel
def test_the_portfolio_template_accepts_a_returns_column(kernel):
    returns = pd.DataFrame({"ret": [0.10, -0.20, 0.05, 0.10]})
    code = get_template("portfolio_performance", frame="strategy", columns=["ret"],
                        column_holds="returns", periods_per_year=12)
    out = kernel.run(code, strategy=returns)
    assert out.error is None, out.error
    equity = np.cumprod(1 + returns["ret"].to_numpy())  # 1.1, 0.88, 0.924, 1.0164
    assert out.metrics["total_return_pct"] == pytest.approx(100 * (equity[-1] - 1), abs=0.005)
    assert out.metrics["max_drawdown_pct"] == pytest.approx(100 * (0.88 / 1.1 - 1), abs=0.005)
    assert out.metrics["max_drawdown_date"] == 1  # no dates: the row
    assert out.figures == ["Equity curve (growth of 1); Drawdown from the running peak"]


@pytest.mark.kernel
def test_summary_handles_cells_holding_lists_and_dicts(kernel):
    frame = pd.DataFrame({"tags": [["a", "b"], ["c"], ["a", "b"]] * 4,
                          "meta": [{"k": 1}, None, None] * 4})
    code = get_template("summary", frame="items")
    assert SafetyValidator().validate(code).allowed
    out = kernel.run(code, items=frame)
    assert out.error is None, out.error
    assert out.metrics["rows"] == 12 and out.metrics["duplicate_rows"] == 9


@pytest.mark.kernel
@pytest.mark.parametrize("name", ["summary", "correlation"])
def test_durations_are_not_drawn_or_correlated_as_numbers(kernel, name):
    # pandas counts timedelta64 as "number"; matplotlib cannot draw it, nor corr() use it.
    frame = pd.DataFrame({"took": pd.to_timedelta(range(20), unit="h"),
                          "cost": [float(i % 7) for i in range(20)],
                          "size": [float(i % 5) for i in range(20)]})
    out = kernel.run(get_template(name, frame="jobs"), jobs=frame)
    assert out.error is None, out.error
    compared = out.metrics["numeric_columns" if name == "summary" else "columns_compared"]
    assert compared == 2  # cost and size
