"""Rows and derived columns a question defines: "tips over 5", "for MSFT", "tip percent".

Each becomes one line of code run before the analysis, on a copy of the frame, and a
phrase of the explanation, so the reading is stated. Values reach the code only as
``repr()`` of a number or of a value the data context lists, never as question text.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

from ...context import ColumnInfo, FrameInfo
from .matching import GROUPING, Question, holds_day_names, stem

COMPARISONS = {
    ">": ("over", "above", "more than", "greater than", "higher than", "larger than",
          "exceeding"),
    ">=": ("at least",),
    "<": ("under", "below", "less than", "lower than", "smaller than"),
    "<=": ("at most",),
}
# A number before these is a length of time ("over 10 days"), not a value compared.
DURATIONS = {"day", "week", "month", "quarter", "year", "period", "observation", "row",
             "trading"}
# Symbols are read as the same words: "tip > 5" is "tip over 5".
SYMBOLS = ((">=", " at least "), ("<=", " at most "), (">", " over "), ("<", " under "))
WEEKEND_DAYS = ("sat", "sun")
# Words after a column that name its quantity, not another column: "murder rate" is the
# murder column, "alcohol content" the alcohol column, "co2 levels" the co2 column.
QUANTITY = {"rate", "rates", "level", "levels", "content", "amount", "amounts", "value",
            "values", "reading", "readings", "score", "scores", "concentration", "figure",
            "figures"}
# Words between a column and its comparison: "where urban is above 80".
LINKS = QUANTITY | {"is", "are", "was", "were", "of"}
# "patients older than 60": a comparison of the one column named age.
AGES = {">": ("older than", "over the age of", "aged over"), "<": ("younger than",
                                                                   "aged under")}
# Words before "X per Y" that make Y the groups ("median proline per target"), not a divisor.
AGGREGATES = {"average", "mean", "median", "total", "sum", "max", "maximum", "min", "minimum",
              "avg", "highest", "lowest", "count"}


@dataclass
class Selection:
    lines: list[str] = field(default_factory=list)  # code, with $frame for the working copy
    said: list[str] = field(default_factory=list)  # the reading, in words
    positions: set[int] = field(default_factory=set)  # words of the question read here
    columns: set[str] = field(default_factory=set)  # columns the selection reads
    derived: list[ColumnInfo] = field(default_factory=list)
    # Conditions read but not combinable into one selection, said why ("in 2005 ... in 2008").
    problem: str | None = None
    # Rows of years apart ("in 2005 or 2008"): one series with a gap in it.
    gap: str | None = None

    def __bool__(self) -> bool:
        return bool(self.lines)


def derived_columns(q: Question) -> Selection:
    """ "tip percent" (of total_bill), "tip per size": new numeric columns for the frame."""
    found = Selection()
    numeric = {c.name: c for c in q.frame.columns_of_kind("numeric")}
    for mention in q.mentions:
        if mention.column.name not in numeric or mention.end >= len(q.words):
            continue
        word = q.words[mention.end]
        if word in ("percent", "percentage", "pct", "share", "rate"):
            base = _percent_base(q, mention.end + 1, mention.column)
            if base is None:
                continue
            name = f"{mention.column.name}_{word}"
            _derive(found, name, mention, base, "100 * ", "100 × ")
            base_mention = next((m for m in q.mentions if m.column == base
                                 and m.start in (mention.end + 2, mention.end + 3)), None)
            if base_mention is not None:  # "of (the) total bill" is part of the definition
                found.positions |= set(range(mention.end + 1, base_mention.end))
        elif word == "per" and mention.end + 1 < len(q.words):
            base = next((m.column for m in q.mentions if m.start == mention.end + 1
                         and m.column.kind == "numeric"), None)
            if base is None or not _divides(q, mention, base):
                continue
            name = f"{mention.column.name}_per_{base.name}"
            _derive(found, name, mention, base)
        else:
            continue
        found.derived.append(ColumnInfo(name=name, dtype="float64", kind="numeric", missing=0,
                                        unique=q.frame.rows))
    return found


def _divides(q: Question, mention, base: ColumnInfo) -> bool:
    """Whether "X per Y" is a ratio ("tip per size") rather than groups: a year, a column with
    zeros or negatives, or an aggregate asked of X ("total invest per year") are groups."""
    low = base.stats.get("min")
    if re.search(r"year|date|time|month|day|week|quarter", base.name, re.IGNORECASE) \
            or not isinstance(low, (int, float)) or low <= 0:
        return False
    return not (mention.start and q.words[mention.start - 1] in AGGREGATES
                and base.unique <= 30)


def _percent_base(q: Question, after: int, part: ColumnInfo) -> ColumnInfo | None:
    """The whole a percentage is of: named ("of total_bill"), else the one "total" column."""
    for m in q.mentions:
        if m.start in (after + 1, after + 2) and q.words[after] == "of" \
                and m.column.kind == "numeric":
            return m.column
    if after < len(q.words) and q.words[after] == "of":
        return None  # "percent of total", "share of all tips": a whole no column is
    totals = [c for c in q.frame.columns_of_kind("numeric")
              if "total" in c.name.lower() and c.name != part.name]
    return totals[0] if len(totals) == 1 else None


def with_derived(frame: FrameInfo, derived: list[ColumnInfo]) -> FrameInfo:
    return dataclasses.replace(frame, columns=(*frame.columns, *derived))


def row_filters(q: Question, groups: str | None = None) -> Selection:
    """Conditions on rows: a number compared, a category value, a year, weekends."""
    found = Selection()
    _numeric_conditions(q, found)
    _value_conditions(q, found, groups)
    _yes_no_conditions(q, found, groups)
    _date_conditions(q, found)
    # "where", "with", "only" introduce a condition read above.
    found.positions |= {i - 1 for i in found.positions
                        if i > 0 and q.words[i - 1] in ("where", "with", "only", "when")}
    return found


def _yes_no_conditions(q: Question, found: Selection, groups: str | None) -> None:
    """ "for smokers", "among non smokers": a yes/no column named as the rows' kind."""
    for mention in q.mentions:
        column = mention.column
        values = {str(v).lower(): str(v) for v in column.stats.get("top", {})}
        if column.name == groups or set(values) != {"yes", "no"} or mention.start == 0:
            continue
        negated = q.words[mention.start - 1] in ("non", "not", "no")
        before = mention.start - 1 - negated
        if before < 0 or q.words[before] not in ("for", "among", "with", "by"):
            continue
        if q.words[before] == "by" or (q.words[mention.end:mention.end + 1] == ["and"]):
            continue  # "by smoker", "smokers and non smokers": the groups
        value = values["no" if negated else "yes"]
        found.lines.append(f"$frame = $frame[$frame[{column.name!r}].astype(str) == {value!r}]")
        found.said.append(f"{column.name} is {value}")
        found.columns.add(column.name)
        found.positions |= set(range(before + 1, mention.end))


