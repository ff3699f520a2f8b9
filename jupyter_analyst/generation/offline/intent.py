"""Reading a question offline: which template answers it, bound to which columns.

When in doubt, refuse. A question gets code only if its wording matches one
analysis, every column it names is used by that analysis, and it asks for nothing
the template would silently leave out (a row filter, a forecast, a test...).
Otherwise a ``NotUnderstoodError`` (or an ``InputError`` for a column that does not
exist) says what the offline generator can do instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ...context import ColumnInfo, DataContext, FrameInfo
from ...errors import InputError, NotUnderstoodError
from ...templates import TEMPLATES
from .matching import GENERIC, Question, stem, words

# Checked against the question's words outside column names, in this order of priority:
# the first that matches is the analysis; later ones must be part of it (see ABSORBS).
INTENTS = {
    "portfolio_performance": r"sharpe|draw ?downs?|portfolio|equity curves?|total returns?|"
                             r"annuali[sz]ed|volatility|cagr|cumulative returns?|performance",
    "correlation": r"correlat\w*|heat ?maps?|relationships? between|related|associat\w*",
    "time_series": r"over time|time ?series|trend\w*|rolling|moving (?:average|mean)s?|"
                   r"resampl\w*|evolution|evolv\w*",
    "group_comparison": r"compare|comparison|comparing|versus|vs",
    "top_rows": r"(?:top|bottom|largest|smallest|highest|lowest|biggest) \d+|"
                r"\d+ (?:largest|smallest|highest|lowest|biggest)",
    "value_counts": r"value counts?|most (?:common|frequent|popular)|frequenc\w*|how many|"
                    r"counts?|top \d+|unique values|distinct values|breakdown",
    "distribution": r"distribut\w*|histograms?|spread|skew\w*|kurtosis|outliers?|dispersion|"
                    r"variance|standard deviation|std|percentiles?|quantiles?|quartiles?",
    "summary": r"summar\w*|describe|description|overview|statistics|stats|profile|explore|"
               r"eda|first look|tell me about|info",
}
INTENT_PATTERNS = {name: re.compile(rf"\b(?:{rx})\b") for name, rx in INTENTS.items()}

# What each analysis already covers: "the trend of the equity curve" is still portfolio work.
ABSORBS = {
    "portfolio_performance": {"time_series", "summary"},
    "correlation": {"summary"},
    "time_series": {"summary"},
    "group_comparison": {"distribution", "summary", "value_counts", "top_rows"},
    "top_rows": {"value_counts", "summary"},
    "value_counts": {"distribution", "summary"},
    "distribution": {"summary"},
    "summary": set(),
}

# Everyday words of a question that say nothing about which column or analysis is meant.
GLUE = set("""
i me my we our you your it its their is isn are aren was were be been being do does doesn did
can could would should will may please let lets want need like know tell show showing shown
plot give draw make create calculate compute display visualize visualise generate produce
report get find see look looks view check analyze analyse analysis perform run conduct do
and or of for by in on at
to from with as than then also into about what whats which who how there any some way ways
vary varies differ differs difference differences up out so s t new bar line graph figure
chart visual visually quick quickly simple basic full detailed underneath alongside together
against across between among versus vs per each every
""".split())

# Analyses no template does: answering with a template would answer another question.
UNSUPPORTED = re.compile(
    r"\b(?:forecast\w*|predict\w*|projections?|extrapolat\w*|regress\w*|model(?:s|ling|ing)?|"
    r"cluster\w*|classif\w*|anomal\w*|significan\w*|hypothes\w*|t test|anova|chi square\w*|"
    r"p values?|imput\w*|merge|join|pivot|sortino|calmar|value at risk|beta|alpha|"
    r"seasonal\w*|decompos\w*|autocorrelat\w*|causal\w*|causes?|least common|"
    r"ranks? of|sort\w*)\b"
)
# Wording that selects rows; templates always use every row. ("Rolling mean over 30" is a
# window, not a filter.)
FILTERS = re.compile(
    r"\b(?:where|only|except|excluding|exclude|without|before|after|since|until|"
    r"(?:above|below|under|greater than|less than|more than|fewer than|at least|at most) \d+|"
    r"(?<!rolling )(?<!moving )(?<!mean )(?<!average )(?<!window )over \d+|(?:19|20)\d\d)\b"
)
FILTER_SYMBOLS = re.compile(r"[<>]=?\s*-?\d|==|!=")

STATISTICS = {
    "mean": ("average", "mean", "avg"),
    "median": ("median",),
    "sum": ("sum", "total"),
    "std": ("std", "deviation", "variability"),
    "max": ("max", "maximum", "highest", "largest", "biggest"),
    "min": ("min", "minimum", "lowest", "smallest"),
}
GROUPING_WORDS = ("by", "per", "across", "each", "every", "among", "between", "vs", "versus",
                  "for")
PERIODS = {"day": "daily", "week": "weekly", "month": "monthly", "quarter": "quarterly",
           "year": "yearly"}
PERIODS_PER_YEAR = {"daily": 252, "weekly": 52, "monthly": 12, "quarterly": 4, "yearly": 1}
# Words that name the data in a portfolio question ("Sharpe ratio of the returns") but would
# name a missing column in any other question ("distribution of returns" on prices).
FINANCE = {"return", "returns", "price", "prices", "portfolio", "equity", "curve", "strategy",
           "drawdown", "drawdowns", "volatility", "sharpe", "ratio", "risk", "asset", "stock",
           "investment", "performance", "rate", "free", "annualised", "annualized"}
PRICE_NAME = re.compile(r"price|close|adj|nav|equity|value|level|index|px", re.IGNORECASE)
RETURN_NAME = re.compile(r"return|ret$|^ret|pnl|pct|change|yield", re.IGNORECASE)
DATE_NAME = re.compile(r"date|time|timestamp|day|month|period", re.IGNORECASE)
MAX_GROUPS = 30


@dataclass(frozen=True)
class Plan:
    template: str
    frame: str
    bindings: dict[str, Any]
    explanation: str
    uses: frozenset[str] = field(default_factory=frozenset)  # column names the code reads

    def code(self) -> str:
        return TEMPLATES[self.template].render(self.frame, **self.bindings)


def plan(question: str, context: DataContext, analysis_type: str | None = None) -> Plan:
    """The template and bindings that answer ``question``, or an error saying why not."""
    text = " ".join(str(question).split())
    if not text:
        raise InputError("The question is empty.",
                         "Write what you want to know in the cell, e.g. 'Summarise the data'.")
    frame = _choose_frame(text, context)
    q = Question(text, frame)
    free = " ".join(q.free_words)  # so a column called "count" is not an intent
    _refuse_unsupported(q, free, text)
    _refuse_undescribed(q)
    hint = _analysis_type(analysis_type) if analysis_type else None
    financial = hint == "portfolio_performance" or (
        hint is None and INTENT_PATTERNS["portfolio_performance"].search(free))
    _refuse_unknown_names(q, context, FINANCE if financial else set())
    found = [hint] if hint else _detect(q, free)
    result = BUILDERS[found[0]](q, free, found)
    _refuse_unused(q, result)
    _refuse_filters(q, result)
    return result


def _choose_frame(text: str, context: DataContext) -> FrameInfo:
    if len(context.frames) == 1:
        return context.frames[0]
    said = " " + " ".join(words(text)) + " "
    named = [f for f in context.frames if f" {' '.join(words(f.name))} " in said]
    if len(named) > 1:
        raise NotUnderstoodError(
            f"The question names several frames ({', '.join(f.name for f in named)}); the "
            "offline templates analyse one frame at a time.",
            "Ask about one frame per cell, or set ANTHROPIC_API_KEY to ask free-form questions "
            "with Claude.",
        )
    return named[0] if named else context.frames[0]


def _analysis_type(hint: str) -> str:
    key = hint.strip().lower().replace("-", "_").replace(" ", "_")
    aliases = {"portfolio": "portfolio_performance", "performance": "portfolio_performance",
               "timeseries": "time_series", "trend": "time_series", "describe": "summary",
               "overview": "summary", "eda": "summary", "comparison": "group_comparison",
               "groupby": "group_comparison", "counts": "value_counts", "top_n": "top_rows",
               "largest": "top_rows",
               "correlations": "correlation"}
    key = aliases.get(key, key)
    if key not in TEMPLATES:
        raise InputError(f"Unknown analysis type {hint!r}.",
                         f"Use one of: {', '.join(TEMPLATES)}, or leave it out.")
    return key


def _detect(q: Question, free: str) -> list[str]:
    found = [name for name, rx in INTENT_PATTERNS.items() if rx.search(free)]
    if _group_column(q) is not None and "group_comparison" not in found:
        found.append("group_comparison")
    if _period(q) and "time_series" not in found:
        found.append("time_series")
    if not found and _statistic(q) and q.columns("numeric"):
        found.append("distribution")  # "average tip": the distribution reports mean and median
    if not found:
        raise _not_understood(q.frame, "The offline generator does not recognise what this "
                                       f"question asks for: {q.text!r}.")
    found.sort(key=list(INTENTS).index)
    extra = [name for name in found[1:] if name not in ABSORBS[found[0]]]
    if extra:
        names = ", ".join(n.replace("_", " ") for n in [found[0], *extra])
        raise _not_understood(q.frame, f"The question asks for several analyses at once ({names});"
                                       " the offline templates do one at a time.")
    return found


def _refuse_unsupported(q: Question, free: str, text: str) -> None:
    match = UNSUPPORTED.search(free)
    if match:
        raise _not_understood(q.frame, f"The question asks for {match.group(0)!r}, which none of "
                                       "the offline templates does.")
    match = FILTERS.search(free) or FILTER_SYMBOLS.search(text)
    if match:
        raise _filter_error(q.frame, f"The question seems to select rows ({match.group(0)!r}); "
                                     "the offline templates always use every row.")


def _refuse_undescribed(q: Question) -> None:
    if q.undescribed:
        described = len(q.frame.columns)
        raise NotUnderstoodError(
            f"{q.undescribed[0]!r} is beyond the first {described} columns of {q.frame.name}, "
            "which are the only ones described in detail, so its type is unknown offline.",
            f"Select the columns you ask about, e.g. `%%analyze {q.frame.name}"
            f"[[{q.undescribed[0]!r}, ...]]`.",
        )


def _refuse_unknown_names(q: Question, context: DataContext, known: set[str]) -> None:
    frame_words = {w for f in context.frames for w in words(f.name)} | known
    after = ("of", "for", "by", "across", "per", "between", "among", "versus", "vs", "against",
             "with", "on", "in", "and", "compare", "plot", "correlate", "describe", "summarise",
             "summarize")
    unknown = q.unknown_names(after, frame_words)
    if unknown:
        columns = ", ".join(c.name for c in q.frame.columns)
        raise InputError(
            f"The question mentions {unknown[0]!r}, which is not a column of {q.frame.name} "
            f"(columns: {columns}).",
            "Name one of these columns as it is spelled. To look at some rows only, filter in "
            f"the cell argument, e.g. `%%analyze {q.frame.name}[...]`.",
        )


def _refuse_unused(q: Question, result: Plan) -> None:
    unused = [c.name for c in q.columns() if c.name not in result.uses]
    if unused:
        raise _not_understood(
            q.frame,
            f"The question names {', '.join(map(repr, unused))}, which the "
            f"{result.template.replace('_', ' ')} analysis would not use, so its answer would "
            "not be the one asked for.",
        )


def _refuse_filters(q: Question, result: Plan) -> None:
    """Category values ("Sun", "Dinner") select rows, unless they name the compared groups."""
    grouped = result.bindings.get("group_column")
    values = [v for v in q.values if v.column.name != grouped]
    if values:
        value = values[0]
        raise _filter_error(
            q.frame, f"The question names {value.value!r}, a value of column "
                     f"{value.column.name!r}: it seems to select rows, and the offline "
                     "templates always use every row.",
            example=f"{q.frame.name}[{q.frame.name}[{value.column.name!r}] == {value.value!r}]",
        )


def _not_understood(frame: FrameInfo, problem: str) -> NotUnderstoodError:
    numeric = next(iter(c.name for c in frame.columns_of_kind("numeric")), "price")
    group = next(iter(c.name for c in frame.columns_of_kind("categorical", "bool")), "category")
    examples = "\n".join(
        f"  - {t.name.replace('_', ' ')}: \"{t.example.format(numeric=numeric, group=group)}\""
        for t in TEMPLATES.values()
    )
    return NotUnderstoodError(
        problem,
        "Offline, one of these analyses can be asked at a time, naming columns as they are "
        f"spelled:\n{examples}\nFor free-form questions, set ANTHROPIC_API_KEY to use Claude.",
    )


def _filter_error(frame: FrameInfo, problem: str, example: str | None = None) -> NotUnderstoodError:
    example = example or f"{frame.name}[{frame.name}[\"column\"] > 0]"
    return NotUnderstoodError(
        problem,
        f"Filter in the cell argument instead, e.g. `%%analyze {example}`, and ask about the "
        "whole selection; or set ANTHROPIC_API_KEY to ask free-form questions with Claude.",
    )


def _ambiguous(frame: FrameInfo, what: str, candidates: list[ColumnInfo]) -> NotUnderstoodError:
    names = ", ".join(c.name for c in candidates) or "none"
    return NotUnderstoodError(
        f"The question does not say which {what} to use, and {frame.name} has several or none "
        f"({names}).",
        "Name the column in the question as it is spelled, e.g. "
        f"\"... of {candidates[0].name if candidates else 'price'}\".",
    )


# Reading details out of the question.


def _group_column(q: Question) -> ColumnInfo | None:
    """The column right after a grouping word: "tip by day", "compare bills across sex".

    A number groups only after "by", "per", "across" or "for each" ("tip by size"), and
    only if it has few values: "between size and tip" is a correlation.
    """
    for i in q.positions(*GROUPING_WORDS):
        column = q.column_after(i)
        if column is None or (q.words[i] == "for" and q.words[i + 1] not in ("each", "every")):
            continue
        if column.kind != "numeric":
            return column
        if q.words[i] in ("by", "per", "across", "for") and column.unique <= MAX_GROUPS:
            return column
    # "compare tip between Lunch and Dinner": two values of one column name its groups.
    by_column: dict[str, list[str]] = {}
    for value in q.values:
        by_column.setdefault(value.column.name, []).append(value.value)
    compared = [name for name, values in by_column.items() if len(set(values)) >= 2]
    if len(compared) == 1 and q.positions("compare", "comparing", "between", "vs", "versus"):
        return q.frame.column(compared[0])
    return None


def _period(q: Question) -> str | None:
    """A calendar period asked for: "monthly", "per month", "by week"."""
    for word in q.free_words:
        if word in PERIODS_PER_YEAR:
            return word
    for i in q.positions("per", "by", "each", "every", "a"):
        if i + 1 < len(q.words) and q.stems[i + 1] in PERIODS and q.column_after(i) is None:
            return PERIODS[q.stems[i + 1]]
    return None


def _statistic(q: Question) -> str | None:
    for name, spelled in STATISTICS.items():
        if any(w in spelled for w in q.free_words):
            return name
    return None


def _number_after(q: Question, *before: str) -> int | None:
    for i in q.positions(*before):
        if i + 1 < len(q.words) and q.words[i + 1].isdigit():
            return int(q.words[i + 1])
    return None


def _rolling_window(q: Question) -> int | None:
    """ "30-day rolling mean", "rolling mean over 30", "moving average of 20 days"."""
    for i in q.positions("rolling", "moving"):
        for j in (i - 2, i - 1, i + 1, i + 2, i + 3):
            if 0 <= j < len(q.words) and q.words[j].isdigit() and int(q.words[j]) > 1:
                return int(q.words[j])
    return None


def _unexplained(q: Question) -> list[str]:
    """Words that are neither columns, nor analysis wording, nor plain English glue."""
    free = " ".join(q.free_words)
    known = GENERIC | GLUE | {w for f in (q.frame.name,) for w in words(f)}
    for pattern in INTENT_PATTERNS.values():
        known |= {w for match in pattern.finditer(free) for w in match.group(0).split()}
    if INTENT_PATTERNS["portfolio_performance"].search(free):
        known |= FINANCE
    values = {v.start + k for v in q.values for k in range(max(1, len(words(v.value))))}
    return [w for i, w in enumerate(q.words)
            if i not in q.inside and i not in values and not w.isdigit()
            and w not in known and stem(w) not in known]


def _fallback(q: Question, what: str, candidates: list[ColumnInfo]) -> None:
    """Choosing a column the question did not name is safe only if no word was left unread:
    on a frame with one numeric column, "the revenue distribution" must not describe it."""
    unread = _unexplained(q)
    if unread:
        raise NotUnderstoodError(
            f"The question names no {what} that {q.frame.name} has, and the offline generator "
            f"does not know what {', '.join(map(repr, unread[:3]))} refers to.",
            f"Name the column as it is spelled ({', '.join(c.name for c in candidates)}), or "
            "set ANTHROPIC_API_KEY to ask free-form questions with Claude.",
        )


def _one_numeric(q: Question, exclude: tuple[str, ...] = ()) -> ColumnInfo:
    """The numeric column named, or the frame's only numeric column."""
    named = [c for c in q.columns("numeric") if c.name not in exclude]
    if len(named) == 1:
        return named[0]
    if named:
        raise _not_understood(q.frame, f"The question names several numeric columns "
                                       f"({', '.join(c.name for c in named)}); this analysis "
                                       "uses one.")
    weak = [c for c in q.columns("numeric", weak=True) if c.name not in exclude]
    candidates = [c for c in q.frame.columns_of_kind("numeric") if c.name not in exclude]
    if len(weak) == 1:  # "distribution of tips" in the tips frame: the tip column
        _fallback(q, "numeric column", candidates)
        return weak[0]
    if len(candidates) == 1:
        _fallback(q, "numeric column", candidates)
        return candidates[0]
    raise _ambiguous(q.frame, "numeric column", candidates)


