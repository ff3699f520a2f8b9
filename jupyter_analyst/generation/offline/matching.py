"""Finding column names, category values and unknown names in a question, offline.

Questions and column names are compared as sequences of lowercased word stems, so
"Total Bill", "total_bill", "totalBill" and "total bills" all name ``total_bill``.
Longer column names are matched first and a word belongs to one column at most.
A question read with a ``vocabulary`` (the words of the analyses) also finds columns by
their abbreviations ("unemployment" names ``unemp``, "real gdp" ``realgdp``, "sepal len"
``sepal length (cm)``, "blood pressure" ``bp``) where exactly one column fits.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass

from ...context import ColumnInfo, FrameInfo

# Phrases whose words are never column names ("over time" must not name a column "time").
NOT_COLUMNS = ("over time", "time series", "timeseries", "through time", "in time")

# Words after "of", "by", "for"... that name the data in general rather than a column.
GENERIC = {
    "a", "an", "the", "this", "that", "these", "those", "it", "its", "them", "their", "my",
    "our", "your", "each", "every", "all", "both", "different", "whole", "entire", "other",
    "data", "dataset", "datasets", "frame", "dataframe", "table", "column", "columns",
    "variable", "feature", "field", "value", "values", "number", "numbers", "numeric",
    "numerical", "row", "record", "entry", "observation", "sample",
    "distribution", "histogram", "correlation", "correlations", "trend", "summary",
    "statistic", "statistics", "stats", "overview", "heatmap", "matrix", "mean", "average",
    "median", "sum", "total", "count", "counts", "frequency", "frequencies", "rolling",
    "moving", "plot", "chart", "graph", "group", "groups", "category", "categories", "pair",
    "pairs", "relationship", "outlier", "skew", "skewness", "spread", "time", "date",
    "day", "days", "week", "weeks", "month", "months", "year", "years", "period", "periods",
    "daily", "weekly", "monthly", "quarterly", "yearly", "annual", "max", "maximum", "min",
    "minimum", "top", "most", "common", "unique", "distinct", "level", "levels", "change",
    "changes", "underneath", "below", "me", "us", "how", "what", "which", "whether", "bottom",
    "largest", "smallest", "highest", "lowest", "biggest", "asset", "stock", "ticker",
    "security", "securities", "instrument", "series", "quarter", "quarters", "avg",
}
# Words between a preposition and the name it introduces: "of the daily returns".
MODIFIERS = {"the", "a", "an", "each", "every", "different", "its", "their", "all", "daily",
             "weekly", "monthly", "quarterly", "yearly", "annual", "total", "average", "mean",
             "median"}
# Day and month names, which the data often abbreviates ("Sun") and questions spell out.
CALENDAR_NAMES = {n.lower() for n in (*calendar.day_name, *calendar.month_name) if n}
# Unit suffixes: "body mass" names body_mass_g, "bill length" names bill_length_mm.
UNITS = {"mm", "cm", "m", "km", "g", "kg", "lb", "lbs", "s", "sec", "ms", "min", "h", "hr",
         "pct", "usd", "eur", "gbp", "ft", "in"}
# What the class of a row is called in a question, for a frame that keeps it as "target"
# (scikit-learn's frames) or "label": "how many wines in each class".
LABEL_NAMES = {"target", "label", "class", "y"}
LABEL_WORDS = {"class", "classes", "label", "labels", "target"}
# A column of day names is what "by weekday" groups by ("average tip by weekday").
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
GROUPING = ("by", "per", "each", "every", "across")


CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z][a-z])")  # "totalBill" is two words; "CVaR" one
WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> list[str]:
    """Lowercase words of ``text``; camelCase and snake_case are split into words."""
    return WORD.findall(CAMEL.sub(" ", str(text)).lower())


def word_spans(text: str) -> list[tuple[int, int]] | None:
    """Where each of ``words(text)`` stands in ``text``, or None if that cannot be said
    (a character whose lowercase is longer, such as 'İ')."""
    lower = text.lower()
    if len(lower) != len(text):
        return None
    cuts = {m.start() for m in CAMEL.finditer(text)}
    spans = []
    for match in WORD.finditer(lower):
        start = match.start()
        for cut in sorted(c for c in cuts if match.start() < c < match.end()):
            spans.append((start, cut))
            start = cut
        spans.append((start, match.end()))
    return spans if len(spans) == len(words(text)) else None


def stem(word: str) -> str:
    """A crude singular: "tips" -> "tip", "categories" -> "category", "masses" -> "mass"."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith(("sses", "xes", "ches", "shes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


