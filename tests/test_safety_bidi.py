"""Approval deception: invisible and bidirectional control characters, and names Python reads
differently from how they are spelled. Refused outside string literals, reported (with their
position, for the approval panel) inside them."""

from __future__ import annotations

import pytest

from jupyter_analyst.safety import RiskLevel, SafetyValidator
from jupyter_analyst.safety.strings import InvisibleCharacter, invisible_characters

validator = SafetyValidator()

REFUSED = [
    # a right-to-left override in a comment reorders what the reviewer sees of the line
    ("total = df['v'].sum()  # keep \u202e ;)'x'(tuo_ot.fd\n", "invisible-character"),
    ("limit\u200b = 3\n", "invisible-character"),  # zero-width space glued to a name
    ("\u3164 = df\n\u3164.head()\n", "invisible-character"),  # Hangul filler as a name
    ("a\ufe00 = 1\n", "invisible-character"),  # a variation selector makes another name
    ("x = 1 \u2066# lrm\u2069\n", "invisible-character"),  # isolates around a comment
    ("\ufeffprint(1)\n", "invisible-character"),  # a byte-order mark at the start
    # an isolate opened in a string and never closed reorders the code after it
    ("label = 'admin\u2067'; ok = False\n", "bidi-reorder"),
    # Python normalises identifiers: this is eval, spelled with a full-width letter
    ("\uff45val('1')\n", "confusable-name"),
    ("\u00b5 = df.v.mean()\n", "confusable-name"),  # micro sign: runs as Greek mu
]

WARNED = [
    "label = 'caf\u00e9\u200d'\n",  # a zero-width joiner inside a string
    "s = '\u2067abc\u2069'\n",  # a balanced isolate inside a string
    "t = f'{x}\u200e'\n",  # a left-to-right mark inside an f-string
]

CLEAN = [
    "name = 'Zoë'\n# Größe in cm\n",
    "\u03bc = df.v.mean()\n",  # Greek mu, already normalised
    "header = 'a\\tb'\n",
]


@pytest.mark.parametrize("code, rule", REFUSED, ids=[ascii(c)[:40] for c, _ in REFUSED])
def test_refused_outside_string_literals(code, rule):
    report = validator.validate(code)
    assert report.risk_level is RiskLevel.CRITICAL, report.summary()
    found = [f for f in report.violations if f.rule == rule]
    assert found and all(f.line >= 1 and f.col >= 1 for f in found), report.summary()
    assert all(f.message.endswith(".") for f in found)


@pytest.mark.parametrize("code", WARNED, ids=[ascii(c)[:40] for c in WARNED])
def test_reported_inside_string_literals(code):
    report = validator.validate(code)
    assert report.allowed, report.summary()
    assert report.warnings and {f.rule for f in report.warnings} == {"invisible-character"}
    assert all(f.severity is RiskLevel.MEDIUM for f in report.warnings)
    assert all("inside a string literal" in f.message for f in report.warnings)


@pytest.mark.parametrize("code", CLEAN)
def test_ordinary_unicode_passes(code):
    report = validator.validate(code)
    assert report.allowed and not report.findings, report.summary()
    assert invisible_characters(code) == []


def test_positions_for_the_approval_panel():
    code = "x = 1\ny = 'a\u200bb'  # \u202e\n"
    assert invisible_characters(code) == [
        InvisibleCharacter(2, 7, "U+200B", "ZERO WIDTH SPACE", True),
        InvisibleCharacter(2, 14, "U+202E", "RIGHT-TO-LEFT OVERRIDE", False),
    ]


def test_control_characters_that_rewrite_the_terminal_are_found():
    code = "print('ok')  # \x1b[2K hidden\n"
    [char] = invisible_characters(code)
    assert (char.codepoint, char.in_string) == ("U+001B", False)
    assert not validator.validate(code).allowed


def test_code_that_does_not_tokenize_counts_everything_as_outside():
    code = "s = 'open\u202e\n"  # unterminated string
    assert [c.in_string for c in invisible_characters(code)] == [False]
    assert validator.validate(code).risk_level is RiskLevel.CRITICAL


def test_lines_are_counted_as_python_counts_them():
    # a form feed or a vertical tab is no line break for Python
    code = "a = 1\x0c\nb = 2  # \x0b\nc = '\u200b'\n"
    assert [(c.line, c.col, c.in_string) for c in invisible_characters(code)] == [
        (2, 10, False), (3, 6, True)]