def _date_column(q: Question) -> ColumnInfo | None:
    """A datetime column: named, or the only one; None means the index (or row order)."""
    named = q.columns("datetime")
    if len(named) == 1:
        return named[0]
    candidates = q.frame.columns_of_kind("datetime") or [
        c for c in q.frame.columns_of_kind("text", "categorical") if _holds_iso_dates(c)]
    if len(named) > 1 or len(candidates) > 1:
        raise _ambiguous(q.frame, "date column", named or candidates)
    return candidates[0] if candidates else None


def _holds_iso_dates(column: ColumnInfo) -> bool:
    """Dates read from a CSV as text ("2024-01-31"): the template converts them."""
    values = list(column.stats.get("top", {}))
    if not values or not DATE_NAME.search(column.name):
        return False
    try:
        for value in values:
            datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _dates_span(frame: FrameInfo, date: ColumnInfo | None) -> tuple[datetime, datetime] | None:
    """First and last date from the context (column stats or the index description)."""
    if date is not None:
        first, last = date.stats.get("min"), date.stats.get("max")
    else:
        match = re.match(r"DatetimeIndex \(\d+ entries, (.+) \.\. (.+)\)$", frame.index)
        first, last = match.groups() if match else (None, None)
    try:
        return datetime.fromisoformat(str(first)), datetime.fromisoformat(str(last))
    except ValueError:
        return None


