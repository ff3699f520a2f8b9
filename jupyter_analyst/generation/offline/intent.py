"""Reading a question offline: which recipe answers it, bound to which columns.

When in doubt, refuse. A question gets code only if its wording matches one
analysis, every column it names is used by that analysis, every word is accounted for,
and it asks for nothing the code would silently leave out (a forecast, a model...).
Rows and derived columns it defines ("tips over 5", "tip percent") are read by
``filters`` and stated in the explanation. Adding an analysis is adding a template
module and one ``Recipe`` in ``RECIPES``.
Otherwise a ``NotUnderstoodError`` (or an ``InputError`` for a column that does not
exist) says what the offline generator can do instead.
"""

from __future__ import annotations

import dataclasses
import re
import string
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from ...context import ColumnInfo, DataContext, FrameInfo
from ...errors import InputError, NotUnderstoodError
from ...templates import TEMPLATES
from .filters import (
    QUANTITY,
    SYMBOLS,
    Selection,
    derived_columns,
    number_at,
    row_filters,
    with_derived,
)
from .matching import GENERIC, LABEL_NAMES, MODIFIERS, Question, stem, words

# Everyday words of a question that say nothing about which column or analysis is meant.
GLUE = set("""
i me my we our you your it its their is isn are aren was were be been being do does doesn did
can could would should will may please let lets want need like know tell show showing shown
plot give draw make create calculate compute display visualize visualise generate produce
report get find see look looks view check analyze analyse analysis perform run conduct do
and or of for by in on at
to from with as than then also into about what whats which who how there any some way ways
vary varies differ differs differently difference differences up out so s t new bar line graph
figure chart visual visually quick quickly simple basic full detailed underneath alongside together
against across between among versus vs per each every
strongly closely highly much really ideally overall whole sample
""".split())

# Words that name a method's parts rather than a column: "test stationarity", "the frontier".
METHOD = {"test", "tests", "testing", "seasonality", "stationarity", "frontier", "efficient",
          "weights", "weight", "allocation", "components", "clusters", "features", "model",
          "confidence", "interval", "groups", "patterns", "pattern", "similar", "zero",
          "significance", "level", "boxplot", "plot", "chart", "risk", "losses", "loss",
          "shortfall", "tail", "decomposition", "parametric",
          "historical", "equal", "positions", "short", "long", "only", "parts", "part",
          "seasonal", "moves", "together",
          "spearman", "pearson", "kendall", "rank", "multiplicative", "additive",
          "positive", "negative", "non", "linear", "drives", "drive", "driver", "have", "has",
          "had", "dataset", "held", "out", "score", "mean", "means", "holdings", "move",
          "allowing", "allow", "over", "window", "when", "two", "best", "well", "figures", "worst"}
# Nouns for the rows themselves ("for parties of size 3"), never a column's name.
ROW_NOUNS = {"parties", "party", "people", "customers", "customer", "penguins", "planets",
             "bills", "meals", "diners", "rows", "records", "readings", "measurements",
             "observations", "samples", "cases", "subjects", "items", "entries", "points"}
# Where a plural noun stands for the rows: "how many flowers", "top 5 patients by",
# "cluster the states", "for patients with bmi over 30", "patients older than 60".
ROWS_BEFORE = {"many", "cluster", "segment", "the", "for", "among", "of", "which", "all"}
ROWS_AFTER = {"with", "where", "whose", "that", "who", "which", "have", "has", "had", "are",
              "is", "were", "was", "older", "younger", "by", "into", "in", "over", "above",
              "under", "below"}
# Analyses no template does: answering with a template would answer another question.
UNSUPPORTED = re.compile(
    r"\b(?:forecast\w*|projections?|extrapolat\w*|next (?:month|year|week|quarter)|"
    r"classif\w*|anomal\w*|chi square\w*|logistic|random forest|neural|arima|garch|"
    r"imput\w*|merge|join|pivot|sortino|calmar|beta|alpha|monte carlo|decision trees?|"
    r"gradient boost\w*|xgboost|svm|support vector|naive bayes|nearest neighbou?rs?|knn|"
    r"train\w*|"
    r"autocorrelat\w*|causal\w*|causes?|least common|ranks? of|sort\w*)\b"
)
# Wording that selects rows; templates always use every row. ("Rolling mean over 30" is a
# window, not a filter.)
FILTERS = re.compile(
    r"\b(?:where|only|except|excluding|exclude|without|before|after|since|until|"
    r"(?:above|below|under|greater than|less than|more than|fewer than|at least|at most) \d+|"
    r"(?<!rolling )(?<!moving )(?<!mean )(?<!average )(?<!window )over \d+|(?:19|20)\d\d)\b"
)
GROUPED = re.compile(r"\b(?:split|broken down|grouped|broken out|separated) by\b", re.IGNORECASE)
FILTER_SYMBOLS = re.compile(r"[<>]=?\s*-?\d|==|!=")

STATISTICS = {
    "mean": ("average", "mean", "avg"),
    "median": ("median",),
    "sum": ("sum", "total"),
    "std": ("std", "deviation", "variability", "spread", "dispersion"),
    "var": ("variance",),
    "max": ("max", "maximum", "highest", "largest", "biggest"),
    "min": ("min", "minimum", "lowest", "smallest"),
}
# Words for groups in general: "by category" names no groups on a frame without such a column.
GROUP_NOUNS = ("category", "group", "type", "class")
# The words for the assets of a price table, whose long form has a column of their codes.
ASSET_NOUNS = ("stock", "ticker", "asset", "symbol", "security", "instrument", "fund", "holding")
DIFFER = ("differ", "differs", "different", "differently", "difference", "differences")
# A share of a total ("percentage of rows by island", "share of total sales by region"); a
# number before "percent" is a level ("95 percent VaR"), not a share.
SHARE_WORDS = {"share", "shares", "percentage", "percentages", "percent", "proportion",
               "proportions", "fraction"}
GROUPING_WORDS = ("by", "per", "across", "each", "every", "among", "between", "vs", "versus",
                  "for", "which")
PERIODS = {"day": "daily", "week": "weekly", "month": "monthly", "quarter": "quarterly",
           "year": "yearly"}
PERIODS_PER_YEAR = {"daily": 252, "weekly": 52, "monthly": 12, "quarterly": 4, "yearly": 1}
# Words that name the data in a portfolio question ("Sharpe ratio of the returns") but would
# name a missing column in any other question ("distribution of returns" on prices).
FINANCE = {"return", "returns", "price", "prices", "portfolio", "equity", "curve", "strategy",
           "drawdown", "drawdowns", "volatility", "sharpe", "ratio", "risk", "asset", "stock",
           "investment", "performance", "rate", "free", "annualised", "annualized"}
PRICE_NAME = re.compile(r"price|close|adj|nav|equity|value|level|index|px|bench|^[A-Z]{1,5}$")
RETURN_NAME = re.compile(r"return|ret$|^ret|pnl|pct|change|yield", re.IGNORECASE)
DATE_NAME = re.compile(r"date|time|timestamp|day|month|period", re.IGNORECASE)
MAX_GROUPS = 30
# Templates that read the rows as one series in time (returns, trends, seasons).
SERIES_TEMPLATES = frozenset({"portfolio_performance", "value_at_risk", "portfolio_optimization",
                              "decomposition", "time_series"})
# Columns that count things, so that "how many units" is their sum.
COUNT_NAME = re.compile(r"units?\b|qty|quantit|count|items?\b|pieces|passengers|visit|"
                        r"orders|sold|sales|tickets|cases|births|deaths|votes", re.IGNORECASE)
# Where to go when the offline reading cannot answer: a language model writes the code.
LLM_OPTIONS = ("For free-form questions, use an LLM: set ANTHROPIC_API_KEY to let Claude write "
               "the code, or pick a model with `--model`.")


@dataclass(frozen=True)
class Plan:
    template: str
    frame: str
    bindings: dict[str, Any]
    explanation: str
    uses: frozenset[str] = field(default_factory=frozenset)  # column names the code reads
    # Lines selecting rows or adding derived columns, on a copy named ``working``.
    prelude: tuple[str, ...] = ()
    reading: str = ""  # the selection in words, stated in the explanation

    @property
    def working(self) -> str:
        return f"{self.frame}_subset" if self.prelude else self.frame

    def code(self) -> str:
        body = TEMPLATES[self.template].render(self.working, **self.bindings)
        if not self.prelude:
            return body
        lines = [f"# The rows and columns the question defines: {self.reading}.",
                 f"{self.working} = {self.frame}.copy()",
                 *(string.Template(line).substitute(frame=self.working)
                   for line in self.prelude)]
        return "\n".join(lines) + "\n\n" + body


