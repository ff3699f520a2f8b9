"""Check that the numbers an insight states come from the executed results.

A model writing a summary can invent a figure that looks right. Every number in
an insight must therefore match a number in the metrics, the printed output or
the question, allowing for rounding to the decimals it is written with ("3.0"
matches 2.998), for percentages ("12.3%" matches 0.1234), for thousands/millions
suffixes ("1.2M" matches 1,234,567), for round figures ("1,200" matches 1,234.5)
and for sign ("fell 4.2%" matches -0.042).

Statements with a number that matches nothing are kept but flagged, e.g.
"Average tip is 4.25 (unverified: 4.25 not in the results)": dropping them would
hide what the model said, flagging lets the reader judge. Small whole numbers
(0 to 10) are not checked: in prose they are wording ("the 3 largest days"), not
results.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Iterable
from typing import Any

NUMBER = re.compile(
    r"(?<![\w.])(?P<sign>[-−]?)"
    r"(?P<digits>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"
    r"(?:[eE](?P<exp>[-+]?\d+))?"
    r"(?:\s?(?P<suffix>%|percent\b|k\b|K\b|thousand\b|M\b|million\b|bn\b|B\b|billion\b))?"
)
SCALES = {"%": 0.01, "percent": 0.01, "k": 1e3, "K": 1e3, "thousand": 1e3, "M": 1e6,
          "million": 1e6, "bn": 1e9, "B": 1e9, "billion": 1e9}
UNCHECKED_UP_TO = 10


class NumberSet:
    """The absolute values of every number found in the results, for rounding-aware lookup."""

    def __init__(self, values: Iterable[float]):
        self._values = sorted(abs(v) for v in values if math.isfinite(v))

    def contains(self, value: float, tolerance: float) -> bool:
        value = abs(value)
        tolerance += 1e-12 * max(1.0, value)  # float noise: 0.1 * 100 is 10.000000000000002
        i = bisect.bisect_left(self._values, value - tolerance)
        return i < len(self._values) and self._values[i] <= value + tolerance


def numbers_in_text(text: str) -> list[float]:
    return [_value(m) for m in NUMBER.finditer(text)]


def numbers_in(value: Any) -> list[float]:
    """Every number in a JSON-like value: numeric leaves and numbers written inside strings."""
    if isinstance(value, bool):
        return []
    if isinstance(value, (int, float)):
        return [float(value)]
    if isinstance(value, str):
        return numbers_in_text(value)
    if isinstance(value, dict):
        return [n for v in value.values() for n in numbers_in(v)]
    if isinstance(value, (list, tuple)):
        return [n for v in value for n in numbers_in(v)]
    return []


def unsupported_numbers(statement: str, known: NumberSet) -> list[str]:
    """The numbers written in ``statement`` that match nothing in ``known``, as written."""
    missing = []
    for match in NUMBER.finditer(statement):
        digits, suffix = match["digits"], match["suffix"]
        value = _value(match, with_suffix=False)
        if not suffix and not match["exp"] and "." not in digits and abs(value) <= UNCHECKED_UP_TO:
            continue
        if not _matches(value, digits, suffix, bool(match["exp"]), known):
            missing.append(match.group(0).strip())
    return missing


def ground_insights(statements: list[str], metrics: Any, output: str, *also: str) -> list[str]:
    """``statements`` with a visible note on each one that states a number not in the results."""
    known = NumberSet(numbers_in(metrics) + numbers_in_text(output) +
                      [n for text in also for n in numbers_in_text(text)])
    grounded = []
    for statement in statements:
        missing = unsupported_numbers(statement, known)
        if missing:
            statement = f"{statement} (unverified: {', '.join(missing)} not in the results)"
        grounded.append(statement)
    return grounded


def _value(match: re.Match, with_suffix: bool = True) -> float:
    value = float(match["digits"].replace(",", ""))
    if match["exp"]:
        value *= 10.0 ** int(match["exp"])
    if with_suffix and match["suffix"]:
        value *= SCALES[match["suffix"]]
    return -value if match["sign"] else value


def _matches(value: float, digits: str, suffix: str | None, exp: bool, known: NumberSet) -> bool:
    if exp:  # scientific notation: compare to its own precision
        tolerance = abs(value) * 5e-3
    else:
        decimals = len(digits.split(".")[1]) if "." in digits else 0
        tolerance = 0.5 * 10.0 ** -decimals
        if not decimals:  # "1,200" may be 1234.5 rounded to two significant figures
            whole = digits.replace(",", "")
            zeros = len(whole) - len(whole.rstrip("0")) if whole.strip("0") else 0
            tolerance = 0.5 * 10.0 ** zeros
    scales = [1.0] + ([SCALES[suffix]] if suffix else [])
    # As written ("12.3" in the output) or scaled back ("12.3%" is 0.123 in the metrics).
    return any(known.contains(value * s, tolerance * s) for s in scales)