def _has_dates(frame: FrameInfo, date: ColumnInfo | None) -> bool:
    return date is not None or frame.index.startswith("DatetimeIndex")


def _uses(*columns: ColumnInfo | None) -> frozenset[str]:
    return frozenset(c.name for c in columns if c is not None)


# One builder per template: bindings from the question, and a sentence saying what runs.


def _summary(q: Question, free: str, found: list[str]) -> Plan:
    named = q.columns()
    if len(named) == 1:  # "describe tip" is about that one column
        return (_distribution if named[0].kind == "numeric" else _value_counts)(q, free, found)
    columns = [c.name for c in named] or None
    what = f"columns {', '.join(columns)}" if columns else "every column"
    return Plan("summary", q.frame.name, {"columns": columns},
                f"Overview of {q.frame.name} ({what}): types, missing values, statistics and "
                "a histogram per numeric column.",
                _uses(*named) if columns else _uses(*q.frame.columns))


def _distribution(q: Question, free: str, found: list[str]) -> Plan:
    named = q.columns()
    if len(named) == 1 and named[0].kind in ("categorical", "text", "bool"):
        return _value_counts(q, free, found)
    if len(named) == 1 and named[0].kind == "datetime":
        raise _not_understood(q.frame, f"{named[0].name!r} holds dates; the distribution "
                                       "template describes numeric columns.")
    column = _one_numeric(q)
    return Plan("distribution", q.frame.name, {"column": column.name},
                f"Distribution of {column.name!r} in {q.frame.name}: summary statistics, "
                "skewness, outliers by Tukey's rule and a histogram.",
                _uses(column))