def plan(question: str, context: DataContext, analysis_type: str | None = None) -> Plan:
    """The template and bindings that answer ``question``, or an error saying why not."""
    text = normalized(question)
    if not text:
        raise InputError("The question is empty.",
                         "Write what you want to know in the cell, e.g. 'Summarise the data'.")
    frame = _choose_frame(text, context)
    vocabulary = _vocabulary(text)
    derived = derived_columns(Question(text, frame, vocabulary))
    if derived:
        frame = with_derived(frame, derived.derived)
    q = Question(text, frame, vocabulary)
    q.name_rows(_row_nouns(q))
    hint = _recipe(analysis_type) if analysis_type else None
    group = _group_column(q)
    selection = row_filters(q, group.name if group else None)
    if selection.problem:
        raise _filter_error(q.frame, f"The question's conditions cannot be read as one "
                                     f"selection of rows: {selection.problem}.")
    q.read_elsewhere(selection.positions | derived.positions, selection.columns)
    q.filtered_rows = bool(selection)
    free = q.free_text  # so a column called "count" is not an intent
    _refuse_unsupported(q, free, text)
    _refuse_undescribed(q)
    financial = hint is not None and hint.financial or (
        hint is None and any(r.financial and r.pattern.search(free) for r in RECIPES))
    _refuse_unknown_names(q, context, FINANCE if financial else set())
    found = [hint] if hint else _detect(q, free)
    result = found[0].bind(q, free, [r.name for r in found])
    if selection or derived:
        result = dataclasses.replace(
            result, prelude=tuple(derived.lines + selection.lines),
            reading="; ".join(derived.said + selection.said),
            uses=result.uses | selection.columns | derived.columns,
            explanation=f"{result.explanation} Rows and columns as the question defines them: "
                        f"{'; '.join(derived.said + selection.said)}.")
    if selection.gap and result.template in SERIES_TEMPLATES:
        raise _not_understood(q.frame, f"The years {selection.gap} are not one stretch of "
                                       "time, and this analysis reads the rows as one series: "
                                       "the step between them would count as one period. Ask "
                                       "for each year on its own, or for a range of years.")
    if _asks_share(q):
        _refuse_other_shares(q, result, selection)
    _refuse_unused(q, result)
    _refuse_filters(q, result, selection)
    _refuse_unread_numbers(q, result)
    _refuse_unread(q)
    # The frame's own columns the code reads (a derived column is made from some of them).
    return dataclasses.replace(result, uses=result.uses - {c.name for c in derived.derived})


def normalized(question: str) -> str:
    """The question as it is read: one space between words, symbols as words ("> 5")."""
    text = " ".join(str(question).split())
    text = GROUPED.sub("by", text)  # "split by sex" is "by sex"
    for symbol, said in SYMBOLS:
        text = text.replace(symbol, said)
    return text


def _choose_frame(text: str, context: DataContext) -> FrameInfo:
    if len(context.frames) == 1:
        return context.frames[0]
    said = " " + " ".join(words(text)) + " "
    named = [f for f in context.frames if f" {' '.join(words(f.name))} " in said]
    if len(named) > 1:
        raise NotUnderstoodError(
            f"The question names several frames ({', '.join(f.name for f in named)}); the "
            "offline templates analyse one frame at a time.",
            "Ask about one frame per cell. " + LLM_OPTIONS,
        )
    return named[0] if named else context.frames[0]


def _recipe(hint: str) -> Recipe:
    """The recipe an explicit analysis type names (a recipe's or a template's name)."""
    key = hint.strip().lower().replace("-", "_").replace(" ", "_")
    aliases = {"portfolio": "portfolio_performance", "performance": "portfolio_performance",
               "timeseries": "time_series", "trend": "time_series", "describe": "summary",
               "overview": "summary", "eda": "summary", "comparison": "group_comparison",
               "groupby": "group_statistic", "top_n": "top_rows", "largest": "top_rows",
               "correlations": "correlation", "var": "value_at_risk",
               "optimization": "portfolio_optimization", "optimisation": "portfolio_optimization",
               "kmeans": "clustering", "ttest": "t_test", "group_test": "t_test"}
    key = aliases.get(key, key)
    for recipe in RECIPES:
        if key == recipe.name or key in recipe.templates:
            return recipe
    raise InputError(f"Unknown analysis type {hint!r}.",
                     f"Use one of: {', '.join(r.name for r in RECIPES)}, or leave it out.")


def _detect(q: Question, free: str) -> list[Recipe]:
    found = [recipe for recipe in RECIPES if recipe.pattern.search(free)]
    names = {r.name for r in found}
    group = _group_column(q)
    if group is not None and group.kind == "numeric" and "top_rows" in names:
        group = None  # "top 5 flowers by sepal width": the order, not groups
    if group is not None and not names & {"group_comparison", "group_statistic"}:
        found.append(RECIPE["group_comparison" if names & {"value_counts", "distribution"}
                            or not _statistic(q) else "group_statistic"])
    if group is None and _asks_share(q):  # "what percentage of penguins are Adelie?"
        raise _not_understood(q.frame, "The question asks for a share but names no column of "
                                       "groups it is a share of: ask e.g. \"percentage of rows "
                                       "by island\" or \"share of total sales by region\".")
    if "t_test" not in names and _asks_whether_different(q):
        # "Do Lunch and Dinner tips differ?", "is the mean tip different from 3?": a test
        if group is None and not re.search(r"\bdifferent from \d", free):
            # "is the average tip different for smokers?": than for whom?
            raise _not_understood(q.frame, "The question asks whether something differs but "
                                           "names no two groups of rows to compare (e.g. "
                                           "\"between Lunch and Dinner\", \"by sex\").")
        found.append(RECIPE["t_test"])
    if _period(q) and "time_series" not in names and not any(r.financial for r in found):
        found.append(RECIPE["time_series"])  # "weekly returns" only says what the data is
    if not found and (_statistic(q) or q.selects or q.filtered_rows) and (
            q.columns("numeric") or q.columns("numeric", weak=True) or q.filtered):
        found.append(RECIPE["distribution"])  # "average tip": the distribution has the mean
    if not found:
        raise _not_understood(q.frame, "The offline generator does not recognise what this "
                                       f"question asks for: {q.text!r}.")
    found.sort(key=RECIPES.index)
    extra = [r for r in found[1:] if r.name not in found[0].absorbs]
    if extra:
        names_ = ", ".join(r.name.replace("_", " ") for r in [found[0], *extra])
        raise _not_understood(q.frame, f"The question asks for several analyses at once "
                                       f"({names_}); the offline generator does one at a time.")
    return found


def _refuse_unsupported(q: Question, free: str, text: str) -> None:
    match = UNSUPPORTED.search(free)
    if match:
        raise _not_understood(q.frame, f"The question asks for {match.group(0)!r}, which none of "
                                       "the offline templates does.")
    match = FILTERS.search(free) or FILTER_SYMBOLS.search(free)
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
    free = q.free_text
    said = {w for r in RECIPES for m in r.pattern.finditer(free) for w in m.group(0).split()}
    frame_words = ({w for f in context.frames for w in words(f.name)} | known | said | METHOD
                   | QUANTITY | SHARE_WORDS | _name_words(q))
    grouping = ("by", "across", "per")  # "by customer": a column, never the rows' noun
    after = ("of", "for", "between", "among", "versus", "vs", "against", "with", "on", "in",
             "and", "compare", "plot", "correlate", "describe", "summarise", "summarize")
    unknown = q.unknown_names(grouping, frame_words) + q.unknown_names(
        after, frame_words | ROW_NOUNS)
    # "by category" on a frame without such a column names no groups at all.
    unknown += [q.words[i + 1] for i in q.positions(*grouping)
                if i + 1 < len(q.words) and i + 1 not in q.inside
                and stem(q.words[i + 1]) in GROUP_NOUNS]
    if unknown:
        columns = ", ".join(c.name for c in q.frame.columns)
        raise InputError(
            f"The question mentions {unknown[0]!r}, which is not a column of {q.frame.name} "
            f"(columns: {columns}).",
            "Name one of these columns as it is spelled. To look at some rows only, filter in "
            f"the cell argument, e.g. `%%analyze {q.frame.name}[...]`.",
        )


