"""Checks for strings that libraries run as code: pandas expressions, patsy formulas, format
templates, option stores, plotting backends and style names, and the invisible characters
that make code look different from what runs.

Where a library parses a string itself, the check parses it with that library's own
tokenizer (pandas' expression preparser, patsy's formula parser, CPython's format-field
parser), so the check sees the tokens the library will evaluate, and it refuses whatever two
versions of the library might read differently.
"""

from __future__ import annotations

import _string  # CPython's format-field parser, the one str.format itself uses
import ast
import inspect
import io
import re
import string
import tokenize
import unicodedata
from collections.abc import Callable, Iterator
from fnmatch import fnmatchcase
from typing import NamedTuple

import matplotlib
from pandas._config import config as pandas_config
from pandas.core.computation.expr import PandasExprVisitor
from pandas.core.computation.ops import LOCAL_TAG, MATHOPS

try:  # patsy comes with statsmodels ('analysis' extra); without it formulas are refused
    from patsy import PatsyError
    from patsy.parse_formula import parse_formula
except ImportError:
    PatsyError = parse_formula = None

from .paths import fold_string
from .policy import (
    ALLOWED_BACKENDS,
    ALLOWED_BUILTINS,
    BUILTIN_NAMES,
    CRITICAL_NAMES,
    FORMULA_FUNCTIONS,
    IPYTHON_NAMES,
)
from .report import Finding, RiskLevel

DUNDER = re.compile(r"__\w+__")


def _name_problem(name: str, variable: bool = True) -> str | None:
    """Why a name inside an evaluated string is refused. A column name (``variable`` False)
    only has to be public: ``open > close`` compares columns, and without calls a builtin
    that happens to share the name is a value, never run. A variable (pandas' ``@name``,
    looked up in the caller's namespace) must not be the shell's or a refused builtin."""
    if name.startswith("_") or variable and (
            name in CRITICAL_NAMES or name in IPYTHON_NAMES
            or name in BUILTIN_NAMES and name not in ALLOWED_BUILTINS):
        return f"'{name}' is not a name an evaluated string may use"
    return None


# -- pandas query / eval ---------------------------------------------------------------
# The preparser DataFrame.query/eval and pd.eval apply with the default parser='pandas':
# backtick names become identifiers, '@name' becomes LOCAL_TAG + name, '&'/'|' become
# 'and'/'or'. Taken from pandas itself, so the check reads what the installed pandas reads.
_PANDAS_PREPARSE = inspect.signature(PandasExprVisitor).parameters["preparser"].default

# Comparisons and arithmetic over column names and literals, and pandas' own math
# functions (sin, log, abs, ...). Attribute access, subscripts and other calls are where
# pandas' evaluator reaches Python objects, so they are left out.
_EXPRESSION_NODES = (
    ast.Module, ast.Expr, ast.Assign, ast.Name, ast.Constant, ast.List, ast.Tuple,
    ast.BoolOp, ast.BinOp, ast.UnaryOp, ast.Compare, ast.Call, ast.expr_context,
    ast.boolop, ast.operator, ast.unaryop, ast.cmpop,
)


def _quoting_problem(line: str) -> str | None:
    """Refuse what pandas versions split differently into quoted strings and `names`.

    pandas 3 splits on quotes and backticks character by character (its ``\\`` check looks
    one character back only); older pandas let Python's tokenizer find the strings first.
    Without backslashes, triple quotes, doubled backticks and quotes or backticks nested in
    each other, the two readings agree, and agree with the simple scan below.
    """
    for sequence, what in (("\\", "a backslash"), ("'''", "triple quotes"),
                           ('"""', "triple quotes"), ("``", "a doubled backtick")):
        if sequence in line:
            return (f"{what} in a pandas expression is read differently by pandas' backtick "
                    f"splitter and Python's tokenizer; write the expression without it")
    inside = None  # the quote or backtick that opened the current span
    for char in line:
        if inside is None:
            inside = char if char in "'\"`" else None
        elif char == inside:
            inside = None
        elif "`" in (char, inside) and char in "'\"`":
            return ("a quote inside a `backticked name`, or a backtick inside a quoted "
                    "string, is read differently by pandas versions; rename the column")
    if inside is not None:
        return f"the expression has an unclosed {inside}"
    return None