def _value_counts(q: Question, free: str, found: list[str]) -> Plan:
    named = q.columns()
    if len(named) > 1:
        raise _not_understood(q.frame, "The question names several columns; value counts "
                                       "look at one column.")
    if named:
        column = named[0]
        if column.kind == "numeric" and column.unique > MAX_GROUPS:
            if _number_after(q, "top"):  # "top 5 total bills": the rows, not value counts
                return _top_rows(q, free, found)
            raise _not_understood(q.frame, f"{column.name!r} is a continuous number: counting "
                                           "its values is not a useful analysis. Ask for its "
                                           "distribution, or for the top 10 rows by it.")
    else:
        candidates = q.frame.columns_of_kind("categorical", "bool")
        if len(candidates) != 1:
            raise _ambiguous(q.frame, "column to count", candidates)
        _fallback(q, "column to count", candidates)
        column = candidates[0]
    top_n = _number_after(q, "top") or 10
    return Plan("value_counts", q.frame.name, {"column": column.name, "top_n": top_n},
                f"The {top_n} most common values of {column.name!r} in {q.frame.name}, with "
                "counts, shares and a bar chart.",
                _uses(column))


def _top_rows(q: Question, free: str, found: list[str]) -> Plan:
    named = q.columns()
    if len(named) == 1 and named[0].kind != "numeric":  # "top 3 days": the most common days
        return _value_counts(q, free, found)
    smallest = bool(re.search(r"\b(?:bottom|smallest|lowest)\b", free))
    if smallest and re.search(r"\b(?:top|largest|highest|biggest)\b", free):
        raise _not_understood(q.frame, "The question asks for both the largest and the "
                                       "smallest rows; the template shows one end at a time.")
    column = _one_numeric(q)
    n = next((int(w) for w in q.free_words if w.isdigit()), 10)
    order = "smallest" if smallest else "largest"
    return Plan("top_rows", q.frame.name, {"column": column.name, "n": n, "order": order},
                f"The {n} rows of {q.frame.name} with the {order} {column.name!r}, as a table "
                "and a bar chart.",
                _uses(column))