def _numeric_conditions(q: Question, found: Selection) -> None:
    """A named numeric column, a comparison and a number: "tips over 5", "size at least 3"."""
    ends = {m.end: m for m in q.mentions if m.column.kind == "numeric"}
    for m in list(ends.values()):  # "murder rate over 10", "urban is above 80"
        end = m.end
        while end < len(q.words) and q.words[end] in LINKS and end - m.end < 2:
            end += 1
            ends.setdefault(end, m)
    ages = [c for c in q.frame.columns_of_kind("numeric") if stem(c.name.lower()) == "age"]
    phrases_of = {op: [(phrase, None) for phrase in phrases]
                  + [(phrase, ages[0]) for phrase in AGES.get(op, ()) if len(ages) == 1]
                  for op, phrases in COMPARISONS.items()}
    for op, phrases in phrases_of.items():
        for phrase, implied in phrases:
            target = phrase.split()
            for i in range(len(q.words) - len(target)):
                at = i + len(target)
                if q.words[i:at] != target or not q.words[at].isdigit() \
                        or (implied is None and i not in ends):
                    continue
                value, size = number_at(q, at)
                if at + size < len(q.words) and stem(q.words[at + size]) in DURATIONS:
                    continue  # "VaR over 10 days": a horizon, not a condition on the rows
                # "older than 60" names its column by the phrase; "tips over 5" before it.
                column, start = (implied, i) if implied is not None else (ends[i].column,
                                                                          ends[i].start)
                found.lines.append(f"$frame = $frame[$frame[{column.name!r}] {op} {value!r}]")
                found.said.append(f"{column.name} {op} {value:g}")
                found.columns.add(column.name)
                found.positions |= set(range(start, at + size))


