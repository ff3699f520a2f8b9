"""What a template is: a notebook cell with a parameter block, and insights over its metrics.

A template's code is fixed text. Only its parameter block changes: each parameter
becomes one assignment (``column = 'total_bill'``) whose value is written with
``repr()`` of a checked plain value (str, int, float, None or a list of str), so a
column name can never become code. The frame's name is substituted as-is, which is
why it must be a Python identifier. An unbound parameter falls back to a small
default expression evaluated in the kernel (e.g. "the first numeric column"), so
``get_template(name)`` alone is runnable on any suitable frame.
"""

from __future__ import annotations

import ast
import keyword
import math
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from ..errors import InputError

# Insights take the executed metrics and the bindings the code was rendered with.
Insights = Callable[[dict[str, Any], dict[str, Any]], list[str]]


# Shared by the templates that work on one column over time (uses $frame, column, date_column).
DATED_SERIES = """\
# Index the values by date (a date column, else the frame's own index) and order them.
if date_column is None:
    series = $frame[column]
else:
    series = $frame.set_index(pd.to_datetime($frame[date_column]))[column]
series = pd.to_numeric(series, errors="coerce").dropna()
"""


# Shared by the financial templates (uses $frame, columns, column_holds, date_column,
# symbol_column): one column per asset indexed by date, and the per-period returns.
ASSET_RETURNS = """\
# One column per asset, indexed by date; a long (date, symbol, value) table is pivoted.
if symbol_column is not None:
    asset_table = $frame.pivot_table(
        index=date_column, columns=symbol_column, values=columns[0])
    asset_table.index = pd.to_datetime(asset_table.index)
elif date_column is not None:
    asset_table = $frame.set_index(pd.to_datetime($frame[date_column]))[columns]
else:
    asset_table = $frame[columns]
asset_table = asset_table.apply(pd.to_numeric, errors="coerce").sort_index()
# Returns of each period; an asset listed later simply starts later.
asset_returns = asset_table.pct_change(fill_method=None) if column_holds == "prices" \\
    else asset_table
asset_returns = asset_returns.dropna(how="all")
"""

@dataclass(frozen=True)
class Param:
    name: str
    # "column", "columns", "optional_column", "int", "float", "choice" or "strings"
    kind: str
    help: str
    default: str  # Python source used when unbound; may use $frame
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Template:
    name: str
    description: str
    example: str  # a question the offline generator maps to this template
    params: tuple[Param, ...]
    code: str  # the cell, with $frame for the frame's name and $params for the block
    insights: Insights = field(repr=False, default=lambda metrics, bindings: [])

    def render(self, frame: str = "df", **bindings: Any) -> str:
        if not (frame.isidentifier() and not keyword.iskeyword(frame)):
            raise InputError(
                f"{frame!r} is not a valid Python name for a DataFrame.",
                "Bind the frame to a plain variable name first, e.g. `df = ...`.",
            )
        known = {p.name: p for p in self.params}
        unknown = sorted(set(bindings) - set(known))
        if unknown:
            raise InputError(
                f"Template {self.name!r} has no parameter {', '.join(map(repr, unknown))}.",
                f"Its parameters are: {', '.join(known) or 'none'}.",
            )
        lines = []
        for param in self.params:
            if param.name in bindings:
                value = _literal(param, bindings[param.name])
            else:
                value = string.Template(param.default).substitute(frame=frame)
            lines.append(f"{param.name} = {value}  # {param.help}")
        # One substitution pass, so a "$" inside a column name is never expanded.
        if frame in self.own_names:
            raise InputError(
                f"The frame's name {frame!r} is also a variable of the {self.name!r} code, which "
                "would overwrite it.",
                f"Bind the frame to another name first, e.g. `{frame}_df = {frame}`.",
            )
        return string.Template(self.code).substitute(frame=frame, params="\n".join(lines))

    @cached_property
    def own_names(self) -> frozenset[str]:
        """Every name the code itself binds or reads (variables, imports, builtins)."""
        placeholder = "frame_placeholder"
        params = "\n".join(f"{p.name} = None" for p in self.params)
        code = string.Template(self.code).substitute(frame=placeholder, params=params)
        names = set()
        for node in ast.walk(ast.parse(code)):
            if isinstance(node, ast.Name):
                names.add(node.id)
            elif isinstance(node, ast.alias):
                names.add((node.asname or node.name).split(".")[0])
        return frozenset(names - {placeholder})


# The financial templates' parameters, in the order ASSET_RETURNS reads them.
def asset_params(holds_default: str = '"prices"', holds: tuple[str, ...] = ("prices", "returns")
                 ) -> tuple[Param, ...]:
    return (
        Param("columns", "columns", "price or return columns, one per asset",
              'list($frame.select_dtypes("number").columns)'),
        Param("column_holds", "choice", " or ".join(f'"{h}"' for h in holds), holds_default,
              holds),
        Param("date_column", "optional_column", "None means the frame's index", "None"),
        Param("symbol_column", "optional_column",
              "a long table's asset column (None: one column per asset)", "None"),
    )


def _literal(param: Param, value: Any) -> str:
    """``repr`` of a checked plain value: the only way a binding reaches the code."""
    ok = {
        "column": isinstance(value, str),
        "optional_column": value is None or isinstance(value, str),
        "columns": value is None
        or (isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)),
        "int": isinstance(value, int) and not isinstance(value, bool) and value > 0,
        "float": isinstance(value, (int, float)) and not isinstance(value, bool)
        and math.isfinite(value),
        "choice": value in param.choices,
        "strings": value is None
        or (isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)),
    }[param.kind]
    if not ok:
        expected = {
            "column": "a column name (str)",
            "optional_column": "a column name (str) or None",
            "columns": "a list of column names or None",
            "int": "a positive int",
            "float": "a finite number",
            "choice": " or ".join(map(repr, param.choices)),
            "strings": "a list of str or None",
        }[param.kind]
        raise InputError(
            f"{value!r} is not a valid value for {param.name!r}.", f"Pass {expected}."
        )
    if param.kind in ("columns", "strings") and value is not None:
        value = list(value)
    if param.kind == "float":
        value = float(value)
    return repr(value)


# Formatting for insights: numbers are written as they appear in the metrics table,
# rounded, so the grounding check can find each one.


def number(value: Any) -> str:
    value = float(value)
    if value.is_integer() and abs(value) < 1e15:
        return f"{value:,.0f}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if value != 0 and abs(value) < 0.01:
        return f"{value:.2g}"
    return f"{value:.2f}"


def percent(value: Any) -> str:
    return f"{float(value):.1%}"


def finite(metrics: dict[str, Any], *keys: str) -> bool:
    """True when every key holds a finite number (metrics may hold "NaN" strings)."""
    for key in keys:
        value = metrics.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if not math.isfinite(value):
            return False
    return True


def percent_points(value: Any) -> str:
    """A metric already in percent (-57.49) written as the insight says it: "-57.5%"."""
    return f"{float(value):.1f}%"


def indented(code: str) -> str:
    """``code`` one block deeper, to run a shared snippet under an ``if``."""
    return "".join(f"    {line}" if line.strip() else line
                   for line in code.splitlines(keepends=True))