def _group_comparison(q: Question, free: str, found: list[str]) -> Plan:
    group = _group_column(q)
    if group is None:
        candidates = [c for c in q.columns() if c.kind in ("categorical", "bool")]
        if len(candidates) != 1:
            raise _ambiguous(q.frame, "column to group by",
                             candidates or q.frame.columns_of_kind("categorical", "bool"))
        group = candidates[0]
    if "value_counts" in found and not q.columns("numeric"):
        # "how many rows per day": counting the groups themselves
        return Plan("value_counts", q.frame.name, {"column": group.name, "top_n": MAX_GROUPS},
                    f"How many rows fall in each group of {group.name!r} in {q.frame.name}.",
                    _uses(group))
    value = _one_numeric(q, exclude=(group.name,))
    statistic = _statistic(q) or "mean"
    return Plan("group_comparison", q.frame.name,
                {"value_column": value.name, "group_column": group.name, "statistic": statistic},
                f"{statistic.capitalize()} of {value.name!r} for each {group.name!r} in "
                f"{q.frame.name}, with a table of group statistics, bars and box plots.",
                _uses(value, group))


def _correlation(q: Question, free: str, found: list[str]) -> Plan:
    other = [c for c in q.columns() if c.kind != "numeric"]
    if other:
        raise _not_understood(q.frame, f"Correlation needs numeric columns; {other[0].name!r} "
                                       f"is {other[0].kind}. To compare a number across its "
                                       f"groups, ask e.g. \"compare ... by {other[0].name}\".")
    numeric = q.frame.columns_of_kind("numeric")
    if len(numeric) < 2:
        raise _not_understood(q.frame, f"{q.frame.name} has fewer than two numeric columns, so "
                                       "there is nothing to correlate.")
    named = q.columns("numeric")
    columns = [c.name for c in named] if len(named) >= 2 else None
    method = "spearman" if re.search(r"\b(?:spearman|rank)", free) else \
        "kendall" if "kendall" in free else "pearson"
    which = ", ".join(columns) if columns else "all numeric columns"
    return Plan("correlation", q.frame.name, {"columns": columns, "method": method},
                f"{method.capitalize()} correlation of {which} in {q.frame.name}: the matrix, a "
                "heatmap and the strongest pairs.",
                _uses(*named) if columns else _uses(*numeric))