def number_at(q: Question, i: int) -> tuple[float, int]:
    """The number whose first word is ``i``, and how many words it takes."""
    return _number(q, i), _number_words(q, i)


def _number_words(q: Question, i: int) -> int:
    """ "5" is one word; "2.5" is read as "2", "5" and is two."""
    return 2 if i + 1 < len(q.words) and re.search(
        rf"\b{q.words[i]}\.{q.words[i + 1]}\b", q.text) else 1


def _number(q: Question, i: int) -> float:
    if _number_words(q, i) == 2:
        return float(f"{q.words[i]}.{q.words[i + 1]}")
    return float(q.words[i])


# Words before a value that turn its condition around: "for regions other than North",
# "every species except Adelie", "excluding Online".
NEGATIONS = (("not",), ("non",), ("except",), ("excluding",), ("exclude",), ("without",),
             ("besides",), ("other", "than"), ("apart", "from"), ("except", "for"),
             ("but", "not"), ("outside",),
             *(("not", place) for place in ("in", "on", "for", "from", "at", "of")))


def _negation_before(q: Question, start: int) -> int:
    """How many words before ``start`` negate the value there (0: none)."""
    for words in sorted(NEGATIONS, key=len, reverse=True):
        if q.words[max(0, start - len(words)):start] == list(words):
            return len(words)
    return 0


def _value_conditions(q: Question, found: Selection, groups: str | None) -> None:
    by_column: dict[tuple[str, bool], list] = {}
    previous = None
    for value in sorted(q.values, key=lambda v: v.start):
        words = _negation_before(q, value.start)
        negated = bool(words)
        if previous is not None and previous[0].column == value.column:
            between = q.words[previous[0].start + len(previous[0].value.split()):value.start]
            if set(between) <= {"and", "or", "nor"}:  # "except North and South": both
                negated = negated or previous[1]
        by_column.setdefault((value.column.name, negated), []).append(value)
        found.positions |= set(range(value.start - words, value.start))
        previous = (value, negated)
    for (column, negated), values in by_column.items():
        chosen = sorted({v.value for v in values})
        if column == groups and not negated and len(chosen) >= values[0].column.unique:
            continue  # "tips of Lunch and Dinner by time": every group, as grouping shows
        # Otherwise the named groups are the rows: "tip by day for Sat and Sun" shows two.
        if len(chosen) == 1:
            found.lines.append(f"$frame = $frame[$frame[{column!r}].astype(str) "
                               f"{'!=' if negated else '=='} {chosen[0]!r}]")
            found.said.append(f"{column} is {'not ' if negated else ''}{chosen[0]}")
        else:
            found.lines.append(f"$frame = $frame[{'~' if negated else ''}$frame[{column!r}]"
                               f".astype(str).isin({chosen!r})]")
            found.said.append(f"{column} {'not ' if negated else ''}in {', '.join(chosen)}")
        found.columns.add(column)
        for v in values:
            found.positions |= set(range(v.start, v.start + max(1, len(v.value.split()))))


