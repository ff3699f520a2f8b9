"""HTML fragments for the approval panel: highlighted code, the safety badge, findings, diffs.

Everything that came from a generator, the validator or the user is escaped here
(Pygments escapes the code it highlights). Colours are JupyterLab CSS variables (the
diff's tints are translucent, which works on either background), so the panel follows
the light and dark themes, and every colour is backed by text or a symbol, so nothing
depends on seeing the colour.
"""

from __future__ import annotations

import difflib
import html

from jupyterlab_pygments import JupyterStyle
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer

from ..safety import RiskLevel, SafetyReport
from ..safety.strings import invisible_characters

# (symbol, CSS colour variable with a fallback for frontends without JupyterLab's theme)
_RISK_LOOK = {
    RiskLevel.SAFE: ("✓", "var(--jp-success-color1, #388e3c)"),
    RiskLevel.LOW: ("•", "var(--jp-success-color1, #388e3c)"),
    RiskLevel.MEDIUM: ("⚠", "var(--jp-warn-color1, #f57c00)"),
    RiskLevel.HIGH: ("✖", "var(--jp-error-color1, #d32f2f)"),
    RiskLevel.CRITICAL: ("✖", "var(--jp-error-color1, #d32f2f)"),
}


_TEXT = "color: var(--jp-ui-font-color1, inherit)"
_MUTED = "color: var(--jp-ui-font-color2, inherit)"
# Diff lines keep the theme's text colour on a translucent tint, which reads on the light
# and the dark background alike (the themes' green text alone is too faint on light grey).
_DIFF_LINE = {"+": "background: rgba(76, 175, 80, 0.25)",
              "-": "background: rgba(244, 67, 54, 0.25)",
              "@": _MUTED}


def _formatter(marked_lines=()) -> HtmlFormatter:
    # No wrapping: line numbers must stay aligned with the findings; long lines scroll.
    return HtmlFormatter(style=JupyterStyle, noclasses=True, linenos="inline",
                         hl_lines=list(marked_lines), wrapcode=True,
                         prestyles="white-space: pre; margin: 0; padding: 4px 0")


def code_html(code: str, marked_lines=()) -> str:
    """Read-only, highlighted code with line numbers; ``marked_lines`` get a background.

    Invisible and control characters (bidirectional overrides, zero-width spaces, ...)
    are shown as ``[U+202E]``: what the reviewer reads is what the kernel would run.
    """
    block = highlight(shown_visibly(code), PythonLexer(), _formatter(marked_lines))
    return f"<div class='jupyter-analyst-code' style='overflow-x:auto'>{block}</div>"


def shown_visibly(code: str) -> str:
    """``code`` with each invisible character replaced by its code point in brackets."""
    found = invisible_characters(code)
    if not found:
        return code
    lines = code.split("\n")
    for item in sorted(found, key=lambda c: (c.line, c.col), reverse=True):
        text = lines[item.line - 1]
        at = item.col - 1  # the column counts from 1
        lines[item.line - 1] = f"{text[:at]}[{item.codepoint}]{text[at + 1:]}"
    return "\n".join(lines)


def badge_html(report: SafetyReport) -> str:
    """``✓ risk: safe``: a bordered label whose text alone tells the level."""
    level = report.risk_level
    symbol, colour = _RISK_LOOK[level]
    verdict = "" if report.allowed else " · cannot run"
    return (f"<span class='jupyter-analyst-badge' data-risk='{level.value}' "
            f"style='display:inline-block; padding:1px 8px; border:1px solid {colour}; "
            f"border-left:6px solid {colour}; border-radius:3px; font-weight:600; {_TEXT}; "
            f"background: var(--jp-layout-color2, transparent)'>"
            f"{symbol} risk: {level.value}{verdict}</span>")


def safety_html(report: SafetyReport) -> str:
    """The badge and one line per finding, with its line number and rule."""
    if not report.findings:
        items = f"<li style='{_MUTED}'>No findings.</li>"
    else:
        items = "".join(
            f"<li style='{_TEXT}'>{_RISK_LOOK[f.severity][0]} "
            f"<b>{'line ' + str(f.line) if f.line else 'whole code'}</b> "
            f"({html.escape(f.severity.value)}): {html.escape(f.message)} "
            f"<code>{html.escape(f.rule)}</code></li>"
            for f in report.findings)
    return (f"<div class='jupyter-analyst-safety'>{badge_html(report)}"
            f"<ul style='margin:4px 0; padding-left:20px'>{items}</ul></div>")


def explanation_html(explanation: str) -> str:
    if not explanation.strip():
        return ""
    style = f"{_TEXT}; margin:4px 0; line-height:1.4"
    return (f"<div class='jupyter-analyst-explanation' style='{style}'>"
            f"{html.escape(explanation)}</div>")


def message_html(title: str, text: str) -> str:
    """An escaped title and body, e.g. a generation error and its fix."""
    return f"<b>{html.escape(title)}</b><pre style='white-space:pre-wrap'>{html.escape(text)}</pre>"


def diff_lines(failed: str, proposed: str, failed_label: str = "failed code") -> list[str]:
    """The unified diff from the code that failed to the proposed fix, as plain lines."""
    return list(difflib.unified_diff(failed.splitlines(), proposed.splitlines(),
                                     fromfile=failed_label, tofile="proposed fix", lineterm=""))


def repair_diff(failed: str, proposed: str, failed_label: str = "failed code") -> str:
    """A unified diff from the code that failed to the proposed fix, one escaped line per row.

    The ``-``/``+`` prefixes and the file labels carry the meaning; the tint only repeats it.
    """
    lines = diff_lines(failed, proposed, failed_label)
    # The first two lines are the ---/+++ labels; the rest are hunks.
    looks = ["font-weight:600"] * 2 + [_DIFF_LINE.get(line[:1], "") for line in lines[2:]]
    rows = "".join(f"<div style='{_TEXT}; {look}'>{html.escape(line)}</div>"
                   for look, line in zip(looks, lines))
    rows = rows or f"<div style='{_MUTED}'>(no changes)</div>"
    return (f"<div class='jupyter-analyst-diff' style='margin:4px 0'>"
            f"<b style='{_TEXT}'>Changes from the code that failed (- removed, + added):</b>"
            f"<div style='overflow-x:auto; white-space:pre; line-height:1.4; padding:4px 0; "
            f"background: var(--jp-cell-editor-background, transparent); "
            f"font-family: var(--jp-code-font-family, monospace); "
            f"font-size: var(--jp-code-font-size, 13px)'>"
            f"<div style='display:inline-block; min-width:100%'>{rows}</div></div></div>")


def findings_lines(report: SafetyReport) -> list[int]:
    return sorted({f.line for f in report.findings if f.line})
