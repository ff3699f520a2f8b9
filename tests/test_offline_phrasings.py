"""The phrasing corpus: each question gets the reading an analyst would take, or a refusal.

The corpus (tests/data/offline_phrasings.txt) gives for every question the template, the
bindings that matter and the rows and columns read from it; for a refusal, the error and
what its message must say. Run this file as a script to print the share read as expected.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from offline_frames import frame

from jupyter_analyst import errors
from jupyter_analyst.context import describe_frames
from jupyter_analyst.generation.offline.intent import plan

CORPUS = Path(__file__).parent / "data" / "offline_phrasings.txt"


@dataclass(frozen=True)
class Case:
    data: str
    question: str
    expected: str  # a template, or "!ErrorName"
    detail: str  # bindings (JSON) for an answer, the message's words for a refusal
    reading: str = ""

    @property
    def refused(self) -> bool:
        return self.expected.startswith("!")


def cases() -> list[Case]:
    found = []
    for line in CORPUS.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            found.append(Case(*(part.strip() for part in line.split("|"))))
    return found


def check(case: Case) -> str | None:
    """None when the question is read as the corpus expects, else what went differently."""
    context = describe_frames({case.data: frame(case.data)})
    try:
        chosen = plan(case.question, context)
    except errors.AnalystError as error:
        if not case.refused:
            return f"refused: {error.problem}"
        if type(error).__name__ != case.expected[1:]:
            return f"{type(error).__name__} instead of {case.expected[1:]}: {error.problem}"
        if case.detail not in f"{error.problem} {error.fix}":
            return f"message lacks {case.detail!r}: {error.problem}"
        return None
    if case.refused:
        return f"answered with {chosen.template} {chosen.bindings}"
    if chosen.template != case.expected:
        return f"{chosen.template} instead of {case.expected} ({chosen.bindings})"
    bindings = json.loads(case.detail)
    got = {key: chosen.bindings.get(key) for key in bindings}
    if got != bindings:
        return f"bindings {got} instead of {bindings}"
    if chosen.reading != case.reading:
        return f"reading {chosen.reading!r} instead of {case.reading!r}"
    return None


CASES = cases()


def test_the_corpus_is_large_and_has_refusals():
    assert len(CASES) >= 150
    assert sum(case.refused for case in CASES) >= 20
    assert len({case.data for case in CASES}) >= 6


@pytest.mark.parametrize("case", CASES, ids=[f"{c.data}: {c.question}" for c in CASES])
def test_each_phrasing_is_read_as_expected(case):
    problem = check(case)
    assert problem is None, problem


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    misread = [(case, problem) for case in CASES if (problem := check(case))]
    for case, problem in misread:
        print(f"{case.data}: {case.question}\n    {problem}")
    for data in sorted({case.data for case in CASES}):
        cases = [case for case in CASES if case.data == data]
        wrong = sum(case.data == data for case, _ in misread)
        print(f"  {data}: {len(cases) - wrong} of {len(cases)}")
    print(f"{len(CASES) - len(misread)} of {len(CASES)} read as expected "
          f"({1 - len(misread) / len(CASES):.1%})")
