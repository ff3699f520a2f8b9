"""Constant strings in code, and whether a path stays inside the sandbox folders."""

from __future__ import annotations

import ast
import posixpath

from .policy import SANDBOX_ROOT

MAX_FOLDED_LENGTH = 10_000  # longer "paths" or templates are not worth folding


def fold_string(node: ast.AST | None) -> str | None:
    """The value of a string expression built only from literals, else None.

    Handles "a", "a" + "b", and f-strings whose parts are literals, which is how
    generated code spells paths (``"outputs/" + "plot.png"``).
    """
    if isinstance(node, ast.Constant):
        return node.value if isinstance(node.value, str) else None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = fold_string(node.left), fold_string(node.right)
        if left is None or right is None or len(left) + len(right) > MAX_FOLDED_LENGTH:
            return None
        return left + right
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            if isinstance(value, ast.FormattedValue):
                if value.conversion != -1 or value.format_spec is not None:
                    return None
                value = value.value
            part = fold_string(value)
            if part is None:
                return None
            parts.append(part)
        return "".join(parts)
    return None


def path_problem(path: str, allowed_dirs: tuple[str, ...]) -> str | None:
    """Why ``path`` may not be used (a sentence), or None if it is inside ``allowed_dirs``."""
    if "://" in path or path.lower().startswith("file:"):
        return f"'{path}' is a URL; the sandbox has no network and reads only local files"
    if path.startswith("~") or "\0" in path:
        return f"'{path}' is not a plain path"
    full = posixpath.normpath(posixpath.join(SANDBOX_ROOT, path))
    if any(full == d or full.startswith(d + "/") for d in allowed_dirs):
        return None
    return f"'{path}' resolves to '{full}', outside {_relative(allowed_dirs)}"


def _relative(dirs: tuple[str, ...]) -> str:
    names = [d[len(SANDBOX_ROOT) + 1:] + "/" if d.startswith(SANDBOX_ROOT + "/") else d
             for d in dirs]
    return " or ".join(names)