def _refuse_unread(q: Question) -> None:
    """A word the reading did not account for may change the question ("... when the bill was
    split"): answering without it would answer another question."""
    unread = _unexplained(q)
    if unread:
        raise _not_understood(q.frame, f"The offline generator does not know what "
                                       f"{', '.join(map(repr, unread[:3]))} means here, so its "
                                       "answer might not be the one asked for.")


def _refuse_unread_numbers(q: Question, result: Plan) -> None:
    """A number no part of the reading used ("for groups of 4", "into 3 clusters", "over 10
    days") would be dropped: the answer would be to the question without it. A number is
    used when a binding holds it (a percentage as its fraction: "95%" is 0.95)."""
    used = {round(scale * value, 6) for value in result.bindings.values()
            if isinstance(value, (int, float)) and not isinstance(value, bool)
            for scale in (1, 100)}
    i = 0
    while i < len(q.words):
        if q.words[i].isdigit() and i not in q.inside and i not in q.rows_said:
            value, size = number_at(q, i)
            if round(value, 6) not in used:
                raise _not_understood(
                    q.frame, f"The question says {value:g}, which the "
                             f"{result.template.replace('_', ' ')} analysis would not use, so "
                             "its answer would not be the one asked for.")
            i += size
        else:
            i += 1


def _refuse_other_shares(q: Question, result: Plan, selection: Selection) -> None:
    """A share is each group's part of a total: of the rows, or of one column's sum. An analysis
    that computes no share, or rows selected by the groups themselves (every group's share
    of the rows kept would be all of them), would answer another question."""
    group = result.bindings.get("group_column")
    if result.bindings.get("statistic") != "share" and result.template not in (
            "pie_chart", "value_counts"):
        raise _not_understood(q.frame, f"The question asks for a share, which the "
                                       f"{result.template.replace('_', ' ')} analysis does not "
                                       "compute.")
    if group in selection.columns:
        raise _not_understood(q.frame, f"The question selects rows by {group!r}, the groups of "
                                       "the share; a share needs the rows of every group. Ask "
                                       f"for the share by {group} alone.")
    # "share of Adelie by island": of all Adelie, per island, or of each island, Adelie? A
    # period ("in 2008") only says when; any other selection leaves that open.
    other = [c for c in selection.columns
             if q.frame.column(c).kind != "datetime" and c.lower() != "year"]
    if other:
        raise _not_understood(q.frame, f"With rows selected by {other[0]!r}, a share could be "
                                       "each group's part of the rows kept, or the kept rows' "
                                       "part of each group; ask for the share over all rows.")


def _refuse_unused(q: Question, result: Plan) -> None:
    unused = [c.name for c in q.columns() if c.name not in result.uses]
    if unused:
        raise _not_understood(
            q.frame,
            f"The question names {', '.join(map(repr, unused))}, which the "
            f"{result.template.replace('_', ' ')} analysis would not use, so its answer would "
            "not be the one asked for.",
        )


def _refuse_filters(q: Question, result: Plan, selection: Selection) -> None:
    """Category values ("Sun", "Dinner") the selection did not read, outside the groups."""
    grouped = result.bindings.get("group_column")
    values = [v for v in q.values if v.column.name != grouped
              and v.start not in selection.positions]
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
        f"  - {r.name.replace('_', ' ')}: "
        f"\"{TEMPLATES[r.templates[0]].example.format(numeric=numeric, group=group)}\""
        for r in RECIPES
    )
    return NotUnderstoodError(
        problem,
        "Offline, one of these analyses can be asked at a time, naming columns as they are "
        f"spelled:\n{examples}\n{LLM_OPTIONS}",
    )


def _filter_error(frame: FrameInfo, problem: str, example: str | None = None) -> NotUnderstoodError:
    example = example or f"{frame.name}[{frame.name}[\"column\"] > 0]"
    return NotUnderstoodError(
        problem,
        f"Filter in the cell argument instead, e.g. `%%analyze {example}`, and ask about the "
        f"whole selection. {LLM_OPTIONS}",
    )


def _ambiguous(frame: FrameInfo, what: str, candidates: list[ColumnInfo]) -> NotUnderstoodError:
    names = ", ".join(c.name for c in candidates) or "none"
    return NotUnderstoodError(
        f"The question does not say which {what} to use, and {frame.name} has several or none "
        f"({names}).",
        "Name the column in the question as it is spelled, e.g. "
        f"\"... of {candidates[0].name if candidates else 'price'}\". {LLM_OPTIONS}",
    )


def _vocabulary(text: str) -> frozenset[str]:
    """Words of the analyses and of plain English: never a column's abbreviation ("box
    plot" is not ``bp``)."""
    said = " ".join(words(text))
    return frozenset(
        GLUE | METHOD | GENERIC | ROW_NOUNS | QUANTITY | SHARE_WORDS
        | {w for spelled in STATISTICS.values() for w in spelled}
        | {w for r in RECIPES for m in r.pattern.finditer(said) for w in m.group(0).split()})


def _name_words(q: Question) -> set[str]:
    """Words of the question that are part of the frame's name: "crime" in statecrime,
    "wines" in wine."""
    name = "".join(words(q.frame.name))
    return set(words(q.frame.name)) | {
        w for w in q.words if len(stem(w)) >= 4 and stem(w) in name}


def _identifier(frame: FrameInfo) -> ColumnInfo | None:
    """A column of row names (a state, a person): text with a different value in every row."""
    return next((c for c in frame.columns_of_kind("text", "categorical")
                 if c.unique == frame.rows > MAX_GROUPS and c.missing == 0), None)


def _row_nouns(q: Question) -> set[int]:
    """Where the question names its rows rather than a column: a plural noun for the rows in
    a row's place ("how many flowers have ..."), the frame's own name, or the column of row
    names ("which 5 states"); the period of dated rows ("how many quarters")."""
    identifier = _identifier(q.frame)
    found = {m.start for m in q.mentions if m.column == identifier}
    # "the 3 years with the highest gnp" in a frame of one row a year
    found |= {m.start for m in q.mentions if m.column.kind == "numeric"
              and m.column.name.lower() == "year" and m.column.unique == q.frame.rows
              and q.words[m.start] != q.stems[m.start]}
    names = _name_words(q)
    vocabulary = _vocabulary(q.text) - ROW_NOUNS
    starts = {m.start for m in q.mentions} | {v.start for v in q.values}
    rate = _periods_per_year(q, None)[0] if _has_dates(q.frame, None) else None
    for i, word in enumerate(q.words):
        before = q.words[i - 1] if i else ""
        if i in q.inside or i in starts or before in ("by", "per", "across"):
            continue  # "by customer": a column the frame lacks, not the rows
        after = q.words[i + 1] if i + 1 < len(q.words) else ""
        plural = stem(word) != word and len(word) > 3
        if rate and stem(word) in PERIODS and before == "many" \
                and PERIODS_PER_YEAR[PERIODS[stem(word)]] == rate:
            found.add(i)  # "how many quarters" of quarterly data
        elif {word, stem(word)} & (vocabulary | FINANCE) or stem(word) in PERIODS:
            continue
        elif word in ROW_NOUNS or stem(word) in names or word in names:
            found.add(i)
        elif plural and (before in ROWS_BEFORE or before.isdigit()) and (
                after in ROWS_AFTER or after == "" or before in ("many", "cluster", "segment")
                or before.isdigit()):
            found.add(i)
    return found


# Reading details out of the question.