@dataclass(frozen=True)
class Mention:
    column: ColumnInfo
    start: int  # index of the first word in the question
    end: int  # one past the last word
    # Spelled exactly like the frame ("tips" in the tips frame, which has a "tip" column):
    # it names the column only where an analysis needs one and no other column is named.
    weak: bool = False


@dataclass(frozen=True)
class ValueMention:
    column: ColumnInfo
    value: str
    start: int


class Question:
    """A question read against one frame: its words and the columns and values it names."""

    def __init__(self, text: str, frame: FrameInfo, vocabulary: frozenset[str] | None = None):
        self.text = text
        self.frame = frame
        self.words = words(text)
        self.stems = [stem(w) for w in self.words]
        taken = _phrase_positions(self.stems, [[stem(w) for w in words(p)] for p in NOT_COLUMNS])
        self.mentions = self._find_columns(taken)
        if vocabulary is not None:
            self.mentions = sorted([*self.mentions, *self._abbreviations(taken, vocabulary)],
                                   key=lambda m: m.start)
        self.inside = {i for m in self.mentions for i in range(m.start, m.end)}
        self.values = self._find_values(taken | self.inside)
        # Columns of a wide frame that the context lists by name only (no type, no stats).
        self.undescribed = [name for name in frame.listed_only
                            if _occurrences(self.stems, [stem(w) for w in words(name)], taken)]
        self.rows_said: set[int] = set()  # words naming the rows: "flowers", "states"
        self.selects: set[str] = set()  # columns a row filter of the question reads
        self.filtered_rows = False  # some rows selected (by a column, or by the dated index)
        self.filtered: list[Mention] = []
        self.selected: list[ValueMention] = []  # values a row filter took ("for Sat and Sun")
        # The words outside column names: what the question asks, not what it is about.
        self.free_words = [w for i, w in enumerate(self.words) if i not in self.inside]

    def name_rows(self, positions: set[int]) -> None:
        """Words that name the rows themselves, read as "rows" ("top 5 flowers by ..."); a
        column of row names said so ("which 5 states") is not a column the analysis uses."""
        self.rows_said |= positions
        self.mentions = [m for m in self.mentions if m.start not in positions]
        self.inside = {i for m in self.mentions for i in range(m.start, m.end)}
        self.free_words = [w for i, w in enumerate(self.words) if i not in self.inside]

    @property
    def free_text(self) -> str:
        """The words outside column names, a word for the rows read as "rows"."""
        return " ".join("rows" if i in self.rows_said else w
                        for i, w in enumerate(self.words) if i not in self.inside)

    def read_elsewhere(self, positions: set[int], selects: set[str]) -> None:
        """Words another reader took (a row filter on ``selects``): not free for the analysis."""
        self.selects = selects
        # A column named only in a condition ("... for parties of size at least 3") is not
        # what the analysis is about, unless nothing else is (see ``filtered``).
        self.filtered = [m for m in self.mentions if m.start in positions]
        self.mentions = [m for m in self.mentions if m.start not in positions]
        self.inside |= positions
        self.selected = [v for v in self.values if v.start in positions]
        self.values = [v for v in self.values if v.start not in positions]
        self.free_words = [w for i, w in enumerate(self.words) if i not in self.inside]

    def _find_columns(self, taken: set[int]) -> list[Mention]:
        found = []
        columns = sorted(self.frame.columns, key=lambda c: -len(words(c.name)))
        for column in columns:
            target = [stem(w) for w in words(column.name)]
            spellings = [target]
            if len(target) > 1 and target[-1] in UNITS:
                spellings.append(target[:-1])
            for spelling in spellings:
                for start in _occurrences(self.stems, spelling, taken):
                    end = start + len(spelling)
                    said = self.words[start:end]
                    weak = said == words(self.frame.name) and said != words(column.name)
                    found.append(Mention(column, start, end, weak))
                    taken |= set(range(start, end))
        return sorted(found, key=lambda m: m.start)

    def _abbreviations(self, taken: set[int], vocabulary: frozenset[str]) -> list[Mention]:
        """Columns named by an abbreviation, on words no exact name took. A span that fits
        two columns names neither (the question is refused rather than guessed)."""
        found: dict[tuple[int, int], list[ColumnInfo]] = {}
        for column in self.frame.columns:
            tokens = [stem(w) for w in words(column.name)]
            if len(tokens) > 1 and tokens[-1] in UNITS:
                tokens = tokens[:-1]
            for start in range(len(self.words)):
                if start in taken:
                    continue
                end = self._spelled(tokens, start, taken, vocabulary)
                if end is None and column.name.lower() in LABEL_NAMES \
                        and column.unique <= 30 and self.words[start] in LABEL_WORDS:
                    end = start + 1
                if end is None and self.words[start] == "weekday" and start \
                        and self.words[start - 1] in GROUPING and holds_day_names(column):
                    end = start + 1
                if end is not None:
                    found.setdefault((start, end), []).append(column)
        chosen = []
        for (start, end), columns in sorted(found.items(), key=lambda f: f[0][0] - f[0][1]):
            if len(columns) == 1 and not taken & set(range(start, end)):
                chosen.append(Mention(columns[0], start, end))
                taken |= set(range(start, end))
        return chosen

    def _spelled(self, tokens: list[str], start: int, taken: set[int],
                 vocabulary: frozenset[str]) -> int | None:
        """One past the last word if the words from ``start`` spell ``tokens`` in short, with
        at least one token abbreviated; None otherwise."""
        i, shortened = start, False
        for token in tokens:
            if i >= len(self.words) or i in taken:
                return None
            word = self.words[i]
            content = word not in vocabulary and self.stems[i] not in vocabulary
            pieces = _pieces(token, self.words, i, taken, vocabulary)
            if self.stems[i] == token:
                i += 1
            elif pieces is not None:  # the longest reading first: "real gdp" for realgdp
                i, shortened = pieces, True
            elif content and len(word) >= 3 and token.startswith(word) and not word.isdigit():
                i, shortened = i + 1, True  # "len" for length
            elif content and len(token) >= 4 and word.startswith(token):
                i, shortened = i + 1, True  # "unemployment" for unemp
            else:
                return None
        return i if shortened else None

    def _find_values(self, taken: set[int]) -> list[ValueMention]:
        """Category values the question names ("Sun", "Dinner"): they signal a row filter."""
        found = []
        for column in self.frame.columns_of_kind("categorical", "text", "bool"):
            for value in column.stats.get("top", {}):
                target = [stem(w) for w in words(value)]
                if not target or _too_common(target):
                    continue
                starts = _occurrences(self.stems, target, taken)
                if len(target) == 1:
                    starts += [i for i, w in enumerate(self.words) if w in CALENDAR_NAMES
                               and w.startswith(target[0]) and i not in taken | set(starts)]
                for start in starts:
                    found.append(ValueMention(column, str(value), start))
        return sorted(found, key=lambda v: v.start)

    def columns(self, *kinds: str, weak: bool = False) -> list[ColumnInfo]:
        """Named columns (each once, in order of mention), optionally of some kinds only.

        ``weak=True`` gives the columns named only by the frame's own name instead.
        """
        seen: dict[str, ColumnInfo] = {}
        for mention in self.mentions:
            if mention.weak == weak and (not kinds or mention.column.kind in kinds):
                seen.setdefault(mention.column.name, mention.column)
        return list(seen.values())

    def column_after(self, position: int) -> ColumnInfo | None:
        """The column named right after word ``position``, skipping articles and one
        qualifying word ("by party size")."""
        i = position + 1
        while i < len(self.words) and self.words[i] in ("the", "a", "an", "each", "every",
                                                        "different", "its", "their"):
            i += 1
        starts = {m.start: m.column for m in self.mentions}
        if i not in starts and i not in self.inside:
            i += 1
        return starts.get(i)

    def positions(self, *candidates: str) -> list[int]:
        """Where any of the given words appear outside column names."""
        return [i for i, w in enumerate(self.words) if w in candidates and i not in self.inside]

    def unknown_names(self, after: tuple[str, ...], also_known: set[str] | frozenset[str]
                      ) -> list[str]:
        """Words in column position (right after ``after`` words) that name nothing known.

        "distribution of revenue" on a frame without ``revenue`` gives ["revenue"].
        """
        starts = {m.start for m in self.mentions} | {v.start for v in self.values}
        known = GENERIC | {stem(w) for w in also_known}
        unknown = []
        for i, word in enumerate(self.words[:-1]):
            if word not in after:
                continue
            j = i + 1
            while j < len(self.words) and j not in starts and self.words[j] in MODIFIERS:
                j += 1
            if j >= len(self.words) or j in starts or j in self.inside or j + 1 in starts \
                    or j in self.rows_said:
                continue  # a word right before a column qualifies it: "party size"
            candidate = self.words[j]
            if candidate.isdigit() or candidate in after or candidate in known \
                    or self.stems[j] in known:  # "plot for Dinner": "for" leads, names none
                continue
            unknown.append(candidate)
        return unknown