def pandas_expression_problem(expr: str, assignments: bool, top_level: bool = False
                              ) -> str | None:
    """Why a ``DataFrame.query``/``eval`` or ``pd.eval`` string is refused, or None.

    ``@name`` (a plain variable, as in ``"Category == @values"``) is allowed: without
    attribute access, calls or subscripts it only brings in a value, exactly as writing
    ``df[df.Category == values]`` would. A frame's methods resolve bare names to its columns
    only; ``pd.eval`` (``top_level``) resolves them in the caller's namespace, so there they
    are variables too.
    """
    for line in (part.strip() for part in expr.splitlines()):  # pandas' own line split
        if not line:
            continue
        problem = _quoting_problem(line)
        if problem:
            return problem
        try:
            tree = ast.parse(_PANDAS_PREPARSE(line), mode="exec")
        except (SyntaxError, ValueError, tokenize.TokenError, RecursionError, MemoryError):
            return "the expression is not a plain comparison or arithmetic over columns"
        problem = _expression_tree_problem(tree, assignments, top_level)
        if problem:
            return problem
    return None


def _expression_tree_problem(tree: ast.AST, assignments: bool, top_level: bool
                             ) -> str | None:
    for node in ast.walk(tree):
        if not isinstance(node, _EXPRESSION_NODES) or (
                isinstance(node, ast.Assign) and not assignments):
            return (f"pandas expressions may only compare or combine columns and literals "
                    f"(found {type(node).__name__.lower()}); use ordinary pandas code for "
                    f"anything else")
        if isinstance(node, ast.Call) and not (
                isinstance(node.func, ast.Name) and node.func.id in MATHOPS
                and not node.keywords):
            return (f"pandas expressions may call only pandas' math functions "
                    f"({', '.join(MATHOPS)}), with positional arguments")
        if isinstance(node, ast.Name):  # `backticked names` arrive as BACKTICK_QUOTED_...
            if node.id.startswith(LOCAL_TAG):
                local = node.id[len(LOCAL_TAG):]
                if not local:
                    return "'@' must be followed by a variable name"
                problem = _name_problem(local)
                if problem:
                    return f"'@{local}': {problem}"
            elif _name_problem(node.id, variable=top_level):
                return _name_problem(node.id, variable=top_level)
    return None


# -- patsy / statsmodels formulas --------------------------------------------------------
# patsy evaluates every term of a formula as Python, with the caller's namespace and the
# builtins. A term may be a column, a literal or one of these calls; each function takes
# only the keyword arguments listed, with literal values.
_FORMULA_KEYWORDS: dict[str, frozenset[str]] = {
    "C": frozenset({"levels"}), "Treatment": frozenset({"reference"}),
    "Sum": frozenset({"omit"}), "Poly": frozenset({"scores"}),
    "center": frozenset(), "scale": frozenset({"ddof"}),
    "standardize": frozenset({"center", "rescale", "ddof"}),
    "bs": frozenset({"df", "knots", "degree", "include_intercept", "lower_bound",
                     "upper_bound"}),
    "cr": frozenset({"df", "knots", "lower_bound", "upper_bound", "constraints"}),
    "cc": frozenset({"df", "knots", "lower_bound", "upper_bound", "constraints"}),
}
# np.<function> in a formula: elementwise math only, never I/O (np.load, np.save, ...)
FORMULA_NUMPY = frozenset({
    "log", "log1p", "log2", "log10", "exp", "expm1", "sqrt", "cbrt", "square", "abs",
    "absolute", "sign", "sin", "cos", "tan", "arcsin", "arccos", "arctan", "sinh", "cosh",
    "tanh", "floor", "ceil", "power", "clip", "reciprocal"})
_FORMULA_NODES = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Compare, ast.Name,
                  ast.Constant, ast.Call, ast.keyword, ast.Attribute, ast.Tuple, ast.List,
                  ast.expr_context, ast.operator, ast.unaryop, ast.cmpop)


def is_formula_call(name: str, qualname: str) -> bool:
    """Calls whose first argument is a formula: statsmodels' formula API under any of its
    names (``smf.ols``, ``sm.formula.ols``, ``Model.from_formula``) and patsy's builders."""
    return name in ("from_formula", "dmatrix", "dmatrices") or (
        qualname.startswith("statsmodels.") and ".formula." in qualname)


