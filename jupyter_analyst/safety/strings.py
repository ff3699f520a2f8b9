"""Checks for strings that libraries run as code: pandas expressions, format templates,
plotting backends, style names."""

from __future__ import annotations

import ast
import re
import string

from .policy import ALLOWED_BACKENDS, ALLOWED_BUILTINS, BUILTIN_NAMES, FORMULA_FUNCTIONS

DUNDER = re.compile(r"__\w+__")
_BACKTICKED = re.compile(r"`[^`]*`")
_LOCAL = re.compile(r"@(?=[A-Za-z_])")  # "@name": pandas' reference to a Python variable
_ITEMS = re.compile(r"\[[^\]]*\]")

# The node types a pandas query/eval expression may contain: comparisons and arithmetic
# over column names and literals. Attribute access and calls are where pandas' own
# evaluator reaches Python objects, so they are left out.
_EXPRESSION_NODES = (
    ast.Module, ast.Expr, ast.Assign, ast.Name, ast.Constant, ast.List, ast.Tuple,
    ast.BoolOp, ast.BinOp, ast.UnaryOp, ast.Compare, ast.expr_context, ast.boolop,
    ast.operator, ast.unaryop, ast.cmpop,
)


def pandas_expression_problem(expr: str, assignments: bool) -> str | None:
    """Why a ``DataFrame.query``/``eval`` or ``pd.eval`` string is refused, or None.

    ``@name`` (a plain variable, as in ``"Category == @values"``) is allowed: without
    attribute access, calls or subscripts it only brings in a value, exactly as writing
    ``df[df.Category == values]`` would. Everything after '@' goes through the same checks.
    """
    # `column name` is pandas' quoting for names with spaces: any identifier will do here
    text = _LOCAL.sub("", _BACKTICKED.sub("column", expr))
    if "@" in text:
        return "'@' must be followed by a variable name"
    local_names = set(re.findall(r"@([A-Za-z_]\w*)", expr))
    try:
        tree = ast.parse(text.strip(), mode="exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return "the expression is not a plain comparison or arithmetic over columns"
    for node in ast.walk(tree):
        if not isinstance(node, _EXPRESSION_NODES) or (
                isinstance(node, ast.Assign) and not assignments):
            return (f"pandas expressions may only compare or combine columns and literals "
                    f"(found {type(node).__name__.lower()}); use ordinary pandas code for "
                    f"anything else")
        if isinstance(node, ast.Name) and (node.id.startswith("_") or (
                node.id in local_names and node.id in BUILTIN_NAMES
                and node.id not in ALLOWED_BUILTINS)):
            return f"'{node.id}' is not a name pandas expressions may use"
    return None


_FORMULA_NODES = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Name, ast.Constant, ast.Call,
                  ast.keyword, ast.Attribute, ast.Tuple, ast.List, ast.expr_context,
                  ast.operator, ast.unaryop)


def formula_problem(formula: str) -> str | None:
    """Why a statsmodels/patsy formula ("y ~ x + C(g) + np.log(z)") is refused, or None."""
    for side in formula.split("~", 1):
        if not side.strip():
            continue
        try:  # ':' is patsy's interaction; as '*' the side parses as Python
            tree = ast.parse(_BACKTICKED.sub("column", side).replace(":", "*").strip(),
                             mode="eval")
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return "the formula is not a plain patsy formula"
        for node in ast.walk(tree):
            if not isinstance(node, _FORMULA_NODES):
                return (f"formulas may only combine columns with patsy functions "
                        f"(found {type(node).__name__.lower()})")
            if isinstance(node, ast.Name) and node.id.startswith("_"):
                return f"'{node.id}' is not a name a formula may use"
            if isinstance(node, ast.Call) and not _formula_function(node.func):
                return (f"'{ast.unparse(node.func)}' is not one of the functions a formula may "
                        f"call ({', '.join(sorted(FORMULA_FUNCTIONS))}, np.<function>)")
            if isinstance(node, ast.Attribute) and not _formula_function(node):
                return "formulas may not read attributes; compute the column first"
    return None


def _formula_function(func: ast.AST) -> bool:
    if isinstance(func, ast.Name):
        return func.id in FORMULA_FUNCTIONS
    return (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
            and func.value.id in ("np", "numpy") and not func.attr.startswith("_"))


def template_problem(template: str) -> str | None:
    """Why a str.format template is refused, or None.

    ``{0.attr}`` reads attributes by a name the AST never sees, so it is refused.
    ``{0[1]}`` / ``{0[key]}`` only index with a literal key, as ``x[1]`` in code would.
    """
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f]
    except (ValueError, RecursionError):
        return None  # not a valid template: str.format would raise before reaching anything
    for field_name in fields:
        if "." in _ITEMS.sub("", field_name):
            return (f"the format field '{{{field_name}}}' reads an attribute inside a template; "
                    f"format plain values, e.g. with an f-string")
    return None


def backend_problem(value: str | None) -> str | None:
    if value is not None and value.lower() in ALLOWED_BACKENDS:
        return None
    shown = "a computed value" if value is None else f"'{value}'"
    return (f"setting the plotting backend to {shown} makes the library import a module by "
            f"name; keep the default backend (figures are captured automatically)")


def style_problem(value: str | None) -> str | None:
    if value is not None and re.fullmatch(r"[A-Za-z0-9_-]+", value):
        return None
    shown = "a computed value" if value is None else f"'{value}'"
    return (f"a matplotlib style given as {shown} can load a file, a URL or a package; use a "
            f"built-in style name such as 'ggplot' or 'seaborn-v0_8'")
