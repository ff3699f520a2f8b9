"""``SafetyValidator``: a fail-closed, allow-list check of code before it may run.

The validator is an early, explainable rejection; the sandbox container is the security
boundary. It never rewrites code: the string it approves is the string that runs, and
anything it cannot analyse completely (a syntax error, IPython syntax, nesting too deep,
running out of time or memory) is ``critical``.
"""

from __future__ import annotations

import ast
import hashlib
import time
import warnings
from collections.abc import Iterable

from IPython.core.inputtransformer2 import TransformerManager

from . import introspect
from .checker import BudgetExceeded, Checker, TooDeep
from .policy import Policy
from .report import Finding, RiskLevel, SafetyReport
from .strings import invisible_findings

CRITICAL = RiskLevel.CRITICAL


class SafetyValidator:
    """Check analysis code against the allow-lists in ``jupyter_analyst.safety.policy``.

    ``validate(code)`` never raises: every problem becomes a finding in the returned
    ``SafetyReport``, with a rule id, a line and column (1-based) and a message that says
    what is wrong and what to do instead.

    Options for advanced users:

    - ``extra_modules``: more importable modules, e.g. ``["yaml"]``; each name allows that
      module only (list submodules separately) with all its public, non-module attributes.
    - ``extra_read_paths`` / ``extra_write_paths``: more folders (absolute, or relative to
      the sandbox root) that I/O calls may read / write. Write folders are readable too.
    - ``extra_attributes`` / ``extra_keywords``: attribute and call-keyword names to allow
      besides ``api_allowlist.toml`` (its excluded families stay refused).
    - ``time_budget``: seconds for the whole validation (IPython's transformers, parsing and
      every rule) before the code is refused as too costly to check (time spent importing
      the allowed libraries for inspection is not counted).
    - ``max_chars``: longer code is refused without parsing it.
    """

    def __init__(self, extra_modules: Iterable[str] = (), extra_read_paths: Iterable[str] = (),
                 extra_write_paths: Iterable[str] = (), extra_attributes: Iterable[str] = (),
                 extra_keywords: Iterable[str] = (), time_budget: float = 2.0,
                 max_chars: int = 100_000):
        self.policy = Policy.with_extras(extra_modules, extra_read_paths, extra_write_paths,
                                         extra_attributes, extra_keywords)
        self.time_budget = time_budget
        self.max_chars = max_chars

    def validate(self, code: str) -> SafetyReport:
        report = SafetyReport(code_sha256=hashlib.sha256(
            str(code).encode("utf-8", "surrogatepass")).hexdigest())
        seen: set[tuple[str, int, int]] = set()

        def add(finding: Finding) -> None:
            key = (finding.rule, finding.line, finding.col)
            if key not in seen:
                seen.add(key)
                report.add(finding)

        try:
            self._check(code, add)
        except BudgetExceeded:
            add(Finding("time-budget", f"Checking this code took longer than "
                                       f"{self.time_budget:g} s, so it was not fully checked; "
                                       f"write shorter, simpler code.", severity=CRITICAL))
        except (TooDeep, RecursionError):
            add(Finding("too-deep", "The code nests too deeply to be checked; split long "
                                    "expressions into several statements.", severity=CRITICAL))
        except MemoryError:
            add(Finding("too-large", "The code is too large to be checked.", severity=CRITICAL))
        except Exception as exc:  # a bug in a rule must refuse the code, not approve it
            add(Finding("internal-error", f"The validator could not check this code "
                                          f"({type(exc).__name__}: {exc}); it was refused.",
                        severity=CRITICAL))
        return report

    def _check(self, code: str, add) -> None:
        started, imports_at_start = time.perf_counter(), introspect.import_seconds
        if not isinstance(code, str):
            add(Finding("syntax", "The code must be a string.", severity=CRITICAL))
            return
        if len(code) > self.max_chars:
            add(Finding("too-large", f"The code is {len(code)} characters long (limit "
                                     f"{self.max_chars}); write a shorter analysis.",
                        severity=CRITICAL))
            return
        magic = _ipython_syntax_line(code)
        if magic:
            add(Finding("magic", "IPython magics, shell commands ('!cmd', '%magic', '%%magic') "
                                 "and help syntax ('x?') are not allowed; write plain Python.",
                        magic, 1, CRITICAL))
            return
        for finding in invisible_findings(code):  # Trojan Source: before the parser's verdict
            add(finding)
        try:
            with warnings.catch_warnings():  # e.g. "invalid escape sequence": not our output
                warnings.simplefilter("ignore")
                tree = ast.parse(code)
        except SyntaxError as exc:
            add(Finding("syntax", f"The code is not valid Python: {exc.msg}. Fix the syntax.",
                        exc.lineno or 0, exc.offset or 0, CRITICAL))
            return
        except ValueError as exc:  # e.g. null bytes
            add(Finding("syntax", f"The code is not valid Python: {exc}.", severity=CRITICAL))
            return
        if time.perf_counter() - started > self.time_budget:
            raise BudgetExceeded  # IPython's transformers or the parser took the budget
        Checker(self.policy, add, self.time_budget, started, imports_at_start).run(tree)


def _ipython_syntax_line(code: str) -> int:
    """The first line IPython would rewrite before running the cell (0 if none).

    The sandbox kernel passes each cell through IPython's input transformers, which turn
    ``!ls`` or ``%%bash`` into calls. Refusing every cell they would change means the
    text checked here is exactly the text Python runs.
    """
    try:
        transformed = TransformerManager().transform_cell(code)
    except Exception:  # IPython cannot tokenize it: the Python parser reports why
        return 0
    # IPython only drops surrounding blank lines and adds a final newline: not a rewrite
    if transformed.strip() == code.strip() or _blank_lines_only(code, transformed):
        return 0
    original = code.splitlines()
    for number, (before, after) in enumerate(zip(original, transformed.splitlines()), 1):
        if before.strip() != after.strip():
            return number
    return max(len(original), 1)


def _blank_lines_only(code: str, transformed: str) -> bool:
    return [line for line in code.splitlines() if line.strip()] == [
        line for line in transformed.splitlines() if line.strip()]
