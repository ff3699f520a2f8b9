"""Errors a user can act on.

Every error raised towards the notebook is an ``AnalystError``: it carries the
problem and the fix as two sentences, so the magic can print them without a
traceback and the Python API can still be caught by type.
"""

from __future__ import annotations


class AnalystError(Exception):
    """A problem the user can fix; ``str()`` gives the problem, then the fix."""

    def __init__(self, problem: str, fix: str | None = None):
        self.problem = problem
        self.fix = fix
        super().__init__(problem if not fix else f"{problem}\n{fix}")


class InputError(AnalystError):
    """The question, the data or an option is not usable as given."""


class GenerationError(AnalystError):
    """The code generator could not produce code (network, auth, quota, parse...)."""


class NotUnderstoodError(GenerationError):
    """The offline generator does not recognise what the question asks for."""


class SandboxError(AnalystError):
    """The sandbox could not be started or used (engine down, image missing, kernel died)."""


class ExecutionTimeout(SandboxError):
    """The analysis ran longer than its time limit and was stopped."""