def formula_problem(formula: str) -> str | None:
    """Why a statsmodels/patsy formula ("y ~ x + C(g) + np.log(z)") is refused, or None."""
    if parse_formula is None:
        return ("patsy is not installed where the validator runs, so the formula cannot be "
                "checked; install it (pip install patsy; it comes with statsmodels)")
    try:
        tree = parse_formula(formula)
    except PatsyError as exc:
        return f"patsy cannot parse it ({exc.message})"
    except (RecursionError, MemoryError, ValueError):
        return "the formula is not a plain patsy formula"
    pending = [tree]
    while pending:
        node = pending.pop()
        pending.extend(node.args)
        if node.type == "PYTHON_EXPR":
            problem = _formula_term_problem(node.token.extra)
            if problem:
                return problem
    return None


def _formula_term_problem(text: str) -> str | None:
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return f"the term '{text}' is not a plain Python expression"
    functions = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    for node in ast.walk(tree):
        if not isinstance(node, _FORMULA_NODES):
            return (f"formulas may only combine columns, literals and patsy's functions "
                    f"(found {type(node).__name__.lower()} in '{text}')")
        if isinstance(node, ast.Name) and id(node) not in functions and \
                _name_problem(node.id, variable=False):
            return _name_problem(node.id, variable=False)
        if isinstance(node, ast.Attribute) and id(node) not in functions:
            return f"formulas may not read attributes ('{ast.unparse(node)}'); compute the " \
                   f"column first"
        if isinstance(node, ast.Call):
            problem = _formula_call_problem(node)
            if problem:
                return problem
    return None


def _formula_call_problem(call: ast.Call) -> str | None:
    func = call.func
    shown = ast.unparse(func)
    if isinstance(func, ast.Attribute):
        allowed = isinstance(func.value, ast.Name) and func.value.id in ("np", "numpy") and \
            func.attr in FORMULA_NUMPY
        keywords: frozenset[str] = frozenset()
    else:
        allowed = isinstance(func, ast.Name) and func.id in FORMULA_FUNCTIONS
        keywords = _FORMULA_KEYWORDS.get(shown, frozenset())
    if not allowed:
        return (f"'{shown}' is not one of the functions a formula may call "
                f"({', '.join(sorted(FORMULA_FUNCTIONS))}, np.<{'|'.join(sorted(FORMULA_NUMPY))}>)")
    for keyword in call.keywords:
        if keyword.arg not in keywords:
            return f"'{shown}' may not take the argument '{keyword.arg or '**'}' in a formula"
        if not _literal(keyword.value):
            return f"the argument '{keyword.arg}' of '{shown}' must be a literal"
    if shown == "Q":  # Q("name") looks the name up in the data, then in the namespace
        name = call.args[0].value if len(call.args) == 1 and isinstance(
            call.args[0], ast.Constant) else None
        if not isinstance(name, str) or _name_problem(name, variable=False):
            return "Q() takes one literal column name (not starting with '_')"
    return None


def _literal(node: ast.AST) -> bool:
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
        return False
    return True


# -- string annotations -------------------------------------------------------------------
# typing.get_type_hints (and functools.singledispatch, which uses it) evaluates annotations
# that are strings, and the strings inside generic aliases (``list["..."]``), with eval.
_GENERICS = frozenset({"list", "dict", "tuple", "set", "frozenset", "type"})
_TYPE_NODES = (ast.Expression, ast.Name, ast.Attribute, ast.Subscript, ast.Tuple, ast.List,
               ast.Constant, ast.BinOp, ast.BitOr, ast.Load)