def _time_series(q: Question, free: str, found: list[str]) -> Plan:
    date = _date_column(q)
    column = _one_numeric(q)
    window = _rolling_window(q) or 7
    period = _period(q) or "auto"
    bindings = {"column": column.name, "date_column": date.name if date else None,
                "window": window, "resample": period}
    if date is not None:
        by = f"dates in {date.name!r}"
    elif _has_dates(q.frame, None):
        by = "the frame's dates (its index)"
    else:
        by = "row order, as there is no datetime column or index"
    return Plan("time_series", q.frame.name, bindings,
                f"{column.name!r} in {q.frame.name} over time (by {by}): a {window}-observation "
                "rolling mean, a linear trend and period averages where dates exist.",
                _uses(column, date))


def _portfolio(q: Question, free: str, found: list[str]) -> Plan:
    date = _date_column(q)
    column, holds = _price_or_returns(q)
    periods_per_year, basis = _periods_per_year(q, date)
    match = re.search(r"risk free(?: rate)?(?: of| is)? (\d+(?: \d+)?) ?(?:%|percent)",
                      q.text.lower().replace("-", " ").replace(".", " "))
    risk_free = float(match.group(1).replace(" ", ".")) / 100 if match else 0.0
    return Plan("portfolio_performance", q.frame.name,
                {"column": column.name, "column_holds": holds,
                 "date_column": date.name if date else None,
                 "periods_per_year": periods_per_year, "risk_free_rate": risk_free},
                f"Performance of {column.name!r} ({holds}) in {q.frame.name}: total and "
                f"annualised return, volatility, Sharpe ratio (risk-free rate {risk_free:.2%}) "
                f"and max drawdown, annualised with {periods_per_year} periods a year "
                f"({basis}); equity curve with the drawdown underneath.",
                _uses(column, date))