def _date_conditions(q: Question, found: Selection) -> None:
    dates = q.frame.columns_of_kind("datetime")
    years = [c for c in q.frame.columns_of_kind("numeric") if c.name.lower() == "year"]
    date = dates[0] if len(dates) == 1 else years[0] if len(years) == 1 and not dates else None
    index_dates = q.frame.index.startswith("DatetimeIndex")
    where = (f"$frame[{date.name!r}]" + (".dt" if date.kind == "datetime" else "") if date
             else "$frame.index" if index_dates else None)
    year = (f"{where}.year" if date is None or date.kind == "datetime" else where) \
        if where else None
    for i, word in enumerate(q.words):
        if YEAR.fullmatch(word) and year:
            if i in found.positions:
                continue  # the second year of a range or list read below
            _year_condition(q, found, i, year)
            if date and i > 1 and any(m.column == date and m.end == i - 1 for m in q.mentions):
                found.positions.add(i - 2)  # "years after 1945": the year column's condition
            if date:
                found.columns.add(date.name)
        elif stem(word) in ("weekend", "weekday") and not (i and q.words[i - 1] in GROUPING):
            # "on weekdays" selects rows; "by weekday" asks for groups, which no filter is.
            weekend = stem(word) == "weekend"
            day_column = next((c for c in q.frame.columns_of_kind("categorical")
                               if holds_day_names(c)), None)
            if day_column is not None:
                # Read from the values themselves: the description lists only the most
                # frequent few, which need not include both weekend days.
                test = (f"$frame[{day_column.name!r}].astype(str).str[:3].str.lower()"
                        f".isin({list(WEEKEND_DAYS)!r})")
                found.columns.add(day_column.name)
            elif where:
                test = f"({where}.dayofweek >= 5)"
                if date:
                    found.columns.add(date.name)
            else:
                continue
            found.lines.append(f"$frame = $frame[{test if weekend else '~' + test}]")
            found.said.append("on weekends" if weekend else "on weekdays")
            found.positions |= {i}


YEAR = re.compile(r"(?:19|20)\d\d")
# Words before a year that bound it; "in 2008" (or none) is the year itself.
YEAR_BOUNDS = {"since": ">=", "after": ">", "from": ">=", "before": "<", "until": "<="}
YEAR_LEADS = ("in", "during", "for", "since", "after", "from", "before", "until", "between")


def _year_condition(q: Question, found: Selection, i: int, year: str) -> None:
    """ "in 2008", "since 2005", "between 2003 and 2005", "from 2003 to 2005", "in 2003 or
    2005", "except 2008": one condition on the year of the rows. Two years are a range or a
    list, never two conditions that no row meets at once."""
    before = q.words[i - 1] if i else ""
    link = q.words[i + 1] if i + 1 < len(q.words) else ""
    second = i + 2 if link in ("and", "or", "to", "through", "until") else i + 1
    first = int(q.words[i])
    if second < len(q.words) and YEAR.fullmatch(q.words[second]):
        last = int(q.words[second])
        ranged = before in ("between", "from") or link in ("to", "through", "until") or (
            second == i + 1 and re.search(rf"{first}\s*[-–]\s*{last}", q.text))
        if ranged and first < last:
            found.lines.append(f"$frame = $frame[{year}.between({first}, {last})]")
            found.said.append(f"{first} <= year <= {last}")
        elif link in ("and", "or") and not ranged:
            found.lines.append(f"$frame = $frame[{year}.isin({[first, last]!r})]")
            found.said.append(f"in {first} or {last}")
            if abs(last - first) > 1:
                found.gap = f"{first} and {last}"
        else:
            found.problem = f"the years {first} and {last} are neither a range nor a list"
        found.positions |= set(range(i - (before in YEAR_LEADS), second + 1))
        return
    negation = _negation_before(q, i)
    op = "!=" if negation else YEAR_BOUNDS.get(before, "==")
    found.lines.append(f"$frame = $frame[{year} {op} {first}]")
    found.said.append({"==": f"in {first}", "!=": f"not in {first}"}.get(op, f"year {op} {first}"))
    found.positions |= set(range(i - (negation or before in YEAR_LEADS), i + 1))
    if op == "==" and sum(s.startswith("in ") for s in found.said) > 1:
        found.problem = "it names two years that no row can be in at once"


def _derive(found, name: str, mention, base, scale: str = "", said: str = "") -> None:
    """A derived column ``name`` = (scale) mention's column / base, as code and in words."""
    column = mention.column.name
    found.lines.append(f"$frame[{name!r}] = {scale}$frame[{column!r}] / $frame[{base.name!r}]")
    found.said.append(f"{name} = {said}{column} / {base.name}")
    found.columns |= {column, base.name}
    found.positions |= {mention.end}