def type_expression_problem(text: str) -> str | None:
    """Why a string that typing may evaluate is refused: it must be a type such as
    ``"pd.DataFrame"`` or ``"dict[str, list[int]] | None"``."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return f"the annotation '{text}' is not a type"
    for node in ast.walk(tree):
        problem = None
        if not isinstance(node, _TYPE_NODES) or (
                isinstance(node, ast.BinOp) and not isinstance(node.op, ast.BitOr)):
            problem = f"found {type(node).__name__.lower()}"
        elif isinstance(node, ast.Name):
            problem = _name_problem(node.id)
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            problem = f"'{node.attr}' is private"
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            problem = type_expression_problem(node.value)
        if problem:
            return (f"typing evaluates the annotation '{text}' as code ({problem}); "
                    f"annotate with a type, e.g. 'pd.DataFrame'")
    return None


def annotation_problems(tree: ast.AST, qualname: Callable[[ast.AST], str]
                        ) -> Iterator[Problem]:
    """Strings typing would evaluate: in annotations, in subscripted generics (``list[...]``,
    ``typing.*``, ``collections.abc.*``), and given to ``ForwardRef``/``TypeVar``."""
    places: list[ast.AST] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.arg) and node.annotation:
            places.append(node.annotation)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns:
            places.append(node.returns)
        elif isinstance(node, ast.AnnAssign):
            places.append(node.annotation)
        elif isinstance(node, ast.Subscript) and (
                isinstance(node.value, ast.Name) and node.value.id in _GENERICS
                or qualname(node.value).startswith(("typing.", "collections.abc."))):
            places.append(node)
        elif isinstance(node, ast.Call) and (
                qualname(node.func).rpartition(".")[2] in ("ForwardRef", "TypeVar")):
            places.extend(node.args[1:] if "TypeVar" in qualname(node.func) else node.args)
            places.extend(k.value for k in node.keywords if k.arg == "bound")
    for place in places:
        for node in _type_strings(place, qualname):
            problem = type_expression_problem(node.value)
            if problem:
                yield Problem(node, problem)


def _type_strings(node: ast.AST, qualname: Callable[[ast.AST], str]) -> Iterator[ast.Constant]:
    """The string literals in a type expression that typing evaluates: not the values of
    ``Literal[...]`` nor the metadata of ``Annotated[type, ...]``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield node
    elif isinstance(node, ast.Subscript):
        generic = qualname(node.value).rpartition(".")[2]
        if generic == "Literal":
            return
        inner = node.slice
        if generic == "Annotated" and isinstance(inner, ast.Tuple) and inner.elts:
            inner = inner.elts[0]
        yield from _type_strings(inner, qualname)
    else:
        for child in ast.iter_child_nodes(node):
            yield from _type_strings(child, qualname)


# -- format templates --------------------------------------------------------------------
def template_problem(template: str, depth: int = 0) -> str | None:
    """Why a str.format template is refused, or None.

    ``{0.attr}`` reads attributes by a name the AST never sees, so it is refused, also in a
    nested format spec (``{0:{1.attr}}``). ``{0[1]}`` / ``{0[key]}`` only index with a
    literal key, as ``x[1]`` in code would; keys starting with '_' are refused.
    """
    try:
        fields = [(f, spec) for _, f, spec, _ in string.Formatter().parse(template)
                  if f is not None]
    except (ValueError, RecursionError):
        return None  # not a valid template: str.format would raise before reaching anything
    for field_name, spec in fields:
        try:
            _, rest = _string.formatter_field_name_split(field_name)
            parts = list(rest)
        except ValueError:
            return None  # str.format raises on the same field
        for is_attribute, key in parts:
            if is_attribute or (isinstance(key, str) and key.startswith("_")):
                return (f"the format field '{{{field_name}}}' reads "
                        f"{'an attribute' if is_attribute else 'a private key'} inside a "
                        f"template; format plain values, e.g. with an f-string")
        if spec and depth < 2:
            problem = template_problem(spec, depth + 1)
            if problem:
                return problem
    return None


# -- string dispatch, backends, styles ---------------------------------------------------
# str methods and builtins whose result is a string
_STRING_MAKERS = frozenset({
    "str", "repr", "ascii", "chr", "format", "join", "format_map", "upper", "lower", "title",
    "capitalize", "casefold", "swapcase", "strip", "lstrip", "rstrip", "replace", "zfill",
    "center", "ljust", "rjust", "removeprefix", "removesuffix", "expandtabs", "translate",
    "decode"})


