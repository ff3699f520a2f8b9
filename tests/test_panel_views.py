"""The panel's HTML fragments: everything from a generator, the validator or the user is escaped."""

from __future__ import annotations

import html
import re

import pytest

from jupyter_analyst.safety import RiskLevel, SafetyReport, SafetyValidator
from jupyter_analyst.safety.report import Finding
from jupyter_analyst.ui import views

HOSTILE = "<img src=x onerror=alert(1)><script>alert(2)</script>"


def test_code_is_escaped_and_numbered():
    html = views.code_html(f"label = '{HOSTILE}'\nprint(label)\n")
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;" in html
    assert ">1<" in html and ">2<" in html  # inline line numbers


def test_explanation_and_messages_are_escaped():
    assert "<img" not in views.explanation_html(HOSTILE)
    assert "&lt;img" in views.explanation_html(HOSTILE)
    assert views.explanation_html("   ") == ""
    message = views.message_html(HOSTILE, HOSTILE)
    assert "<script>" not in message and message.count("&lt;script&gt;") == 2


@pytest.mark.parametrize("level, text", [
    (RiskLevel.SAFE, "✓ risk: safe"),
    (RiskLevel.LOW, "• risk: low"),
    (RiskLevel.MEDIUM, "⚠ risk: medium"),
    (RiskLevel.HIGH, "✖ risk: high · cannot run"),
    (RiskLevel.CRITICAL, "✖ risk: critical · cannot run"),
])
def test_badge_says_the_level_in_words(level, text):
    report = SafetyReport()
    if level is not RiskLevel.SAFE:
        report.add(Finding("rule", "message", line=3, severity=level))
    badge = views.badge_html(report)
    assert f">{text}</span>" in badge and f"data-risk='{level.value}'" in badge
    assert "var(--jp-" in badge  # theme colours, not fixed ones


def test_findings_list_lines_rules_and_escaped_messages():
    report = SafetyValidator().validate("import pandas as pd\nimport os\nx = eval('1')\n")
    html = views.safety_html(report)
    assert report.risk_level.rank >= RiskLevel.HIGH.rank
    assert "line 2" in html and "line 3" in html
    assert views.findings_lines(report) == [2, 3]
    hostile = SafetyReport()
    hostile.add(Finding(HOSTILE, HOSTILE, severity=RiskLevel.MEDIUM))
    html = views.safety_html(hostile)
    assert "<script>" not in html and "whole code" in html
    assert "No findings." in views.safety_html(SafetyReport())


def test_marked_lines_get_a_background():
    plain, marked = views.code_html("a = 1\nb = 2\n"), views.code_html("a = 1\nb = 2\n", [2])
    assert "--jp-cell-editor-active-background" in marked
    assert "--jp-cell-editor-active-background" not in plain


def test_repair_diff_shows_removed_and_added_lines_escaped():
    diff = views.repair_diff("x = df['bill']\nprint(x)\n",
                             f"x = df['total_bill']  # {HOSTILE}\nprint(x)\n")
    text = visible_text(diff)
    assert "-x = df['bill']" in text and "+x = df['total_bill']" in text
    assert "\n print(x)" in text
    assert "--- failed code" in text and "+++ proposed fix" in text
    assert "<script>" not in diff and "&lt;script&gt;" in diff
    assert "var(--jp-" in diff  # the theme's text colour
    tinted = [line for line in diff.split("<div") if "rgba(" in line]
    assert [visible_text("<div" + line)[:3] for line in tinted] == ["-x ", "+x "]
    assert "(no changes)" in visible_text(views.repair_diff("x = 1\n", "x = 1\n"))


def visible_text(fragment: str) -> str:
    """What a browser shows of an HTML fragment: tags dropped, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", re.sub("</div>", "\n", fragment)))


def test_invisible_characters_are_shown_where_they_stand():
    code = "x = 1  # \u202egnp.secret\u202c\nlabel = 'a\u200bb'\nprint(x)\n"
    shown = views.shown_visibly(code)
    assert "\u202e" not in shown and "\u200b" not in shown
    assert "# [U+202E]gnp.secret[U+202C]" in shown and "'a[U+200B]b'" in shown
    assert shown.count("\n") == code.count("\n")  # line numbers still match the findings
    assert "[U+202E]" in views.code_html(code)
    assert views.shown_visibly("print(1)\n") == "print(1)\n"