def _price_or_returns(q: Question) -> tuple[ColumnInfo, str]:
    """The series to evaluate and whether it holds prices or per-period returns."""
    named = q.columns("numeric")
    if len(named) > 1:
        raise _not_understood(q.frame, "The question names several numeric columns; portfolio "
                                       "performance uses one series of prices or returns.")
    numeric = q.frame.columns_of_kind("numeric")
    if named:
        column = named[0]
    else:
        prices = [c for c in numeric if PRICE_NAME.search(c.name)]
        returns = [c for c in numeric if RETURN_NAME.search(c.name)]
        choice = prices if len(prices) == 1 else returns if len(returns) == 1 else numeric
        if len(choice) != 1:
            raise _ambiguous(q.frame, "price or returns column", numeric)
        _fallback(q, "price or returns column", numeric)
        column = choice[0]
    if RETURN_NAME.search(column.name):
        return column, "returns"
    if PRICE_NAME.search(column.name):
        return column, "prices"
    low = column.stats.get("min")
    if isinstance(low, (int, float)):
        # Prices are never negative; a series of returns almost always has losses in it.
        return column, "returns" if low < 0 else "prices"
    raise NotUnderstoodError(
        f"Cannot tell whether {column.name!r} holds prices or returns.",
        f"Say so in the question, e.g. \"... from the prices in {column.name}\", or rename "
        "the column (e.g. 'price' or 'returns').",
    )


def _periods_per_year(q: Question, date: ColumnInfo | None) -> tuple[int, str]:
    """252 for daily data, 52 weekly, 12 monthly: from the question, else the dates."""
    for word in q.free_words:
        if word in PERIODS_PER_YEAR and word != "daily":
            return PERIODS_PER_YEAR[word], f"{word} data, as the question says"
    span = _dates_span(q.frame, date) if _has_dates(q.frame, date) else None
    if span and span[1] > span[0]:
        per_year = q.frame.rows / ((span[1] - span[0]).days / 365.25)
        # Nearest usual sampling rate; 365 is daily data that includes weekends.
        rate = min((252, 365, 52, 12, 4, 1), key=lambda r: abs(per_year / r - 1))
        return rate, f"about {per_year:.0f} observations a year in the data"
    return 252, "assumed daily trading data"


BUILDERS = {
    "summary": _summary,
    "distribution": _distribution,
    "correlation": _correlation,
    "time_series": _time_series,
    "portfolio_performance": _portfolio,
    "group_comparison": _group_comparison,
    "value_counts": _value_counts,
    "top_rows": _top_rows,
}
