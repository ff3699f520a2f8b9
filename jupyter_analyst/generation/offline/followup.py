"""Offline follow-ups: a short question that changes the previous step of a conversation.

"the same for tip", "as a boxplot", "by day", "only for 2008" mean the previous question
with another column, another chart, other groups or other rows. The previous question is
read again (its code must be exactly what ran: a step an LLM wrote, or one the user edited,
cannot be changed offline), the change is written into its text, and the new text is
planned like any question: it is refused for the same reasons, and the explanation says
how the follow-up was read. Anything else a follow-up asks needs an LLM, and says so.
"""

from __future__ import annotations

import dataclasses
import re

from ...context import ColumnInfo, DataContext
from ...errors import AnalystError, InputError, NotUnderstoodError
from ..base import Exchange
from .filters import row_filters
from .intent import (
    CHART_KINDS,
    GLUE,
    LLM_OPTIONS,
    RECIPE,
    Plan,
    _choose_frame,
    _group_column,
    normalized,
    plan,
)
from .matching import Question, word_spans

# A question that starts like this continues the conversation rather than standing alone.
FOLLOW_UP = re.compile(
    r"^\W*(?:and|now|then|also|ok(?:ay)?|same|the same|do the same|what about|how about|"
    r"instead|only|just|as an?|in an?|by|per|across|for|in|but|again)\b", re.IGNORECASE)
# Words of a follow-up that only say "change the last step".
LINKING = {"same", "now", "instead", "again", "only", "just", "too", "thing", "one", "rather",
           "okay", "ok", "but", "also", "then", "that", "this", "it", "please", "try"}
CHART_PHRASE = {"box": "as a box plot", "violin": "as a violin plot", "pie": "as a pie chart",
                "scatter": "as a scatter plot", "bar": "as a bar chart", "line": "as a line chart"}
LEADS = ("for", "in", "only", "where", "with", "during", "among", "on", "since", "after",
         "before", "from", "until", "when")  # words that introduce a selection of rows
HELP = ("Offline, a follow-up can change the previous step's column (\"the same for tip\"), "
        "chart (\"as a boxplot\"), groups (\"by day\") or rows (\"only for 2008\"). "
        "Otherwise ask the whole question. " + LLM_OPTIONS)


def plan_in_thread(question: str, context: DataContext, analysis_type: str | None,
                   history: list[Exchange]) -> Plan:
    """The plan for ``question``, read as a follow-up of ``history`` where it is one."""
    if not history:
        return plan(question, context, analysis_type)
    previous = _previous_question(history, context, analysis_type)
    marked = FOLLOW_UP.match(question) is not None
    if previous is None:
        try:
            return plan(question, context, analysis_type)
        except NotUnderstoodError as exc:
            if not marked:
                raise
            raise NotUnderstoodError(
                "This looks like a follow-up, but the previous step's code is not what the "
                "offline templates wrote (an LLM wrote it, it was edited, or the data "
                "changed), so the offline generator cannot change it.",
                "Ask the whole question, or use an LLM for follow-ups: " + LLM_OPTIONS,
            ) from exc
    return _read(question, previous, context, analysis_type)[0]


def _read(question: str, previous: str, context: DataContext, analysis_type: str | None
          ) -> tuple[Plan, str]:
    """The plan of ``question`` and the text it was read as: on its own or as a follow-up."""
    def alone() -> tuple[Plan, str]:
        return plan(question, context, analysis_type), question

    def follow() -> tuple[Plan, str]:
        text = changed(previous, question, context)
        chosen = plan(text, context, analysis_type)
        said = f"Read as a follow-up of the previous step: {text!r}. {chosen.explanation}"
        return dataclasses.replace(chosen, explanation=said), text

    marked = FOLLOW_UP.match(question) is not None
    failures: dict[str, AnalystError] = {}
    for name, way in (("follow", follow), ("alone", alone)) if marked else (
            ("alone", alone), ("follow", follow)):
        try:
            return way()
        except (NotUnderstoodError, InputError) as exc:
            failures[name] = exc
    if not marked:  # most likely a question of its own; say what a follow-up could do
        alone_failure = failures["alone"]
        raise type(alone_failure)(alone_failure.problem, f"{alone_failure.fix}\nRead as a "
                                  f"follow-up of {previous!r}: {failures['follow'].problem} "
                                  f"{HELP}")
    raise NotUnderstoodError(f"Read as a follow-up of {previous!r}: "
                             f"{failures['follow'].problem}", HELP)


def _previous_question(history: list[Exchange], context: DataContext,
                       analysis_type: str | None) -> str | None:
    """The newest step as a whole question, if its code is what the templates write for it.

    Each step is read in turn (a follow-up of a follow-up builds on the one before);
    a step whose code differs (an LLM's, or edited) ends the chain.
    """
    text = None
    for step in history:
        try:
            chosen, read = (_read(step.question, text, context, analysis_type) if text
                            else (plan(step.question, context, analysis_type), step.question))
        except AnalystError:  # e.g. a step about a column this data does not have
            text = None
            continue
        ran = step.code.strip()
        text = read if ran and chosen.code().strip().endswith(ran) else None
    return text