def _group_column(q: Question) -> ColumnInfo | None:
    """The column right after a grouping word: "tip by day", "compare bills across sex".

    A number groups only after "by", "per", "across" or "for each" ("tip by size"), and
    only if it has few values: "between size and tip" is a correlation.
    """
    identifier = _identifier(q.frame)
    for i in q.positions(*GROUPING_WORDS):
        column = q.column_after(i) or _assets_after(q, i)
        if column is None or column == identifier or (
                q.words[i] == "for" and q.words[i + 1] not in ("each", "every")):
            continue  # "across the states": every row, not groups of one
        if column.kind != "numeric":
            return column
        if column.unique > MAX_GROUPS or q.words[i] in ("vs", "versus", "which"):
            continue
        if q.words[i] in ("by", "per", "across", "for", "each", "every"):
            return column
        # "between the sexes" groups; "between size and tip" pairs two columns
        end = next(m.end for m in q.mentions if m.column == column and m.start > i)
        if q.words[end:end + 1] != ["and"]:
            return column
    # "compare tip between Lunch and Dinner": two values of one column name its groups.
    by_column: dict[str, list[str]] = {}
    for value in [*q.values, *q.selected]:  # a filter may have taken them: still the groups
        by_column.setdefault(value.column.name, []).append(value.value)
    compared = [name for name, values in by_column.items() if len(set(values)) >= 2]
    if len(compared) == 1 and q.positions("compare", "comparing", "between", "vs", "versus",
                                          *DIFFER):
        return q.frame.column(compared[0])
    # "do smokers and non smokers tip differently": both groups of a yes/no column.
    for first, second in zip(q.mentions, q.mentions[1:]):
        if first.column == second.column and first.column.kind != "numeric" \
                and q.words[first.end:second.start] in (["and", "non"], ["and", "not"]):
            return first.column
    named = q.columns()
    few = [c for c in named if c.kind != "numeric" or c.unique <= MAX_GROUPS]
    if len(named) == 2 and len(few) == 1 and _asks_whether_different(q):
        return few[0]  # "do the islands differ in body mass?": the one column of groups
    categories = [c for c in named if c.kind != "numeric"]
    if len(categories) == 1 and _asks_share(q):
        return categories[0]  # "what share of the tips are from smokers": of each group
    return None


def _asks_whether_different(q: Question) -> bool:
    """A yes-or-no question whether things differ ("Do Lunch and Dinner tips differ?", "is
    there a difference in tip between smokers and non smokers?"): a test's question. "Compare",
    "how does ... vary" and "what is the difference" ask for the groups' statistics instead."""
    return q.words[:1] in (["do"], ["does"], ["did"], ["is"], ["are"], ["was"], ["were"]) \
        and bool(q.positions(*DIFFER))


def _period(q: Question) -> str | None:
    """A calendar period asked for: "monthly", "per month", "by week"."""
    for word in q.free_words:
        if word in PERIODS_PER_YEAR:
            return word
    for i in q.positions("per", "by", "each", "every", "a"):
        if i + 1 < len(q.words) and q.stems[i + 1] in PERIODS and q.column_after(i) is None:
            return PERIODS[q.stems[i + 1]]
    return None


def _asks_share(q: Question) -> bool:
    return any(w in SHARE_WORDS and not (i and q.words[i - 1].isdigit())
               for i, w in enumerate(q.words) if i not in q.inside)


def _statistic(q: Question) -> str | None:
    if _asks_share(q):
        return "share"  # "share of total sales": of the total, not the total
    if _counted(q) == "sum":
        return "sum"  # "how many units": the units added up
    for name, spelled in STATISTICS.items():
        if any(w in spelled for w in q.free_words):
            return name
    return None


def _counted(q: Question) -> str | None:
    """What "how many X", "number of X", "the most X" count: "rows" when X names the rows
    ("number of tips", in the tips frame), "sum" when X is a column of counts ("how many
    units" is the units added up), None when the question counts nothing. Any other column
    ("number of pulses") could be either, and is refused."""
    for mention in q.mentions:
        if q.words[mention.start:mention.end + 1] == ["number", "of"] \
                and mention.end + 1 in q.rows_said:
            return "rows"  # "number of planets", though planets has a column "number"
        before = q.words[max(0, mention.start - 2):mention.start]
        if not (before == ["how", "many"] or before[-2:] in (["number", "of"], ["count", "of"])
                or before[-1:] in (["most"], ["fewest"])):
            continue
        column = mention.column
        if mention.weak:
            return "rows"
        if column.kind != "numeric":
            continue  # "count of smokers": the values of a category, counted
        low = column.stats.get("min")
        if "int" in column.dtype and isinstance(
                low, (int, float)) and low >= 0 and COUNT_NAME.search(column.name):
            return "sum"
        said = " ".join(q.words[mention.start - len(before):mention.end])
        raise _not_understood(q.frame, f"{said!r} could mean the number of rows or the total "
                                       f"of {column.name!r}. Ask for \"the number of rows\" or "
                                       f"\"the total {column.name}\".")
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
    free = q.free_text
    known = GENERIC | GLUE | METHOD | ROW_NOUNS | QUANTITY | _name_words(q)
    if _asks_share(q):
        known |= SHARE_WORDS
    for recipe in RECIPES:
        known |= {w for match in recipe.pattern.finditer(free) for w in match.group(0).split()}
    if any(r.financial and r.pattern.search(free) for r in RECIPES):
        known |= FINANCE
    values = {v.start + k for v in q.values for k in range(max(1, len(words(v.value))))}
    return [w for i, w in enumerate(q.words)
            if i not in q.inside and i not in values and i not in q.rows_said
            and not w.isdigit()
            and w not in known and stem(w) not in known]