def string_valued(node: ast.AST, assigned: dict[str, list[ast.AST | None]],
                  seen: frozenset[str] = frozenset()) -> bool:
    """True if ``node`` visibly evaluates to a string: a literal, an f-string, a str method
    or builtin, an operation on one of these, or a variable ever set to one. (Not a proof
    that anything else is no string: where data and names cannot be told apart, this is
    what can be checked.)"""
    if isinstance(node, (ast.Constant, ast.JoinedStr)):
        return isinstance(node, ast.JoinedStr) or isinstance(node.value, (str, bytes))
    if isinstance(node, ast.BinOp):
        return string_valued(node.left, assigned, seen) or \
            string_valued(node.right, assigned, seen)
    if isinstance(node, ast.IfExp):
        return string_valued(node.body, assigned, seen) or \
            string_valued(node.orelse, assigned, seen)
    if isinstance(node, ast.Subscript):
        return string_valued(node.value, assigned, seen)
    if isinstance(node, ast.Call):
        func = node.func
        return (func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")) \
            in _STRING_MAKERS
    if isinstance(node, ast.Name) and node.id not in seen:
        return any(value is not None and string_valued(value, assigned, seen | {node.id})
                   for value in assigned.get(node.id, ()))
    return False


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


# -- option stores -------------------------------------------------------------------------
# pandas options analysis code may set; everything else (io.* engines, styler templates,
# the plotting backend other than matplotlib) is refused.
PANDAS_OPTIONS = ("display.*", "styler.render.*", "styler.format.decimal",
                  "styler.format.precision", "styler.format.thousands",
                  "styler.format.na_rep", "styler.format.escape", "styler.sparse.*",
                  "compute.*", "mode.chained_assignment", "mode.copy_on_write",
                  "mode.use_inf_as_na", "future.*", "plotting.backend",
                  "plotting.matplotlib.register_converters")
PANDAS_PLOTTING_BACKEND = "matplotlib"
# matplotlib rcParams analysis code may set. Left out: figure.hooks (imports and calls
# functions by name), text.usetex / text.latex.* / pgf.* / ps.* (run TeX, Ghostscript),
# animation.* (ffmpeg), savefig.directory, backend, keymap.*, webagg.*, ...
MATPLOTLIB_SETTINGS = (
    "axes.*", "axes3d.*", "xaxis.*", "yaxis.*", "xtick.*", "ytick.*", "grid.*", "legend.*",
    "lines.*", "markers.*", "patch.*", "hatch.*", "boxplot.*", "errorbar.*", "hist.*",
    "scatter.*", "image.*", "contour.*", "polaraxes.*", "date.*", "mathtext.*", "font.*",
    "figure.[a-gi-z]*", "text.color", "text.antialiased", "text.hinting*", "text.parse_math",
    "text.kerning_factor", "savefig.dpi", "savefig.facecolor", "savefig.edgecolor",
    "savefig.bbox", "savefig.pad_inches", "savefig.transparent", "savefig.orientation",
    "savefig.format", "pdf.fonttype", "svg.fonttype", "agg.path.chunksize", "path.*",
    "pcolor.shading", "pcolormesh.snap", "timezone")
SAVEFIG_FORMATS = frozenset({"png", "svg", "pdf", "jpg", "jpeg", "webp", "tif", "tiff"})
_OPTION_PATTERN = re.compile(r"[A-Za-z0-9_.]+")  # matched by pandas as a regex, in linear time


def pandas_option_problem(key: str, reset: bool = False) -> tuple[str | None, str | None]:
    """(the registered option a ``set_option`` key selects, why it is refused or None).

    pandas treats the key as a regular expression (``re.search``, ignoring case). The check
    never compiles an arbitrary pattern: a key must be a plain dotted name, then pandas' own
    lookup says which option it selects.
    """
    if reset and key == "all":
        return None, None
    if not _OPTION_PATTERN.fullmatch(key):
        return None, (f"the option name '{key}' is used by pandas as a regular expression; "
                      f"write the full option name, e.g. 'display.max_columns'")
    selected = pandas_config._select_options(key)
    if len(selected) != 1:
        return None, (f"the option name '{key}' matches {len(selected) or 'no'} pandas "
                      f"options; write the full option name, e.g. 'display.max_columns'")
    full = selected[0]
    if not any(fnmatchcase(full, pattern) for pattern in PANDAS_OPTIONS):
        return full, (f"the pandas option '{full}' is not one analysis code may set; "
                      f"display.*, compute.* and mode.* options are fine")
    return full, None


def pandas_option_path_problem(path: str, store: bool) -> str | None:
    """``pd.options.<path>``: only registered options (or their groups, on the way to one)
    may be named; ``pd.options.d`` and friends are the raw store behind the checks."""
    registered = pandas_config._registered_options
    if store:
        if path not in registered:
            return f"'pd.options.{path}' is not a pandas option"
        return pandas_option_problem(path)[1]
    if path in registered:
        return None
    return (f"'pd.options{'.' if path else ''}{path}' is not a pandas option; read or set "
            f"options as pd.options.<full name> or with pd.set_option")


def matplotlib_setting_problem(key: str, value: ast.AST | None) -> str | None:
    if key not in matplotlib.rcParams:
        return f"'{key}' is not a matplotlib setting"
    if not any(fnmatchcase(key, pattern) for pattern in MATPLOTLIB_SETTINGS):
        return (f"the matplotlib setting '{key}' is not one analysis code may change (it "
                f"runs or loads programs, files or backends)")
    if value is not None and not static_value(value):
        return f"the value for '{key}' must be written as a literal"
    if key == "savefig.format" and (
            not isinstance(value, ast.Constant) or value.value not in SAVEFIG_FORMATS):
        return f"savefig.format may be one of {', '.join(sorted(SAVEFIG_FORMATS))}"
    return None


def static_value(node: ast.AST) -> bool:
    """A value written out in the code: a literal, a lambda (checked as code itself), a
    literal template's ``.format``, or a ``cycler(...)`` of literals (rcParams' colours)."""
    if _literal(node) or isinstance(node, ast.Lambda):
        return True
    if isinstance(node, ast.Attribute) and node.attr == "format":
        return isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
    if isinstance(node, ast.Call):
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        return name == "cycler" and all(_literal(a) for a in node.args) and all(
            k.arg and _literal(k.value) for k in node.keywords)
    return False


_RC_STORES = ("rcParams", "rcParamsDefault", "rcParamsOrig")
_RC_METHODS = frozenset({"get", "copy", "keys", "items", "values", "find_all", "update"})


class Problem(NamedTuple):  # what the checker reports, at the node it is about
    node: ast.AST
    message: str


def option_store_problems(tree: ast.AST, qualname: Callable[[ast.AST], str]
                          ) -> Iterator[Problem]:
    """Uses of pandas' option store (``pd.options...``) and matplotlib's ``rcParams`` that
    are refused: a setting not on the lists above, a computed key or value, or the store
    used as a value (``o = plt.rcParams``), which would let a later line set anything.
    ``qualname`` gives 'pandas.options.display' for ``pd.options.display``, else ''."""
    stores = []  # (node, qualified name) of every use of an option store
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield from _rc_call_problems(node, qualname)
        elif isinstance(node, (ast.Name, ast.Attribute)):
            name = qualname(node)
            if name.startswith(("pandas.options", "matplotlib")):
                stores.append((node, name))
    if not stores:
        return
    parents = {id(child): node for node in ast.walk(tree)
               for child in ast.iter_child_nodes(node)}
    for node, name in stores:
        parent = parents.get(id(node))
        if name.startswith("matplotlib") and (
                name.rpartition(".")[2] in _RC_STORES or name.endswith(".style.library")):
            yield from _rc_store_problems(node, parent, parents)
        elif isinstance(parent, ast.Attribute) and qualname(parent):
            continue  # the outermost attribute of an option path is judged
        elif name == "pandas.options" or name.startswith("pandas.options."):
            path = name[len("pandas.options."):]
            problem = pandas_option_path_problem(path, not isinstance(node.ctx, ast.Load))
            if problem is None and not isinstance(node.ctx, ast.Load):
                value = _assigned_value(node, parents)
                problem = None if value is not None and static_value(value) else \
                    f"the value for 'pd.options.{path}' must be written as a literal"
                if problem is None and path == "plotting.backend":
                    problem = pandas_backend_problem(value)
            if problem:
                yield Problem(node, problem)


def pandas_backend_problem(value: ast.AST | None) -> str | None:
    if isinstance(value, ast.Constant) and value.value == PANDAS_PLOTTING_BACKEND:
        return None
    return (f"pandas' plotting backend may only be '{PANDAS_PLOTTING_BACKEND}': another "
            f"backend is a module pandas imports by name")


def _assigned_value(target: ast.AST, parents: dict[int, ast.AST]) -> ast.AST | None:
    parent = parents.get(id(target))
    if isinstance(parent, (ast.Assign, ast.AnnAssign)):
        return parent.value
    return None  # unpacking, augmented assignment, del, for targets: computed


def _rc_store_problems(store: ast.AST, parent: ast.AST | None,
                       parents: dict[int, ast.AST]) -> Iterator[Problem]:
    """``rcParams`` (and its defaults), and ``style.library``, the styles ``style.use``
    applies by name: read them, or set literal settings in rcParams."""
    shown = ast.unparse(store)
    library = shown.endswith("library")
    if isinstance(parent, ast.Subscript) and parent.value is store:
        if isinstance(parent.ctx, ast.Load):
            return  # reading a setting
        if library:
            yield Problem(parent, f"adding to {shown} makes a style of settings nobody "
                                  f"checks; set them with plt.rcParams[\"key\"] instead")
            return
        key = parent.slice.value if isinstance(parent.slice, ast.Constant) else None
        if not isinstance(key, str):
            yield Problem(parent, f"the key of {shown}[...] must be a literal string")
            return
        problem = matplotlib_setting_problem(key, _assigned_value(parent, parents) or parent)
        if problem:
            yield Problem(parent, problem)
    elif not (isinstance(parent, ast.Attribute) and parent.attr in _RC_METHODS
              and not (library and parent.attr == "update")):
        yield Problem(store, f"'{shown}' may only be read or set as {shown}[\"key\"] "
                             f"or changed with {shown}.update({{...}})")


def _rc_call_problems(call: ast.Call, qualname: Callable[[ast.AST], str]
                      ) -> Iterator[Problem]:
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else qualname(func).rpartition(".")[2]
    owner = qualname(func)
    dicts = [k.value for k in call.keywords if k.arg == "rc"]  # seaborn, rc_context(rc=)
    if name == "update" and isinstance(func, ast.Attribute) and \
            qualname(func.value).rpartition(".")[2] in _RC_STORES:
        dicts += call.args[:1]
        dicts += [ast.Dict([ast.Constant(k.arg)], [k.value]) for k in call.keywords]
    elif name in ("use", "context") and owner.startswith("matplotlib") and call.args:
        first = call.args[0]  # style names (checked as styles) and dicts of settings
        styles = first.elts if isinstance(first, (ast.List, ast.Tuple)) else [first]
        dicts += [style for style in styles if fold_string(style) is None]
    elif name == "rc_context" and owner.startswith("matplotlib"):
        dicts += call.args[:1]
    elif name == "rc" and owner.startswith("matplotlib"):
        yield from _rc_group_problems(call)
    elif name in ("rc_file", "rc_params_from_file") and owner.startswith("matplotlib"):
        yield Problem(call, "settings read from a file cannot be checked; set them in "
                            "the code with plt.rcParams[\"key\"] = value")
    for settings in dicts:
        if not isinstance(settings, ast.Dict) or None in settings.keys:
            yield Problem(settings, "matplotlib settings must be given as a literal dict "
                                    "{\"key\": value, ...} (plt.rcdefaults() restores the "
                                    "defaults)")
            continue
        for key, value in zip(settings.keys, settings.values):
            text = key.value if isinstance(key, ast.Constant) else None
            problem = (matplotlib_setting_problem(text, value) if isinstance(text, str)
                       else "the names of matplotlib settings must be literal strings")
            if problem:
                yield Problem(key, problem)


def _rc_group_problems(call: ast.Call) -> Iterator[Problem]:
    """``mpl.rc("lines", linewidth=2)`` sets 'lines.linewidth' (also its short aliases)."""
    group = call.args[0] if call.args else None
    groups = group.elts if isinstance(group, (ast.Tuple, ast.List)) else [group]
    names = [g.value if isinstance(g, ast.Constant) else None for g in groups]
    if not all(isinstance(n, str) for n in names) or any(k.arg is None for k in call.keywords):
        yield Problem(call, "the group and the settings given to rc() must be written out as "
                            "literals, e.g. rc(\"lines\", linewidth=2)")
        return
    for group_name in names:
        for keyword in call.keywords:
            key = f"{group_name}.{keyword.arg}"
            problem = None if any(fnmatchcase(key, p) for p in MATPLOTLIB_SETTINGS) else \
                f"the matplotlib setting '{key}' is not one analysis code may change"
            if problem is None and not static_value(keyword.value):
                problem = f"the value for '{key}' must be written as a literal"
            if problem:
                yield Problem(keyword.value, problem)


# -- invisible characters (approval deception) -----------------------------------------------
class InvisibleCharacter(NamedTuple):
    line: int  # 1-based
    col: int  # 1-based, in characters
    codepoint: str  # "U+202E"
    name: str  # "RIGHT-TO-LEFT OVERRIDE"
    in_string: bool  # inside a string literal (shown to the reviewer, not refused)


# Invisible letters and marks Python accepts in identifiers (Hangul fillers, variation
# selectors, the combining grapheme joiner); format characters (category Cf: bidirectional
# controls, zero-width spaces and joiners, the BOM, tags) are found by category.
_INVISIBLE_LETTERS = frozenset({0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x3164, 0xFFA0,
                                *range(0xFE00, 0xFE10), *range(0xE0100, 0xE01F0)})
_BIDI_OPEN = {"\u202a": "\u202c", "\u202b": "\u202c", "\u202d": "\u202c",
              "\u202e": "\u202c", "\u2066": "\u2069", "\u2067": "\u2069", "\u2068": "\u2069"}
_STRING_TOKENS = {tokenize.STRING} | {getattr(tokenize, name) for name in (
    "FSTRING_MIDDLE",) if hasattr(tokenize, name)}


_SUSPECT = re.compile(r"[^\x20-\x7e\t\n]")  # characters worth a closer look


def _invisible(char: str) -> bool:
    category = unicodedata.category(char)
    return category in ("Cf", "Co", "Cs", "Zl", "Zp") or ord(char) in _INVISIBLE_LETTERS or (
        category == "Cc" and char not in "\t\n\r\f") or (category == "Zs" and char != " ")


def invisible_characters(code: str) -> list[InvisibleCharacter]:
    """Every invisible or control character in ``code`` with its position, and whether it is
    inside a string literal. For the approval panel, which shows them, and the validator,
    which refuses those outside string literals."""
    if not _SUSPECT.search(code):
        return []  # printable ASCII, tabs and line ends: the common case, found fast
    found = []
    strings = [(start, end) for start, end, _ in _string_tokens(code)]
    for number, text in enumerate(code.split("\n"), 1):  # lines as tokenize counts them
        for match in _SUSPECT.finditer(text):
            char, col = match.group(), match.start()
            if _invisible(char):
                found.append(InvisibleCharacter(
                    number, col + 1, f"U+{ord(char):04X}",
                    unicodedata.name(char, "unnamed control character"),
                    any(start <= (number, col) < end for start, end in strings)))
    return found


def _string_tokens(code: str) -> list[tuple[tuple[int, int], tuple[int, int], str]]:
    """(start, end, text) of every string literal, as tokenize counts them (line 1-based,
    col 0-based); empty when the code does not tokenize, so everything counts as outside."""
    try:
        return [(token.start, token.end, token.string) for token in
                tokenize.generate_tokens(io.StringIO(code).readline)
                if token.type in _STRING_TOKENS]
    except (tokenize.TokenError, SyntaxError, ValueError, RecursionError, MemoryError):
        return []


def unbalanced_bidi(text: str) -> bool:
    """True if an embedding, override or isolate opened in ``text`` is not closed in it:
    its effect then spills over the code after the string (the 'Trojan Source' reorder)."""
    expected: list[str] = []
    for char in text:
        if char in _BIDI_OPEN:
            expected.append(_BIDI_OPEN[char])
        elif char in ("\u202c", "\u2069"):
            if not expected or expected.pop() != char:
                return True
    return bool(expected)


def confusable_names(code: str) -> list[tuple[int, int, str, str]]:
    """(line, col, as written, as Python reads it) for every identifier whose spelling is
    not its NFKC normal form: Python runs ``ｅval`` (full-width e) as ``eval``."""
    if code.isascii():
        return []
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(code).readline))
    except (tokenize.TokenError, SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    return [(t.start[0], t.start[1] + 1, t.string, unicodedata.normalize("NFKC", t.string))
            for t in tokens if t.type == tokenize.NAME and not t.string.isascii()
            and unicodedata.normalize("NFKC", t.string) != t.string]


def invisible_findings(code: str) -> list[Finding]:
    """The validator's findings on invisible characters and names that read differently."""
    findings = []
    characters = invisible_characters(code)
    for char in characters:
        if char.in_string:
            findings.append(Finding(
                "invisible-character", f"{char.codepoint} {char.name} is an invisible "
                f"character inside a string literal; check that the text is what you expect.",
                char.line, char.col, RiskLevel.MEDIUM))
        else:
            findings.append(Finding(
                "invisible-character", f"{char.codepoint} {char.name} is an invisible "
                f"character outside string literals: it can make the code look different "
                f"from what runs; remove it.", char.line, char.col, RiskLevel.CRITICAL))
    for (line, col), _, text in _string_tokens(code) if characters else ():
        if unbalanced_bidi(text):
            findings.append(Finding(
                "bidi-reorder", "A string literal opens a bidirectional override or isolate "
                "that it does not close, so the code after it is displayed reordered; remove "
                "the control characters.", line, col + 1, RiskLevel.CRITICAL))
    for line, col, written, read in confusable_names(code):
        findings.append(Finding(
            "confusable-name", f"The name '{written}' is spelled with compatibility "
            f"characters and runs as '{read}'; write it in plain letters.", line, col,
            RiskLevel.CRITICAL))
    return findings