def changed(previous: str, follow_up: str, context: DataContext) -> str:
    """``previous`` with the change ``follow_up`` asks for; NotUnderstoodError if unreadable."""
    before, after = normalized(previous), normalized(follow_up)
    frame = _choose_frame(before, context)
    old, new = Question(before, frame), Question(after, frame)
    old_spans, new_spans = word_spans(before), word_spans(after)
    if old_spans is None or new_spans is None:
        raise _unreadable("its characters cannot be matched to its words")
    edits: dict[tuple[int, int], str] = {}  # (first word, word after) of ``before`` -> text
    added: list[str] = []
    read: set[int] = set()  # words of the follow-up accounted for

    old_group = _group_column(old)
    group = next(((i, m) for i in new.positions("by", "per", "across") for m in new.mentions
                  if m.start == i + 1 or (m.start == i + 2 and new.words[i + 1] == "the")), None)
    if group is not None:
        at, mention = group
        read |= set(range(at, mention.end))
        grouped = [m for m in old.mentions if old_group is not None and m.column == old_group
                   and m.start > 0 and old.words[m.start - 1] in ("by", "per", "across", "the")]
        if grouped:
            edits[(grouped[0].start, grouped[0].end)] = mention.column.name
        else:
            added.append(f"by {mention.column.name}")

    selection = row_filters(new, group[1].column.name if group else None)
    if selection:
        old_selection = row_filters(old, old_group.name if old_group else None)
        tested = {_subject(line) for line in old_selection.lines}
        if tested & {_subject(line) for line in selection.lines}:  # other rows of the same kind
            if len(old_selection.lines) > 1 or len(selection.lines) > 1:
                raise _unreadable(f"it is not clear which rows to keep (before: "
                                  f"{'; '.join(old_selection.said)}; now: "
                                  f"{'; '.join(selection.said)})")
            for start, end in _runs(_with_leads(old, old_selection.positions)):
                edits[(start, end)] = ""
        positions = _with_leads(new, selection.positions)
        read |= positions
        # "only" says nothing a selection does not: the reading of a question refuses it.
        first = min(i for i in positions if new.words[i] not in ("only", "just"))
        added.append(after[new_spans[first][0]:new_spans[max(positions)][1]])

    charts = list(RECIPE["chart"].pattern.finditer(" ".join(new.words)))
    if charts:
        kind = next(k for k, rx in CHART_KINDS.items() if re.search(rf"\b{rx}", charts[0][0]))
        read |= _positions(new, charts) | {i for i, w in enumerate(new.words)
                                           if w in ("as", "a", "an", "in")}
        old_charts = _positions(old, RECIPE["chart"].pattern.finditer(" ".join(old.words)))
        for start, end in _runs(old_charts):
            start -= 2 if old.words[max(0, start - 2):start] in (["as", "a"], ["in", "a"]) else 0
            edits[(start, end)] = ""
        added.append(CHART_PHRASE[kind])

    for mention in new.mentions:  # "the same for tip": another column of the same kind
        if mention.start in read:
            continue
        read |= set(range(mention.start, mention.end))
        edits.update(_replacement(old, mention.column, edits))

    unread = [w for i, w in enumerate(new.words)
              if i not in read and w not in LINKING and w not in GLUE
              and w not in ("the", "a", "an")]
    if unread:
        raise _unreadable(f"the offline generator does not know what "
                          f"{', '.join(map(repr, unread[:3]))} asks to change (the columns "
                          f"of {frame.name}: {', '.join(c.name for c in frame.columns)})")
    if not edits and not added:
        raise _unreadable("it names no column, chart, groups or rows to change")
    text = before
    for (start, end), replacement in sorted(edits.items(), reverse=True):
        text = text[:old_spans[start][0]] + replacement + text[old_spans[end - 1][1]:]
    return " ".join(" ".join([text, *added]).split())


def _replacement(old: Question, column: ColumnInfo, edits: dict) -> dict[tuple[int, int], str]:
    """Where ``column`` takes the place of the previous question's column of its kind."""
    numeric = column.kind == "numeric"
    taken = {i for start, end in edits for i in range(start, end)}
    same_kind = [m for m in old.mentions if (m.column.kind == "numeric") == numeric
                 and m.start not in taken]
    names = sorted({m.column.name for m in same_kind})
    if column.name in names:
        raise _unreadable(f"the previous question is already about {column.name!r}")
    if len(names) != 1:
        kind = "numeric column" if numeric else "column of groups or categories"
        raise _unreadable(f"the previous question names {len(names) or 'no'} {kind}"
                          f"{'s' * (len(names) != 1)}{': ' + ', '.join(names) if names else ''}"
                          f", so it is not clear what {column.name!r} replaces")
    return {(m.start, m.end): column.name for m in same_kind}


def _positions(q: Question, matches) -> set[int]:
    """Word positions of regex matches over ``" ".join(q.words)``."""
    starts, at = [], 0
    for word in q.words:
        starts.append(at)
        at += len(word) + 1
    return {i for m in matches for i, s in enumerate(starts) if m.start() <= s < m.end()}


def _with_leads(q: Question, positions: set[int]) -> set[int]:
    """``positions`` and the words right before them that introduce a selection."""
    found = set(positions)
    for i in sorted(positions):
        j = i - 1
        while j >= 0 and j not in found and q.words[j] in LEADS:
            found.add(j)
            j -= 1
    return found


def _runs(positions: set[int]) -> list[tuple[int, int]]:
    """Consecutive word positions as (first, one past the last) ranges."""
    runs: list[tuple[int, int]] = []
    for i in sorted(positions):
        if runs and runs[-1][1] == i:
            runs[-1] = (runs[-1][0], i + 1)
        else:
            runs.append((i, i + 1))
    return runs


def _subject(line: str) -> str:
    """What a selection line tests, without the value it compares with."""
    return re.split(r"==|!=|>=|<=|>|<|\.isin\(", line.replace("~", ""))[0].strip()


def _unreadable(why: str) -> NotUnderstoodError:
    return NotUnderstoodError(f"{why[:1].upper()}{why[1:]}.", HELP)