def _pieces(token: str, said: list[str], start: int, taken: set[int],
            vocabulary: frozenset[str]) -> int | None:
    """One past the words that spell ``token`` piece by piece: whole words and prefixes of
    three letters or more ("real interest" for realint, "t bill rate" for tbilrate), or the
    initials of content words only ("blood pressure" for bp). Two words at least."""

    def spell(rest: str, i: int, initials: bool | None) -> int | None:
        if not rest:
            return i
        if i >= len(said) or i in taken:
            return None
        word = said[i]
        content = word not in vocabulary and stem(word) not in vocabulary
        for size in range(min(len(word), len(rest)), 0, -1):
            piece = rest[:size]
            if not word.startswith(piece) or (word.isdigit() and size < len(word)):
                continue
            initial = size == 1 and len(word) >= 3 and content
            # "total employment" for TOTEMP; a span of analysis words alone is refused below
            whole_or_prefix = size == len(word) or size >= 3
            if initials is not False and initial and size < len(word):
                end = spell(rest[size:], i + 1, True)
            elif initials is not True and whole_or_prefix:
                end = spell(rest[size:], i + 1, False)
            else:
                continue
            if end is not None:
                return end
        return None

    end = spell(token, start, None)
    if end is None or end - start < 2 or all(
            w in vocabulary or stem(w) in vocabulary for w in said[start:end]):
        return None
    return end


def _too_common(target: list[str]) -> bool:
    """Values too short or too common in prose to be read as a filter ("No", "A", "2")."""
    text = " ".join(target)
    return len(text) <= 2 or text.isdigit() or text in GENERIC or text in {
        "yes", "no", "true", "false", "none", "nan", "other", "unknown"}


def _occurrences(stems: list[str], target: list[str], taken: set[int]) -> list[int]:
    n = len(target)
    if not n:
        return []
    return [
        i for i in range(len(stems) - n + 1)
        if stems[i:i + n] == target and not taken & set(range(i, i + n))
    ]


def _phrase_positions(stems: list[str], phrases: list[list[str]]) -> set[int]:
    return {i + k for phrase in phrases for i in _occurrences(stems, phrase, set())
            for k in range(len(phrase))}


def holds_day_names(column: ColumnInfo) -> bool:
    """Whether the listed values of ``column`` are all names of days ("Sun", "Monday")."""
    top = column.stats.get("top")
    return bool(top) and all(str(value).lower()[:3] in DAY_NAMES for value in top)