def _fallback(q: Question, what: str, candidates: list[ColumnInfo]) -> None:
    """Choosing a column the question did not name is safe only if no word was left unread:
    on a frame with one numeric column, "the revenue distribution" must not describe it."""
    unread = _unexplained(q)
    if unread:
        raise NotUnderstoodError(
            f"The question names no {what} that {q.frame.name} has, and the offline generator "
            f"does not know what {', '.join(map(repr, unread[:3]))} refers to.",
            f"Name the column as it is spelled ({', '.join(c.name for c in candidates)}). "
            + LLM_OPTIONS,
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
    weak = [c for c in q.columns("numeric", weak=True) if c.name not in exclude] or [
        m.column for m in q.filtered if m.column.kind == "numeric"]  # "tips over 5"
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
    total = f"The total (sum) of {column.name!r}, with its distribution" \
        if _statistic(q) == "sum" else f"Distribution of {column.name!r}"
    return Plan("distribution", q.frame.name, {"column": column.name},
                f"{total} in {q.frame.name}: summary statistics, "
                "skewness, outliers by Tukey's rule and a histogram.",
                _uses(column))


def _value_counts(q: Question, free: str, found: list[str]) -> Plan:
    named = q.columns()
    if len(named) > 1:
        raise _not_understood(q.frame, "The question names several columns; value counts "
                                       "look at one column.")
    if named:
        column = named[0]
        if _counted(q) == "sum":
            return _distribution(q, free, found)
        if column.kind == "numeric" and column.unique > MAX_GROUPS:
            if _number_after(q, "top"):  # "top 5 total bills": the rows, not value counts
                return _top_rows(q, free, found)
            raise _not_understood(q.frame, f"{column.name!r} is a continuous number: counting "
                                           "its values is not a useful analysis. Ask for its "
                                           "distribution, or for the top 10 rows by it.")
    elif q.selects:  # "how many tips over 5": the rows selected
        return _counts(q, free, found)
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
    smallest = bool(re.search(r"\b(?:bottom|smallest|lowest|lightest|shortest|cheapest)\b",
                              free))
    if smallest and re.search(r"\b(?:top|largest|highest|biggest)\b", free):
        raise _not_understood(q.frame, "The question asks for both the largest and the "
                                       "smallest rows; the template shows one end at a time.")
    column = _one_numeric(q)
    # "the highest unemployment and when": the one row, with its date
    when = "when" in q.free_words or re.search(r"\b(?:which|what) date\b", q.free_text)
    n = next((int(w) for w in q.free_words if w.isdigit()), 1 if when else 10)
    order = "smallest" if smallest else "largest"
    label = _identifier(q.frame)
    return Plan("top_rows", q.frame.name,
                {"column": column.name, "n": n, "order": order,
                 "label": label.name if label else None},
                f"The {f'{n} rows' if n > 1 else 'row'} of {q.frame.name} with the {order} "
                f"{column.name!r}, as a table "
                "and a bar chart" + (f", each named by its {label.name}." if label else "."),
                _uses(column, label))


def _group_comparison(q: Question, free: str, found: list[str]) -> Plan:
    group = _group_column(q)
    if group is None:
        candidates = [c for c in q.columns() if c.kind in ("categorical", "bool")]
        if len(candidates) != 1:
            raise _ambiguous(q.frame, "column to group by",
                             candidates or q.frame.columns_of_kind("categorical", "bool"))
        group = candidates[0]
    if re.search(r"\bhist", free):  # "histogram of body mass for each sex": one per group
        return _chart(q, free, found, "histogram")
    counting = "value_counts" in found and not q.columns("numeric") or _counted(q) == "rows"
    by = _second_group(q, group)
    if by is not None or _asks_share(q):  # "compare tip by day and sex": a table of the pairs
        return _statistic_table(q, group, by, counting and not _asks_share(q))
    if counting:
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
    symbol = _symbol_column(q)
    other = [c for c in q.columns() if c.kind != "numeric" and c != symbol]
    if other:
        raise _not_understood(q.frame, f"Correlation needs numeric columns; {other[0].name!r} "
                                       f"is {other[0].kind}. To compare a number across its "
                                       f"groups, ask e.g. \"compare ... by {other[0].name}\".")
    numeric = q.frame.columns_of_kind("numeric")
    method = "spearman" if re.search(r"\b(?:spearman|rank)", free) else \
        "kendall" if "kendall" in free else "pearson"
    if _is_price_table(q, free):
        assets = _assets(q)
        return Plan("correlation", q.frame.name,
                    {**assets.bindings, "method": method},
                    f"{method.capitalize()} correlation of the returns of each period, not of "
                    f"price levels (levels that trend together correlate whatever the assets "
                    f"do), from {assets.said}: the matrix, a heatmap and the strongest pairs.",
                    assets.uses)
    if len(numeric) < 2:
        raise _not_understood(q.frame, f"{q.frame.name} has fewer than two numeric columns, so "
                                       "there is nothing to correlate.")
    named = q.columns("numeric")
    columns = [c.name for c in named] if len(named) >= 2 else None
    bounded = " (the 50 most variable)" if not columns and len(numeric) > 50 else ""
    which = ", ".join(columns) if columns else "all numeric columns"
    return Plan("correlation", q.frame.name,
                {"columns": columns, "column_holds": "values", "method": method},
                f"{method.capitalize()} correlation of {which}{bounded} in {q.frame.name}: the "
                "matrix, a heatmap and the strongest pairs"
                + (", with a scatter plot." if columns and len(columns) == 2 else "."),
                _uses(*named) if columns else _uses(*numeric))


def _time_series(q: Question, free: str, found: list[str]) -> Plan:
    _one_asset(q)
    date = _date_column(q)
    column = _one_numeric(q)
    window = _rolling_window(q) or 7
    period = _period(q) or "auto"
    statistic = _statistic(q)
    if statistic in ("sum", "median"):  # "total units by month": not the period averages
        raise _not_understood(q.frame, f"A time series here shows period averages; the {statistic} "
                                       f"of {column.name!r} per period is not one of its readings.")
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


def _holds(column: ColumnInfo) -> str:
    """Whether a column holds prices or per-period returns."""
    if RETURN_NAME.search(column.name):
        return "returns"
    if PRICE_NAME.search(column.name):
        return "prices"
    low = column.stats.get("min")
    if isinstance(low, (int, float)):
        # Prices are never negative; a series of returns almost always has losses in it.
        return "returns" if low < 0 else "prices"
    raise NotUnderstoodError(
        f"Cannot tell whether {column.name!r} holds prices or returns.",
        f"Say so in the question, e.g. \"... from the prices in {column.name}\", or rename "
        "the column (e.g. 'price' or 'returns').",
    )


@dataclass(frozen=True)
class Assets:
    """The assets a financial question is about, as the shared template parameters."""

    bindings: dict[str, Any]
    uses: frozenset[str]
    said: str  # e.g. "the prices of AAPL, MSFT (monthly, 12 a year)"
    periods_per_year: int
    names: tuple[str, ...] = ()


def _assets(q: Question) -> Assets:
    """Wide (a column per asset), long (date, symbol, price) or one series."""
    date = _date_column(q)
    symbol = _symbol_column(q)
    numeric = [c for c in q.frame.columns_of_kind("numeric")]
    named = q.columns("numeric")
    if symbol is not None:
        if len(named) > 1:
            raise _not_understood(q.frame, "A long table has one value column; the question "
                                           f"names several ({', '.join(c.name for c in named)}).")
        value = named[0] if named else next(iter(
            c for c in numeric if PRICE_NAME.search(c.name) or RETURN_NAME.search(c.name)),
            numeric[0] if len(numeric) == 1 else None)
        if value is None:
            raise _ambiguous(q.frame, "price or returns column", numeric)
        columns, holds = [value.name], _holds(value)
        names = tuple(symbol.stats.get("top", {}))
        assets = max(1, symbol.unique)
        what = f"{value.name} per {symbol.name}"
    else:
        if len(named) == 1 and BENCHMARK_NAME.search(named[0].name):
            named = []  # "against the benchmark": the benchmark and what it measures
        chosen = named or [c for c in numeric if PRICE_NAME.search(c.name)
                           or RETURN_NAME.search(c.name)] or numeric[:1] * (len(numeric) == 1)
        if not chosen:
            raise _ambiguous(q.frame, "price or returns column", numeric)
        if not named:
            _fallback(q, "price or returns column", chosen)
        kinds = {_holds(c) for c in chosen}
        if len(kinds) > 1:
            raise _not_understood(q.frame, "Some of the columns look like prices and some like "
                                           "returns; name the ones to use.")
        columns, holds, assets = [c.name for c in chosen], kinds.pop(), 1
        names = tuple(columns)
        what = ", ".join(columns)
    per_year, basis = _periods_per_year(q, date, assets)
    return Assets(
        bindings={"columns": columns, "column_holds": holds,
                  "date_column": date.name if date else None,
                  "symbol_column": symbol.name if symbol else None},
        uses=_uses(date, symbol, *(q.frame.column(c) for c in columns)),
        said=f"the {holds} in {what}, {per_year} periods a year ({basis})",
        periods_per_year=per_year, names=names)


def _is_price_table(q: Question, free: str) -> bool:
    """Asset prices over time: a long table with a symbol column, or dated price columns."""
    if _symbol_column(q) is not None:
        return True
    if not _has_dates(q.frame, _date_column(q)):
        return False
    chosen = q.columns("numeric") or q.frame.columns_of_kind("numeric")
    finance = re.search(r"\b(?:returns?|prices?|stocks?|tickers?|holdings?|assets?|shares?|"
                        r"securities|portfolio)\b", free)
    return bool(chosen) and all(
        PRICE_NAME.search(c.name) or (finance and isinstance(c.stats.get("min"), (int, float))
                                      and c.stats["min"] > 0) for c in chosen)


def _assets_after(q: Question, position: int) -> ColumnInfo | None:
    """The asset column that "by stock" or "for each ticker" names on a long price table."""
    following = [w for w in q.words[position + 1:position + 3] if w not in MODIFIERS]
    if following and stem(following[0]) in ASSET_NOUNS:
        return _symbol_column(q)
    return None


def _symbol_column(q: Question) -> ColumnInfo | None:
    """A long table's asset column: named like one, with a handful of short codes."""
    for column in q.frame.columns_of_kind("categorical", "text"):
        if re.search(r"symbol|ticker|asset|stock|security|instrument|fund", column.name,
                     re.IGNORECASE) and column.unique <= MAX_GROUPS:
            return column
    return None


def _one_asset(q: Question) -> ColumnInfo | None:
    """A long table's symbol column, once the question picked one asset ("for MSFT")."""
    symbol = _symbol_column(q)
    if symbol is not None and symbol.unique > 1 and symbol.name not in q.selects:
        example = next(iter(symbol.stats.get("top", {})), "...")
        raise _not_understood(q.frame, f"{q.frame.name} holds several assets in "
                                       f"{symbol.name!r}; this analysis is of one series. Name "
                                       f"one asset, e.g. \"... for {example}\".")
    return symbol


def _risk_free(q: Question) -> float:
    text = q.text.lower().replace("-", " ").replace(".", " ")
    match = re.search(r"risk free(?: rate)?(?: of| is| at)? (\d+(?: \d+)?) ?(?:%|percent)",
                      text) or re.search(r"(\d+(?: \d+)?) ?(?:%|percent) risk free", text)
    return float(match.group(1).replace(" ", ".")) / 100 if match else 0.0


def _periods_per_year(q: Question, date: ColumnInfo | None, assets: int = 1
                      ) -> tuple[int, str]:
    """252 for daily data, 52 weekly, 12 monthly: from the question, else the dates."""
    for word in q.free_words:
        if word in PERIODS_PER_YEAR and word != "daily":
            return PERIODS_PER_YEAR[word], f"{word} data, as the question says"
    span = _dates_span(q.frame, date) if _has_dates(q.frame, date) else None
    if span and span[1] > span[0]:
        per_year = q.frame.rows / assets / ((span[1] - span[0]).days / 365.25)
        # Nearest usual sampling rate; 365 is daily data that includes weekends.
        rate = min((252, 365, 52, 12, 4, 1), key=lambda r: abs(per_year / r - 1))
        return rate, f"about {per_year:.0f} observations a year in the data"
    return 252, "assumed daily trading data"


def _portfolio(q: Question, free: str, found: list[str]) -> Plan:
    assets = _assets(q)
    risk_free = _risk_free(q)
    columns = assets.bindings["columns"]
    benchmark = next((c for c in columns if BENCHMARK_NAME.search(c)), None) \
        if len(columns) == 2 else None
    return Plan("portfolio_performance", q.frame.name,
                {**assets.bindings, "benchmark": benchmark,
                 "periods_per_year": assets.periods_per_year, "risk_free_rate": risk_free},
                f"Performance of each asset from {assets.said}: total and annualised return, "
                f"volatility, Sharpe ratio (risk-free rate {risk_free:.2%}) and max drawdown, "
                "with equity curves and drawdowns."
                + (f" {benchmark} is the benchmark." if benchmark else ""),
                assets.uses)


def _value_at_risk(q: Question, free: str, found: list[str]) -> Plan:
    assets = _assets(q)
    level = re.search(r"\b(9\d(?:\.\d)?) ?(?:%|percent)", q.text)
    confidence = float(level.group(1)) / 100 if level else 0.95
    several = len(assets.names) > 1
    return Plan("value_at_risk", q.frame.name, {**assets.bindings, "confidence": confidence},
                f"{confidence:.0%} Value at Risk and CVaR, historical and parametric (normal), of "
                + ("an equal-weight portfolio of " if several else "")
                + f"{assets.said}, as a loss per period.", assets.uses)


def _optimization(q: Question, free: str, found: list[str]) -> Plan:
    assets = _assets(q)
    if len(assets.names) < 2:
        raise _not_understood(q.frame, "Portfolio optimisation needs two or more assets; this "
                                       "question's data has one.")
    long_only = not re.search(r"\bshort(?:s|ing)?\b(?! ?only)", free) or "no short" in free
    return Plan("portfolio_optimization", q.frame.name,
                {**assets.bindings, "periods_per_year": assets.periods_per_year,
                 "risk_free_rate": _risk_free(q), "long_only": long_only},
                f"Mean-variance optimisation of {assets.said}"
                + (", long only" if long_only else ", short positions allowed")
                + ": maximum-Sharpe and minimum-variance weights (scipy.optimize), the "
                  "efficient frontier and the equal-weight portfolio.", assets.uses)


def _decomposition(q: Question, free: str, found: list[str]) -> Plan:
    date = _date_column(q)
    if date is None and not _has_dates(q.frame, None):
        raise _not_understood(q.frame, "A seasonal decomposition needs dates; "
                                       f"{q.frame.name} has no datetime column or index.")
    column = _one_numeric(q)
    symbol = _one_asset(q)
    rate, basis = _periods_per_year(q, date, symbol.unique if symbol else 1)
    # One seasonal cycle a year for monthly, quarterly and weekly data; a week for daily data.
    period = {365: 7, 252: 5}.get(rate, rate)
    given = _number_after(q, "period", "of")
    if given and given > 1 and "period" in q.free_words:  # "with a period of 6"
        period, basis = given, "as the question says"
    return Plan("decomposition", q.frame.name,
                {"column": column.name, "date_column": date.name if date else None,
                 "period": period, "model": "multiplicative" if "multiplicative" in free
                 else "additive"},
                f"Seasonal decomposition of {column.name!r} with a period of {period} "
                f"({basis}), and an ADF stationarity test.",
                _uses(column, date))


def _t_test(q: Question, free: str, found: list[str]) -> Plan:
    statistic = _statistic(q)
    if statistic not in (None, "mean"):
        raise _not_understood(q.frame, f"The tests here compare means; a test of the "
                                       f"{statistic} is not one of the offline analyses.")
    group = _group_column(q)
    # The groups a test compares are named values, whether or not a filter also took them
    # ("between Lunch and Dinner" keeps those rows, and compares them).
    values = [*q.values, *q.selected]
    if group is None:
        columns = {v.column.name for v in values}
        group = q.frame.column(columns.pop()) if len(columns) == 1 and len(values) >= 2 \
            else None
    if group is not None:
        value = _one_numeric(q, exclude=(group.name,))
        named = sorted({v.value for v in values if v.column.name == group.name})
        groups = named if len(named) >= 2 else [str(g) for g in group.stats.get("top", {})] \
            or _numeric_groups(group)
        if len(groups) < 2 or (len(named) < 2 and group.unique > len(groups)):
            raise _not_understood(q.frame, f"Name the groups of {group.name!r} to compare.")
        return Plan("group_test", q.frame.name,
                    {"columns": [value.name], "group_column": group.name, "groups": groups},
                    f"Do the means of {value.name!r} differ between {', '.join(groups)} of "
                    f"{group.name!r}? " + ("Welch's t-test." if len(groups) == 2 else
                                           "One-way ANOVA."), _uses(value, group))
    null = next((float(w) for w in q.free_words if w.isdigit()), 0.0)
    if re.search(r"\breturns?\b", free) or _symbol_column(q) is not None:
        _one_asset(q)
        assets = _assets(q)
        columns, holds = assets.bindings["columns"], assets.bindings["column_holds"]
        return Plan("t_test", q.frame.name,
                    {"columns": columns, "column_holds": "prices" if holds == "prices"
                     else "values", "null_value": null},
                    f"One-sample t-test of the mean return per period of {', '.join(columns)} "
                    f"against {null:g}, with a 95% confidence interval"
                    + (" (returns computed from the prices, in percent)." if holds == "prices"
                       else "."), assets.uses)
    column = _one_numeric(q)
    return Plan("t_test", q.frame.name,
                {"columns": [column.name], "column_holds": "values", "null_value": null},
                f"One-sample t-test of the mean of {column.name!r} against {null:g}, with a 95% "
                "confidence interval.", _uses(column))


def _numeric_groups(column: ColumnInfo) -> list[str]:
    """The groups of a numeric column of a few codes (sex as 1 and 2, a class as 0, 1, 2), as
    the template compares them (as text): known from the context when they are its min and
    max, or every integer between."""
    low, high = column.stats.get("min"), column.stats.get("max")
    if not isinstance(low, (int, float)) or not isinstance(high, (int, float)):
        return []
    if column.unique == 2:
        return [str(low), str(high)]
    if float(low).is_integer() and float(high).is_integer() and high - low + 1 == column.unique:
        kind = float if "float" in column.dtype else int
        return [str(kind(v)) for v in range(int(low), int(high) + 1)]
    return []


def _regression(q: Question, free: str, found: list[str]) -> Plan:
    named = q.columns("numeric")
    numeric = q.frame.columns_of_kind("numeric")
    # The target is named first, or after "predict"/"explain" ("predict tip from ...").
    if not named:
        raise _ambiguous(q.frame, "target column", numeric)
    # "predict tip from total bill", "total bill predicts tip": the column after the verb.
    verbs = [i for i, w in enumerate(q.words) if re.match(r"predict|explain|regress|driv", w)]
    after = [c for c in (q.column_after(i) for i in verbs) if c is not None and c in named]
    target = after[0] if after else named[0]
    features = [c for c in named if c != target] or [c for c in numeric if c.name != target.name]
    if not features:
        raise _not_understood(q.frame, "A regression needs at least one other numeric column.")
    prices = _symbol_column(q) is None and all(_holds(c) == "prices" for c in
                                                [target, *features]) and _has_dates(
        q.frame, _date_column(q)) and bool(re.search(r"\breturns?\b", free))
    return Plan("regression", q.frame.name,
                {"target": target.name, "features": [c.name for c in features],
                 "column_holds": "prices" if prices else "values"},
                f"Linear regression of {target.name!r}" + (" returns" if prices else "")
                + f" on {', '.join(c.name for c in features)}: coefficients, importance, R² and "
                  "the R² on a held-out quarter of the rows.", _uses(target, *features))


def _clustering(q: Question, free: str, found: list[str]) -> Plan:
    # "into 3 clusters", "k = 3": that k, not the best by silhouette score
    asked = next((int(q.words[i]) for i in range(len(q.words) - 1) if q.words[i].isdigit()
                  and q.stems[i + 1] in ("cluster", "group", "segment")), None) \
        or _number_after(q, "k")
    k_min, k_max = (asked, asked) if asked else (2, _number_after(q, "to", "max") or 6)
    chosen = f"k = {asked}, as asked" if asked else "k from 2 up, chosen by silhouette score"
    by_returns = bool(re.search(r"\b(?:assets?|stocks?|tickers?|holdings?|returns?|symbols?)\b",
                                free))
    if by_returns:
        assets = _assets(q)
        return Plan("clustering", q.frame.name,
                    {"cluster_assets": True, **assets.bindings, "min_k": k_min,
                     "max_k": k_max},
                    f"k-means clustering of the assets by their returns ({assets.said}); "
                    f"{chosen}; a PCA view and each cluster's mean return and volatility.",
                    assets.uses)
    named = q.columns("numeric")
    # A class label ("target") is what clusters might find, not a feature to find them by.
    labels = [c for c in q.frame.columns_of_kind("numeric") if c.name.lower() in LABEL_NAMES]
    columns = named if len(named) >= 2 else [
        c for c in q.frame.columns_of_kind("numeric") if c not in labels]
    if len(columns) < 2:
        raise _not_understood(q.frame, "Clustering rows needs two or more numeric columns.")
    left_out = f" ({labels[0].name} left out: it labels the rows)" \
        if labels and len(named) < 2 else ""
    return Plan("clustering", q.frame.name,
                {"cluster_assets": False, "columns": [c.name for c in columns],
                 "min_k": k_min, "max_k": k_max},
                f"k-means clustering of the rows by {', '.join(c.name for c in columns[:50])} "
                f"{'(the 50 most variable) ' if len(columns) > 50 else ''}(standardised)"
                f"{left_out}; {chosen}; a PCA view and each cluster's means.",
                _uses(*columns))


def _counts(q: Question, free: str, found: list[str]) -> Plan:
    group = _group_column(q)
    by = _second_group(q, group)
    if by is not None:  # "how many rows by species and island": a table of the pairs
        return _statistic_table(q, group, by, counting=True)
    if group is not None:  # "how many rows per day": the rows in each group
        return Plan("value_counts", q.frame.name, {"column": group.name, "top_n": MAX_GROUPS},
                    f"How many rows fall in each group of {group.name!r} in {q.frame.name}.",
                    _uses(group))
    return Plan("counts", q.frame.name, {},
                f"How many rows, columns and missing values {q.frame.name} has.", frozenset())


def _group_statistic(q: Question, free: str, found: list[str]) -> Plan:
    group = _group_column(q)
    if group is None or _counted(q) == "rows":
        return _group_comparison(q, free, found)
    return _statistic_table(q, group, _second_group(q, group))


def _statistic_table(q: Question, group: ColumnInfo, by: ColumnInfo | None = None,
                     counting: bool = False) -> Plan:
    """The statistic asked of the numeric column named (or the rows counted) per group, or
    per pair of groups of ``group`` (the table's rows) and ``by`` (its columns)."""
    statistic = "count" if counting else _statistic(q) or "mean"
    groups = tuple(c.name for c in (group, by) if c)
    value = None if counting else _share_of(q, groups) if statistic == "share" else \
        _one_numeric(q, exclude=groups)
    weak = q.columns("numeric", weak=True)
    if value is None and weak and not counting:  # "what share of the tips are from smokers"
        what = (f"The share of the rows (each one of the {q.frame.name}; \"share of the total "
                f"{weak[0].name}\" adds up {weak[0].name!r}), in percent, in")
    elif value is None:
        what = "How many rows fall in" if counting else "The share of the rows (in percent) in"
    elif statistic == "share":
        what = f"The share of the total {value.name!r} (in percent) of"
    else:
        what = f"The {statistic} of {value.name!r} for"
    bindings = {"value_column": value.name if value else None, "group_column": group.name,
                "statistic": statistic}
    template = "group_share" if statistic == "share" else "group_statistic"
    if by is None:
        return Plan(template, q.frame.name, bindings, f"{what} each {group.name!r}.",
                    _uses(value, group))
    return Plan(template, q.frame.name, {**bindings, "by_column": by.name},
                f"{what} each pair of {group.name!r} (the table's rows) and {by.name!r} "
                "(its columns), with grouped bars.", _uses(value, group, by))


def _share_of(q: Question, groups: tuple[str, ...]) -> ColumnInfo | None:
    """The numeric column whose total a share is of ("share of total sales by region"), or None
    for a share of the rows ("percentage of rows by island", "share of the tips from smokers"
    in the tips frame, whose rows are tips; "share of total tips" adds up the tip column)."""
    named = [c for c in q.columns("numeric") if c.name not in groups]
    if len(named) > 1:
        raise _not_understood(q.frame, f"The question names several numeric columns "
                                       f"({', '.join(c.name for c in named)}); a share is of "
                                       "the total of one.")
    totals = [m.column for m in q.mentions if m.weak and m.start
              and q.words[m.start - 1] in ("total", "sum")]
    return (named or totals or [None])[0]


def _second_group(q: Question, group: ColumnInfo | None) -> ColumnInfo | None:
    """A second column of groups right after the first: "by day and sex", "per species and
    by island". A period of the dates there ("by symbol and year") is refused: no template
    groups by one."""
    for mention in q.mentions:
        i = mention.end + 1
        if mention.column != group or q.words[mention.end:i] != ["and"]:
            continue
        i += q.words[i:i + 1] in (["by"], ["per"], ["the"], ["each"], ["every"])
        second = next((m.column for m in q.mentions if m.start == i), None)
        if second is None and i < len(q.words) and q.stems[i] in PERIODS:
            raise _not_understood(q.frame, f"Grouping by {group.name!r} and by the "
                                           f"{q.words[i]} of the dates is not one of the "
                                           "offline analyses.")
        if second is None and i < len(q.words) and q.stems[i] in GROUP_NOUNS:
            raise InputError(f"The question groups by {q.words[i]!r}, which is not a column "
                             f"of {q.frame.name} (columns: "
                             f"{', '.join(c.name for c in q.frame.columns)}).",
                             "Name the column as it is spelled.")
        if second in (None, group, _identifier(q.frame)) or second.kind == "datetime" \
                or second.unique > MAX_GROUPS:
            continue
        if group.unique * second.unique > MAX_GROUPS:
            raise _not_understood(q.frame, f"{group.name!r} and {second.name!r} make up to "
                                           f"{group.unique * second.unique} pairs of groups, "
                                           f"too many for one table and chart (at most "
                                           f"{MAX_GROUPS}); group by one of them.")
        return second
    return None


CHART_KINDS = {"box": r"box", "violin": r"violin", "pie": r"pie", "scatter": r"scatter",
               "bar": r"bar", "line": r"line", "histogram": r"hist"}
# Overlaid histograms of more groups than this cannot be told apart.
MAX_OVERLAID = 6


def _chart(q: Question, free: str, found: list[str], kind: str | None = None) -> Plan:
    kind = kind or next(k for k, rx in CHART_KINDS.items() if re.search(rf"\b{rx}", free))
    named = q.columns()
    numeric = [c for c in named if c.kind == "numeric"]
    other = [c for c in named if c.kind != "numeric"]
    if kind == "scatter":
        if len(numeric) != 2:
            raise _not_understood(q.frame, "A scatter plot needs two numeric columns; name them.")
        x, y = numeric[1], numeric[0]  # "tip against total bill": total bill across
    elif kind == "bar" and numeric and _statistic(q) not in (None, "mean"):
        return _group_statistic(q, free, found)  # "bar chart of total units by region"
    elif kind == "bar" and _asks_share(q):
        return _group_comparison(q, free, found)  # "bar chart of the share of rows by island"
    elif kind == "bar" and _second_group(q, _group_column(q)):
        # "bar chart of tip by day and sex", "... of rows by species and island": grouped bars
        group = _group_column(q)
        return _statistic_table(q, group, _second_group(q, group), counting=not numeric)
    elif kind == "pie" and numeric:
        raise _not_understood(q.frame, "A pie chart here shows how many rows fall in each "
                                       "category; it cannot show a share of "
                                       f"{numeric[0].name!r}.")
    elif kind in ("pie",) or (kind == "bar" and not numeric):
        if len(other) != 1:
            raise _ambiguous(q.frame, "category column",
                             other or q.frame.columns_of_kind("categorical", "bool"))
        x, y = other[0], None
    elif kind == "line":
        y = _one_numeric(q)
        x = _date_column(q)
    else:
        group = _group_column(q)
        x = group or (other[0] if other else None)
        y = _one_numeric(q, exclude=tuple(c.name for c in other if c is not x)
                         + ((x.name,) if x else ()))
    if kind == "histogram":
        if x.unique > MAX_OVERLAID:
            raise _not_understood(q.frame, f"{x.name!r} has {x.unique} groups, too many for "
                                           "overlaid histograms to be told apart; ask for a "
                                           f"box plot of {y.name} by {x.name}.")
        return Plan("histogram_chart", q.frame.name, {"kind": kind, "x": x.name, "y": y.name},
                    f"Histograms of {y.name!r}, one for each {x.name!r}, overlaid on the same "
                    "bins.", _uses(x, y))
    return Plan(f"{kind}_chart", q.frame.name,
                {"kind": kind, "x": x.name if x else None, "y": y.name if y else None},
                f"A {kind} chart of " + " by ".join(c.name for c in (y, x) if c is not None)
                + ".", _uses(x, y))


@dataclass(frozen=True)
class Recipe:
    """One analysis the offline generator reads: its words, what it absorbs, its binder."""

    name: str
    triggers: str  # a regular expression over the question's words outside column names
    bind: Any  # (question, free words, recipes found) -> Plan
    templates: tuple[str, ...]  # the templates its plans render
    absorbs: frozenset[str] = frozenset()  # other recipes' words that are part of this one
    financial: bool = False  # its questions name the data as "returns", "prices"...

    @cached_property
    def pattern(self) -> re.Pattern:
        return re.compile(rf"\b(?:{self.triggers})\b")


# In order of priority: the first recipe whose words match reads the question, and any other
# that matches must be one it absorbs.
RECIPES = [
    Recipe("portfolio_optimization",
           r"optimi[sz]\w*|efficient frontier|max(?:imum)? sharpe|min(?:imum)? variance|"
           r"optimal (?:portfolio|weights?|allocation)|mean variance|markowitz|"
           r"(?<!equal )weights?",
           _optimization, ("portfolio_optimization",),
           frozenset({"portfolio_performance", "value_at_risk", "correlation", "chart",
                      "distribution", "group_comparison", "group_statistic", "time_series"}),
           True),
    Recipe("value_at_risk", r"value at risk|var|cvar|expected shortfall|tail risk",
           _value_at_risk, ("value_at_risk",),
           frozenset({"portfolio_performance", "distribution", "chart", "group_comparison",
                      "group_statistic", "time_series"}), True),
    Recipe("decomposition",
           r"decompos\w*|seasonal\w*|stationar\w*|adf|dickey fuller|unit root",
           _decomposition, ("decomposition",),
           frozenset({"time_series", "t_test", "chart", "summary"}), True),
    Recipe("clustering", r"cluster\w*|k means|kmeans|segment\w*", _clustering,
           ("clustering",), frozenset({"portfolio_performance", "summary", "chart",
                                       "correlation", "group_statistic", "group_comparison"}),
           True),
    Recipe("regression",
           r"regress\w*|linear model|predict\w*|explain\w*|drivers?|what drives|"
           r"feature importance|"
           r"r squared|r2", _regression, ("regression",),
           frozenset({"portfolio_performance", "summary", "chart", "correlation"}), True),
    Recipe("t_test",
           r"t tests?|ttest|significan\w*|hypothes\w*|p values?|confidence intervals?|"
           r"different from zero|differ\w* significantly|anova|statistically|"
           r"(?:differ|differs|different) (?:between|across|among|by)|"
           r"test (?:whether|if)",
           _t_test, ("t_test", "group_test"),
           frozenset({"portfolio_performance", "group_comparison", "group_statistic",
                      "distribution", "chart", "summary"}), True),
    Recipe("portfolio_performance",
           r"sharpe|draw ?downs?|portfolio|equity curves?|total returns?|risk and returns?|"
           r"annuali[sz]ed|volatility|cagr|cumulative returns?|performance|"
           r"(?:best|worst|highest|lowest) returns?",
           _portfolio, ("portfolio_performance",),
           frozenset({"time_series", "summary", "chart", "group_comparison", "group_statistic",
                      "distribution"}), True),
    Recipe("correlation",
           r"correlat\w*|heat ?maps?|relationships? between|relate[sd]?|associat\w*|"
           r"co ?move\w*|move together",
           _correlation, ("correlation",),
           frozenset({"summary", "chart", "group_comparison", "group_statistic",
                      "time_series"}), True),
    Recipe("chart",
           r"box ?plots?|boxes|box|violin\w*|pie(?: chart)?s?|scatter\w*|"
           r"bar (?:chart|plot|graph)s?|line (?:chart|plot|graph)s?",
           _chart, tuple(f"{kind}_chart" for kind in CHART_KINDS),
           frozenset({"distribution", "group_comparison", "group_statistic", "value_counts",
                      "summary", "time_series"})),
    Recipe("time_series",
           r"over time|time ?series|trend\w*|rolling|moving (?:average|mean)s?|resampl\w*|"
           r"evolution|evolv\w*", _time_series, ("time_series",), frozenset({"summary"})),
    Recipe("counts",
           r"how many (?:rows|columns|records|observations|entries|missing(?: values)?|"
           r"lines|samples|nulls?|nans?)|number of (?:rows|columns|records|observations|"
           r"missing values)|missing values?|row count|shape|null values?|nans?",
           _counts, ("counts",),
           frozenset({"summary", "value_counts", "group_comparison", "group_statistic"})),
    Recipe("group_comparison", r"compare|comparison|comparing|versus|vs", _group_comparison,
           ("group_comparison",),
           frozenset({"distribution", "summary", "value_counts", "top_rows", "group_statistic"})),
    Recipe("group_statistic", r"(?!x)x", _group_statistic, ("group_statistic", "group_share"),
           frozenset({"summary", "value_counts", "distribution"})),
    Recipe("top_rows", r"(?:top|bottom|largest|smallest|highest|lowest|biggest) \d+|"
                       r"\d+ rows? (?:with|have|has|had|by) (?:the )?(?:largest|smallest|"
                       r"highest|lowest|biggest|most|least)|(?:largest|smallest|highest|"
                       r"lowest|biggest|maximum|minimum) (?:\w+ )?(?:and )?when\b|"
                       r"\b(?:when|which date|what date)\b(?: \w+){0,3} (?:largest|smallest|"
                       r"highest|lowest|biggest|maximum|minimum)\b|"
                       r"\d+ (?:largest|smallest|highest|lowest|biggest|heaviest|lightest|"
                       r"longest|shortest|most expensive|cheapest)",
           _top_rows, ("top_rows",), frozenset({"value_counts", "summary"})),
    Recipe("value_counts", r"value counts?|most (?:common|frequent|popular)|frequenc\w*|"
                           r"how many|counts?|top \d+|unique values|distinct values|breakdown",
           _value_counts, ("value_counts",), frozenset({"distribution", "summary"})),
    Recipe("distribution",
           r"distribut\w*|histograms?|hist|spread|skew\w*|kurtosis|outliers?|dispersion|"
           r"variance|standard deviation|std|percentiles?|quantiles?|quartiles?",
           _distribution, ("distribution",), frozenset({"summary"})),
    Recipe("summary", r"summar\w*|describe|description|overview|statistics|stats|profile|"
                      r"explore|eda|first look|tell me about|info", _summary, ("summary",)),
]
RECIPE = {recipe.name: recipe for recipe in RECIPES}
BENCHMARK_NAME = re.compile(r"bench|market|index|spy|sp ?500", re.IGNORECASE)
