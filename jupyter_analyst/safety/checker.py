"""The AST walk behind ``SafetyValidator``: every node, every rule, one finding per problem.

The walk visits every child of every node (decorators, default arguments, annotations,
f-string parts, match patterns, comprehensions, lambdas, nested functions and classes), so
a rule written once applies wherever Python lets an expression appear.
"""

from __future__ import annotations

import ast
import re
import time
from collections.abc import Callable
from itertools import zip_longest

from . import introspect
from .paths import fold_string, path_problem
from .policy import (ALLOWED_BUILTINS, BUILTIN_NAMES, CRITICAL_NAMES, FRAME_ATTRIBUTES,
                     HARMLESS_DUNDERS, IPYTHON_NAMES, SAFE_FUNCTION_NAMES, Policy)
from .report import Finding, RiskLevel
from .strings import (DUNDER, annotation_problems, backend_problem, formula_problem,
                      is_formula_call, option_store_problems, pandas_backend_problem,
                      pandas_expression_problem, pandas_option_problem, static_value,
                      string_valued, style_problem, template_problem)

CRITICAL, HIGH, MEDIUM = RiskLevel.CRITICAL, RiskLevel.HIGH, RiskLevel.MEDIUM
MAX_DEPTH = 200  # deeper nesting is refused instead of risking the interpreter's stack

_IPYTHON_HISTORY = re.compile(r"_i{1,3}\d*|_\d+")

# Calls that read or write files (besides pandas' read_*): the path is the first argument
# or one of PATH_KEYWORDS (plotly.io.write_*(fig, file) takes it second).
READERS = frozenset({"imread", "ExcelFile", "rc_file", "rc_params_from_file", "fromfile",
                     "fromregex", "loadtxt", "genfromtxt", "load"})
WRITERS = frozenset({
    "to_csv", "to_excel", "to_json", "to_parquet", "to_feather", "to_html", "to_latex",
    "to_markdown", "to_string", "to_xml", "to_stata", "to_orc", "savefig", "imsave", "tofile",
    "ExcelWriter", "save", "savez", "savez_compressed", "savetxt", "write_html",
    "write_image", "write_json"})
PATH_KEYWORDS = ("filepath_or_buffer", "path_or_buf", "path_or_buffer", "path", "fname",
                 "filename", "filepath", "file", "io", "buf", "excel_writer")
# Readers that unpickle (HDF5 object columns are pickled too) and calls that need things
# the sandbox does not have (databases, the clipboard, the network).
PICKLE_CALLS = frozenset({"read_hdf", "to_hdf", "HDFStore", "load_pickle", "save_pickle"})
UNAVAILABLE_CALLS = frozenset({"read_clipboard", "to_clipboard", "read_sql", "read_sql_query",
                               "read_sql_table", "read_gbq", "to_sql", "to_gbq",
                               "load_dataset", "DataSource"})
# Names that must be called directly, so the checks on their arguments cannot be skipped
# by passing them around (``f = pd.read_csv``, ``map(open, files)``).
STRING_RUNNERS = frozenset({"query", "eval", "format", "format_map", "format_index", "use",
                            "switch_backend", "set_option", "option_context", "reset_option"})
OPTION_KEYS = frozenset({"backend", "plotting.backend", "stylesheet", "allow_pickle"})
# pandas methods that look a string up as a method name (``df.agg("query", ...)``)
# (``pipe`` calls what it is given and looks nothing up, so a string there only raises)
DISPATCHERS = frozenset({"apply", "agg", "aggregate", "transform"})
AGGFUNC_CALLS = frozenset({"pivot_table", "crosstab", "NamedAgg"})  # aggfunc=, by name
GROUPINGS = frozenset({"groupby", "resample", "rolling", "expanding", "ewm"})
# Attributes of pandas and numpy objects that hold strings or lists of them (column and index
# names, dtype names): given to a dispatcher, pandas looks each one up as a method.
NAME_ATTRIBUTES = frozenset({"name", "names", "columns", "index", "keys", "values", "str",
                             "kind", "char", "unit", "freqstr", "inferred_freq",
                             "inferred_type", "resolution", "resolution_string", "byteorder",
                             "dtypes", "dtype", "attrs", "categories", "array", "T"})
# Jinja2 behind pandas' Styler: a template is code, and it is not sandboxed
TEMPLATE_ENGINE = frozenset({"env", "loader", "from_string", "from_custom_template",
                             "get_template", "template_html",
                             "template_html_style", "template_html_table", "template_latex",
                             "template_string"})
# matplotlib settings that make it run LaTeX, Ghostscript or ffmpeg with text from the code
EXTERNAL_PROGRAM_SETTING = re.compile(
    r"(^|\.)(usetex|texsystem|preamble|usedistiller)$|^animation\.\w+_(path|args)$")
_BUFFERS = frozenset({"io.StringIO", "io.BytesIO"})
# Names notebooks use for modules without importing them in the same cell (an earlier cell
# did). Unless the code imports something else under the name, it is checked as that module
# even where the code also assigns it (``if False: np = 0`` must not turn the check off),
# so ``np.f2py.os`` is caught without an import.
CONVENTIONAL_ALIASES = {"np": "numpy", "pd": "pandas", "plt": "matplotlib.pyplot",
                        "mpl": "matplotlib", "sns": "seaborn", "sm": "statsmodels.api",
                        "smf": "statsmodels.formula.api", "scipy": "scipy", "sklearn": "sklearn",
                        "px": "plotly.express", "pio": "plotly.io", "matplotlib": "matplotlib",
                        "numpy": "numpy", "pandas": "pandas"}


class BudgetExceeded(Exception):
    """Validation took longer than its time budget."""


class TooDeep(Exception):
    """The code nests deeper than the validator follows."""


def _loc(node: ast.AST) -> tuple[int, int]:
    return getattr(node, "lineno", 0), getattr(node, "col_offset", -1) + 1


def _function_locals(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> set[str]:
    """Names a function binds itself. In a function, a bound name never falls back to a
    builtin (it raises UnboundLocalError instead), so a local ``input`` is not ``input()``.
    Nested functions, classes and comprehensions have their own scopes and are skipped,
    which can only make the set smaller (stricter)."""
    args = node.args
    names = {a.arg for a in args.posonlyargs + args.args + args.kwonlyargs}
    names |= {a.arg for a in (args.vararg, args.kwarg) if a is not None}
    declared: set[str] = set()
    pending = list(node.body) if isinstance(node.body, list) else [node.body]
    while pending:
        child = pending.pop()
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(child.name)
            continue
        if isinstance(child, (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp,
                              ast.GeneratorExp)):
            continue
        if isinstance(child, (ast.Global, ast.Nonlocal)):
            declared.update(child.names)
        elif isinstance(child, ast.Name) and not isinstance(child.ctx, ast.Load):
            names.add(child.id)
        elif isinstance(child, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in child.names)
        elif isinstance(child, ast.ExceptHandler) and child.name:
            names.add(child.name)
        elif isinstance(child, (ast.MatchAs, ast.MatchStar)) and child.name:
            names.add(child.name)
        elif isinstance(child, ast.MatchMapping) and child.rest:
            names.add(child.rest)
        pending.extend(ast.iter_child_nodes(child))
    return names - declared


def _grouped(func: ast.AST) -> bool:
    """True for ``df.groupby(...)[...].transform``-like receivers: a pandas grouping or
    window call somewhere in the chain."""
    node = func.value if isinstance(func, ast.Attribute) else None
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                node.func.attr in GROUPINGS:
            return True
        node = node.func if isinstance(node, ast.Call) else node.value
    return False


def _comprehension_targets(node: ast.AST) -> set[str]:
    return {n.id for gen in node.generators for n in ast.walk(gen.target)
            if isinstance(n, ast.Name)}


class Checker:
    """Walks one parsed cell and adds findings through ``report``."""

    def __init__(self, policy: Policy, report: Callable[[Finding], None], budget: float):
        self.policy = policy
        self.report = report
        self.started = time.perf_counter()
        self.imports_at_start = introspect.import_seconds
        self.budget = budget
        self.depth = 0
        self.visited = 0
        self.imports: dict[str, str] = {}  # local name -> qualified name it was imported as
        self.assigned: dict[str, list[ast.AST | None]] = {}  # name -> values (None: unknown)
        self.scopes: list[set[str]] = []  # enclosing function scopes' own names
        self.chain_inner: set[int] = set()  # nodes that are the object of an attribute access
        self.called: set[int] = set()  # nodes that are called directly
        self.checked_keys: set[int] = set()  # option-name strings whose value was checked

    # -- driving the walk -------------------------------------------------------------
    def run(self, tree: ast.Module) -> None:
        self._index(tree)
        for rule, problems in (("option-store", option_store_problems),
                               ("string-annotation", annotation_problems)):
            for problem in problems(tree, self._qualname):
                self.add(problem.node, rule, problem.message[0].upper() + problem.message[1:]
                         + ".")
        self.visit(tree)

    def visit(self, node: ast.AST) -> None:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise TooDeep
            self.visited += 1
            if self.visited % 64 == 0:
                spent = time.perf_counter() - self.started
                spent -= introspect.import_seconds - self.imports_at_start
                if spent > self.budget:
                    raise BudgetExceeded
            method = getattr(self, "visit_" + type(node).__name__, self.generic_visit)
            method(node)
        finally:
            self.depth -= 1

    def generic_visit(self, node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            self.visit(child)

    def add(self, node: ast.AST, rule: str, message: str, severity: RiskLevel = HIGH) -> None:
        line, col = _loc(node)
        self.report(Finding(rule, message, line, col, severity))

    def _index(self, tree: ast.Module) -> None:
        """Collect imports and what each name is assigned, before checking any use."""
        simple_targets: set[int] = set()  # ``name = value``, ``with value as name``
        for node in ast.walk(tree):  # breadth first: an Assign comes before its targets
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if self.policy.module_allowed(alias.name):
                        local = alias.asname or alias.name.split(".")[0]
                        self.imports[local] = alias.name if alias.asname else local
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:  # refused imports are reported, not followed
                    full = f"{node.module}.{alias.name}"
                    if self.policy.module_allowed(full) or (
                            self.policy.module_allowed(node.module)
                            and self.policy.name_allowed(node.module, alias.name)):
                        self.imports[alias.asname or alias.name] = full
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        simple_targets.add(id(target))
                        self.assigned.setdefault(target.id, []).append(node.value)
            elif isinstance(node, ast.withitem) and isinstance(node.optional_vars, ast.Name):
                simple_targets.add(id(node.optional_vars))
                self.assigned.setdefault(node.optional_vars.id, []).append(node.context_expr)
            elif isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load) and \
                    id(node) not in simple_targets:
                self.assigned.setdefault(node.id, []).append(None)
            elif isinstance(node, ast.arg):
                self.assigned.setdefault(node.arg, []).append(None)
        for alias, module in CONVENTIONAL_ALIASES.items():
            self.imports.setdefault(alias, module)

    # -- scopes -----------------------------------------------------------------------
    def _visit_scoped(self, outer: list[ast.AST], names: set[str], inner: list[ast.AST]):
        for node in outer:
            self.visit(node)
        self.scopes.append(names)
        try:
            for node in inner:
                self.visit(node)
        finally:
            self.scopes.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        # decorators, defaults and annotations run in the enclosing scope, the body inside
        body = {id(statement) for statement in node.body}
        outer = [child for child in ast.iter_child_nodes(node) if id(child) not in body]
        self._visit_scoped(outer, _function_locals(node), node.body)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._visit_scoped([node.args], _function_locals(node), [node.body])

    def visit_ListComp(self, node: ast.AST) -> None:
        # the first iterable is evaluated in the enclosing scope, the rest inside
        first, *rest = node.generators
        inner = [first.target, *first.ifs, *rest]
        inner += [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
        self._visit_scoped([first.iter], _comprehension_targets(node), inner)

    visit_SetComp = visit_GeneratorExp = visit_DictComp = visit_ListComp

    def _local(self, name: str) -> bool:
        return any(name in scope for scope in self.scopes)

    # -- imports ----------------------------------------------------------------------
    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if not self.policy.module_allowed(alias.name):
                self.add(node, "import", self._import_message(alias.name))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            self.add(node, "import", "Relative imports are not allowed; import the analysis "
                                     "libraries by their full names.")
            return
        module = node.module or ""
        for alias in node.names:
            full = f"{module}.{alias.name}"
            if alias.name == "*":
                self.add(node, "import", f"'from {module} import *' hides which names the code "
                                         f"uses; import the names you need.")
            elif self.policy.module_allowed(full):
                continue
            elif self.policy.module_allowed(module):
                if not self.policy.name_allowed(module, alias.name):
                    self.add(node, "import", self._name_message(module, alias.name))
                elif self._check_member(node, module, alias.name, full):
                    # a package that only leads to allowed submodules (numpy.lib)
                    self.add(node, "import", self._import_message(full))
            else:
                self.add(node, "import", self._import_message(full if self.policy
                         .is_package_prefix(module) else module))

    def _import_message(self, name: str) -> str:
        return (f"Importing '{name}' is not allowed. Use the analysis libraries (pandas, numpy, "
                f"scipy, statsmodels, sklearn, matplotlib.pyplot, seaborn, plotly) and pure "
                f"standard modules such as math, statistics, datetime, re and collections.")

    def _name_message(self, module: str, name: str) -> str:
        return (f"'{module}.{name}' is not allowed; from {module} only "
                f"{self.policy.allowed_names(module)} may be used.")

    # -- names ------------------------------------------------------------------------
    def visit_Name(self, node: ast.Name) -> None:
        name = node.id
        if not isinstance(node.ctx, ast.Load):
            return
        if name.startswith("__") and name not in HARMLESS_DUNDERS:
            self.add(node, "dunder", f"'{name}' reaches Python internals; work with the data "
                                     f"and the analysis libraries only.", CRITICAL)
        elif name in self.imports:  # also inside functions: ``import numpy as np; x = np``
            self._check_chain(node)
        elif self._local(name):
            return
        elif name in CRITICAL_NAMES:
            self.add(node, "builtin", f"'{name}' can run or reach arbitrary code and is not "
                                      f"allowed; write the computation out directly.", CRITICAL)
        elif name in IPYTHON_NAMES or _IPYTHON_HISTORY.fullmatch(name):
            self.add(node, "builtin", f"'{name}' belongs to the IPython shell (history, outputs, "
                                      f"exit); use your own variables instead.")
        elif name == "open" and id(node) in self.called:
            return  # checked with its arguments in visit_Call
        elif name in BUILTIN_NAMES and name not in ALLOWED_BUILTINS:
            fix = ("read files with pandas from 'data/...' and write with save_table or to "
                   "'outputs/...'" if name == "open" else "the analysis needs no interaction "
                   "with the interpreter")
            self.add(node, "builtin", f"The builtin '{name}' is not allowed here ({fix}).")

    # -- attributes -------------------------------------------------------------------
    def visit_Attribute(self, node: ast.Attribute) -> None:
        self._check_attribute_name(node, node.attr, node.ctx)
        if isinstance(node.value, (ast.Attribute, ast.Name)):
            self.chain_inner.add(id(node.value))
        if id(node) not in self.chain_inner:
            self._check_chain(node)
        if node.attr in TEMPLATE_ENGINE:
            self.add(node, "template-engine", f"'.{node.attr}' gives access to a template "
                                              f"engine whose templates run code; format with "
                                              f"df.style.format(...) or plain pandas.")
        if node.attr in ("format", "format_map"):
            self._check_format(node)
        elif id(node) not in self.called and (node.attr in STRING_RUNNERS or self._io_kind(
                node.attr, self._qualname(node))):
            self.add(node, "indirect-call", f"'.{node.attr}' may only be called directly, so "
                                            f"its arguments can be checked.")
        self.visit(node.value)

    def _check_attribute_name(self, node: ast.AST, attr: str, ctx: ast.AST) -> None:
        if attr in HARMLESS_DUNDERS and isinstance(ctx, ast.Load):
            return
        if attr.startswith("__"):
            self.add(node, "dunder", f"The attribute '{attr}' reaches Python internals "
                                     f"(classes, globals, builtins); use the public API of the "
                                     f"object instead.", CRITICAL)
        elif attr in FRAME_ATTRIBUTES or attr.startswith("co_"):
            self.add(node, "introspection", f"The attribute '{attr}' reaches interpreter frames "
                                            f"or code objects and is not allowed.", CRITICAL)
        elif attr.startswith("_"):
            self.add(node, "private-attribute", f"'{attr}' is private to its library and may "
                                                f"change or bypass checks; use the public API "
                                                f"instead.")

    def _chain(self, node: ast.AST) -> tuple[str, list[str]] | None:
        """(root name, attributes) for ``a.b.c`` rooted at an imported name, else None."""
        attrs = []
        while isinstance(node, ast.Attribute):
            attrs.append(node.attr)
            node = node.value
        if isinstance(node, ast.Name) and node.id in self.imports:
            return node.id, attrs[::-1]
        return None

    def _passable(self, module: str) -> bool:
        return self.policy.module_allowed(module) or self.policy.is_package_prefix(module)

    def _kind(self, qualname: str) -> introspect.Kind:
        if self._passable(qualname):
            return introspect.Kind("module", qualname)
        parent, _, attr = qualname.rpartition(".")
        if not self._passable(parent):
            # never import, in the notebook's process, a module the policy does not name
            return introspect.Kind("uninspectable")
        return introspect.classify(parent, attr)

    def _check_member(self, node: ast.AST, module: str, attr: str, shown: str,
                      last: bool = True) -> str | None:
        """Check ``module.attr`` for an allowed or pass-through ``module``; returns the real
        module name if it is an allowed module, else None (an object, or refused).
        ``last`` is False when more attributes follow, as in ``np.distutils.x``."""
        full = f"{module}.{attr}"
        kind = self._kind(full)
        if kind.kind == "module":
            if self._passable(kind.module):
                return kind.module
            self.add(node, "module-attribute", f"'{shown}' is the module '{kind.module}', which "
                                               f"is not on the allow-list; use public functions "
                                               f"of the allowed libraries.")
        elif not self.policy.module_allowed(module):
            self.add(node, "module-attribute", f"'{shown}': only the listed submodules of "
                                               f"'{module}' may be used, not its other names.")
        elif not self.policy.name_allowed(module, attr):
            self.add(node, "module-attribute", self._name_message(module, attr))
        elif kind.kind == "missing" and last:
            self.add(node, "missing-attribute", f"'{shown}' does not exist in the installed "
                                                f"{module.split('.')[0]}; the code will probably "
                                                f"fail. Check the name.", MEDIUM)
        elif kind.kind == "missing":
            # used as a namespace: it could be a module in another version of the library
            self.add(node, "missing-attribute", f"'{shown}' does not exist in the installed "
                                                f"{module.split('.')[0]}, so what it leads to "
                                                f"cannot be checked; use documented API.")
        elif kind.kind == "uninspectable":
            self.add(node, "uninspectable", f"'{module}' cannot be imported where the validator "
                                            f"runs, so '{shown}' cannot be checked; install it "
                                            f"(pip install 'jupyter-analyst[analysis]').")
        return None

    def _check_chain(self, node: ast.Attribute | ast.Name) -> None:
        """Follow an attribute chain from an imported name while it stays on modules."""
        chain = self._chain(node)
        if chain is None:
            return
        root, attrs = chain
        module = self._kind(self.imports[root])
        current = module.module if module.kind == "module" else None
        shown = root
        for position, attr in enumerate(attrs):
            if current is None:
                return  # on an ordinary object now: the generic attribute rules apply
            shown += "." + attr
            if position == len(attrs) - 1 and not isinstance(node.ctx, ast.Load):
                self.add(node, "module-patch", f"Assigning or deleting '{shown}' changes the "
                                               f"library itself; keep your own variables.")
                return
            current = self._check_member(node, current, attr, shown,
                                         last=position == len(attrs) - 1)
        if current is not None and id(node) not in self.chain_inner:
            self.add(node, "module-alias", f"'{shown}' is a module used as a value; modules may "
                                           f"only be used as 'module.function(...)' so every "
                                           f"use can be checked.")

    def _qualname(self, node: ast.AST) -> str:
        """'numpy.load' for ``np.load``; '' when the expression is not rooted at an import."""
        chain = self._chain(node)
        return ".".join([self.imports[chain[0]], *chain[1]]) if chain else ""

    # -- calls ------------------------------------------------------------------------
    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        self.called.add(id(func))
        name = func.attr if isinstance(func, ast.Attribute) else (
            self._qualname(func).rpartition(".")[2] if isinstance(func, ast.Name) else "")
        if isinstance(func, ast.Name) and func.id == "open" and not self._local("open"):
            name = "open"
        qualname = self._qualname(func)
        for keyword in node.keywords:
            self._check_keyword(node, name, keyword)
        unpacked = any(isinstance(a, ast.Starred) for a in node.args) or any(
            k.arg is None for k in node.keywords)
        sensitive = name in STRING_RUNNERS or name in DISPATCHERS or name in AGGFUNC_CALLS or \
            name == "open" or self._io_kind(name, qualname)
        if unpacked and sensitive:
            self.add(node, "unpacked-arguments", f"Arguments to '{name}' must be written out "
                                                 f"(no * or ** unpacking) so they can be checked.")
        elif "pickle" in name.lower() or name in PICKLE_CALLS or (
                name == "load" and qualname.startswith("statsmodels")):
            self.add(node, "io-pickle", f"'{name}' reads or writes pickles, which run code when "
                                        f"loaded; use Parquet or CSV.")
        elif name in UNAVAILABLE_CALLS:
            self.add(node, "io-unavailable", f"'{name}' needs a database, the clipboard or the "
                                             f"network, which the sandbox does not have; use the "
                                             f"DataFrames already loaded.")
        elif name in ("query", "eval"):
            self._check_pandas_expression(node, func, name)
        elif name in DISPATCHERS and not self._not_pandas(func):
            self._check_function_names(node, name)
        elif name == "NamedAgg":  # pd.NamedAgg(column, aggfunc)
            self._check_dispatch_values(node.args[1:2])
        elif is_formula_call(name, qualname) and node.args:
            self._check_formula(node.args[0])  # formula= keywords are checked with the others
        elif name in ("format", "format_map", "format_index") and \
                self._templates_in_arguments(func):
            templates = node.args[:1] + [k.value for k in node.keywords if k.arg == "formatter"]
            always = isinstance(func.value, ast.Name)  # str.format(template, ...)
            for arg in templates:
                for value in arg.values if isinstance(arg, ast.Dict) else [arg]:
                    # functions are fine; strings (literal or in a variable) are templates
                    if always or string_valued(value, self.assigned):
                        self._check_template(value)
        elif name in ("use", "context") and self._is_style(func):
            for arg in node.args[:1]:
                self._check_style(arg)
        elif name in ("use", "switch_backend"):
            arg = node.args[0] if node.args else None
            if arg is not None:
                self._check_backend(arg, fold_string(arg))
        elif name in ("set_option", "option_context", "reset_option"):
            self._check_options(node, name)
        elif name == "open":
            self._check_open(node)
        elif self._io_kind(name, qualname):
            self._check_io(node, name, qualname)
        self.generic_visit(node)

    def _check_keyword(self, call: ast.Call, name: str, keyword: ast.keyword) -> None:
        value = keyword.value
        if keyword.arg == "backend":
            self._check_backend(value, fold_string(value))
        elif keyword.arg == "stylesheet":
            self.add(value, "xslt", "XSLT stylesheets can read files and run extensions; "
                                    "reshape the data with pandas after reading it.")
        elif keyword.arg == "allow_pickle" and not (
                isinstance(value, ast.Constant) and value.value is False):
            self.add(value, "io-pickle", "allow_pickle lets numpy unpickle, which runs code "
                                         "when loaded; save arrays without object dtype.")
        elif keyword.arg in ("engine", "parser") and name in ("query", "eval") and \
                fold_string(value) not in ("numexpr", "pandas"):
            self.add(value, "pandas-expression", f"{keyword.arg}='python' (or a computed value) "
                                                 f"lets pandas expressions run Python; leave the "
                                                 f"default.", CRITICAL)
        elif keyword.arg in ("local_dict", "global_dict", "resolvers", "level") and \
                name in ("query", "eval"):
            self.add(value, "pandas-expression", f"'{keyword.arg}' hands Python objects to a "
                                                 f"pandas expression; compute with ordinary "
                                                 f"pandas code instead.", CRITICAL)
        elif keyword.arg == "eval_env" and ast.unparse(value) != "-1":  # patsy's empty one
            self.add(value, "formula", "eval_env makes patsy look formula names up in another "
                                       "stack frame's namespace; leave the default.")
        elif keyword.arg == "aggfunc":  # pivot_table, crosstab, pd.NamedAgg
            self._check_dispatch_values([value])
        elif keyword.arg and keyword.arg.endswith("formula"):  # formula, re_formula, vc_formula
            for formula in value.values if isinstance(value, ast.Dict) else [value]:
                self._check_formula(formula)
        elif keyword.arg == "usetex" and not (
                isinstance(value, ast.Constant) and value.value is False):
            self.add(value, "external-program", "usetex makes matplotlib run LaTeX on the "
                                                "text; use matplotlib's built-in mathtext "
                                                "($...$) instead.")
        elif keyword.arg in PATH_KEYWORDS:
            path = fold_string(value)
            if path is not None and not self._io_kind(name, self._qualname(call.func)):
                self._check_path(value, path, self.policy.read_dirs)

    def _io_kind(self, name: str, qualname: str) -> str | None:
        """"read" or "write" for calls that touch files, else None."""
        if name == "load" and not qualname.startswith("numpy"):
            return None  # json.load(file) takes an open file, checked where it was opened
        if name.startswith("read_") or name in READERS:
            return "read"
        if name in WRITERS or name == "memmap":
            return "write"
        return None

    def _check_io(self, node: ast.Call, name: str, qualname: str) -> None:
        kind = self._io_kind(name, qualname)
        position = 1 if qualname.startswith("plotly.io.write") else 0
        if name == "memmap":
            mode = self._argument(node, 1, ("mode",))
            kind = "read" if mode is None or fold_string(mode) in ("r", "c") else "write"
        arg = self._argument(node, position, PATH_KEYWORDS)
        if arg is None:
            if kind == "read":
                self.add(node, "io-path", f"'{name}' needs a literal path under data/.")
            return  # writers without a path return the text instead of writing a file
        self._check_path_argument(arg, name, kind)

    def _check_path_argument(self, arg: ast.AST, name: str, kind: str) -> None:
        dirs = self.policy.read_dirs if kind == "read" else self.policy.write_dirs
        path = fold_string(arg)
        if path is not None:
            self._check_path(arg, path, dirs)
        elif not self._is_handle(arg):
            where = "data/..." if kind == "read" else "outputs/..."
            self.add(arg, "io-path", f"The path given to '{name}' is computed, so it cannot be "
                                     f"checked; write it as a literal string such as "
                                     f"'{where}'.")

    def _check_path(self, node: ast.AST, path: str, dirs: tuple[str, ...]) -> None:
        problem = path_problem(path, dirs)
        if problem:
            writes = dirs == self.policy.write_dirs
            fix = ("write files under outputs/ (or use save_table(frame, 'name'))" if writes
                   else "read only the files under data/; the DataFrames are already loaded "
                        "under their names")
            self.add(node, "io-path", f"{problem[0].upper()}{problem[1:]}: {fix}.")

    def _is_handle(self, node: ast.AST) -> bool:
        """An in-memory buffer (io.StringIO/BytesIO) or a file opened by a call that is
        checked itself (open, pd.ExcelWriter), directly or through a variable only ever
        set to one (``with open("data/x.csv") as f: pd.read_csv(f)``)."""
        if isinstance(node, ast.Call):
            func = node.func
            return self._qualname(func) in _BUFFERS or (
                isinstance(func, ast.Name) and func.id == "open" and not self._local("open")
            ) or (isinstance(func, ast.Attribute) and func.attr in ("ExcelWriter", "ExcelFile"))
        if isinstance(node, ast.Name):
            values = self.assigned.get(node.id, [None])
            return all(v is not None and self._is_handle(v) for v in values)
        return False

    def _argument(self, call: ast.Call, position: int, keywords: tuple[str, ...]):
        if len(call.args) > position:
            return call.args[position]
        return next((k.value for k in call.keywords if k.arg in keywords), None)

    def _check_open(self, node: ast.Call) -> None:
        mode_node = self._argument(node, 1, ("mode",))
        mode = "r" if mode_node is None else fold_string(mode_node)
        if mode is None:
            self.add(node, "io-path", "open() needs a literal mode such as 'r' or 'w'.")
            return
        kind = "write" if set(mode) & set("wax+") else "read"
        arg = self._argument(node, 0, ("file",))
        if arg is not None:
            self._check_path_argument(arg, "open", kind)

    # -- strings that libraries run ---------------------------------------------------
    def _check_pandas_expression(self, node: ast.Call, func: ast.AST, name: str) -> None:
        arg = self._argument(node, 0, ("expr",))
        if arg is None:
            return
        if name == "eval" and len(node.args) > 1 and not self._not_pandas(func):
            # pd.eval(expr, parser, engine, local_dict, global_dict, resolvers, level, ...)
            self.add(node.args[1], "pandas-expression", "pd.eval takes its options only as "
                                                        "keywords here, so they can be "
                                                        "checked.", CRITICAL)
        expr = fold_string(arg)
        candidates = [expr] if expr is not None else self._constant_values(arg)
        if candidates is None:
            if self._not_pandas(func):
                return  # e.g. scipy's KDTree.query(points)
            self.add(arg, "pandas-expression", f"The expression passed to '{name}' is computed, "
                                               f"so it cannot be checked; write it as a literal "
                                               f"string or use boolean indexing.")
            return
        for candidate in candidates:
            problem = pandas_expression_problem(candidate, assignments=name == "eval",
                                                top_level=self._qualname(func) == "pandas.eval")
            if problem:
                severity = CRITICAL if "@" in candidate else HIGH
                self.add(arg, "pandas-expression", f"In '{name}': {problem}.", severity)

    def _constant_values(self, node: ast.AST) -> list[str] | None:
        """The literal strings a variable is ever set to, or None if it may be anything."""
        if not isinstance(node, ast.Name):
            return None
        values = [fold_string(v) if v is not None else None
                  for v in self.assigned.get(node.id, [None])]
        return None if any(v is None for v in values) else values

    def _not_pandas(self, func: ast.AST) -> bool:
        """True if the receiver is known to come from another library (scipy, sklearn)."""
        receiver = func.value if isinstance(func, ast.Attribute) else None
        if not isinstance(receiver, ast.Name):
            return False
        values = self.assigned.get(receiver.id, [None])
        return all(isinstance(v, ast.Call) and self._qualname(v.func).split(".")[0] in
                   ("scipy", "sklearn", "statsmodels") for v in values)

    def _templates_in_arguments(self, node: ast.Attribute) -> bool:
        """``str.format(template, ...)`` and pandas' ``df.style.format("{:.1%}")`` take the
        template as an argument; those calls check their arguments in visit_Call."""
        receiver = node.value
        return (isinstance(receiver, ast.Name) and receiver.id == "str") or (
            isinstance(receiver, ast.Attribute) and receiver.attr == "style")

    def _check_function_names(self, node: ast.Call, name: str) -> None:
        """What apply/agg/transform are given must be a function or the literal name of a
        plain reduction or transform: pandas looks a string up as a method by name."""
        functions = self._argument(node, 0, ("func", "arg"))
        candidates = [functions] if functions is not None else []
        for keyword in node.keywords:  # named aggregation: total=("column", "sum")
            if keyword.arg and isinstance(keyword.value, ast.Tuple) and \
                    len(keyword.value.elts) == 2:
                candidates.append(keyword.value.elts[1])
        # scikit-learn's transform(X) takes data: unless the receiver is a pandas grouping or
        # window, only what is visibly a string can be told apart from data and is checked
        self._check_dispatch_values(candidates, strings_only=name == "transform"
                                    and not _grouped(node.func))

    def _check_dispatch_values(self, candidates: list[ast.AST], strings_only=False) -> None:
        while candidates:
            candidate = candidates.pop()
            if isinstance(candidate, ast.Dict):
                candidates.extend(candidate.values)
            elif isinstance(candidate, (ast.List, ast.Tuple)):
                candidates.extend(candidate.elts)
            elif not strings_only or string_valued(candidate, self.assigned):
                problem = self._dispatch_problem(candidate, set())
                if problem:
                    self.add(candidate, "string-dispatch", problem)

    def _unbound_function(self, node: ast.Attribute) -> bool:
        """``module.function`` with a module from an earlier cell (``integrate.trapz``): one
        attribute of a name this code never binds, and not an attribute that holds column or
        index names (``df.columns``, ``s.name``), which pandas would look up as methods."""
        return isinstance(node.value, ast.Name) and node.value.id not in self.assigned and \
            node.attr not in NAME_ATTRIBUTES

    def _dispatch_problem(self, node: ast.AST, seen: set[str]) -> str | None:
        """Why a function given to a dispatcher may be a string the check cannot see."""
        text = fold_string(node)
        if text is not None:
            return None if text in SAFE_FUNCTION_NAMES else (
                f"pandas looks '{text}' up as a method by name; pass the function itself or "
                f"a plain reduction such as 'sum' or 'mean'.")
        if isinstance(node, ast.Lambda) or (isinstance(node, ast.Attribute) and (
                self._qualname(node) or self._unbound_function(node))
                and node.attr not in HARMLESS_DUNDERS):
            return None  # np.mean, pd.Series.mode, integrate.trapz: a function, not a name
        if isinstance(node, ast.Call) and self._qualname(node.func).endswith(
                ("functools.partial", "pandas.NamedAgg")):
            return None  # the arguments are visited (and NamedAgg's aggfunc checked) as usual
        if isinstance(node, ast.Name) and node.id not in seen:
            # a name this code never sets is a function it defines, a builtin, or a name from
            # an earlier cell; one it sets must only ever be set to functions or safe names
            values = self.assigned.get(node.id, [])
            problems = [self._dispatch_problem(v, seen | {node.id}) if v is not None else ""
                        for v in values]
            if not any(p is not None for p in problems):
                return None
            if all(p is not None and p != "" for p in problems):
                return problems[0]
        return ("The function given here is computed, and pandas would look a string up as a "
                "method by name; pass the function itself, a lambda, or a literal name such as "
                "'sum'.")

    def _check_formula(self, node: ast.AST) -> None:
        formula = fold_string(node)
        problem = ("the formula is computed, so it cannot be checked; write it as a literal "
                   "string" if formula is None else formula_problem(formula))
        if problem:
            self.add(node, "formula", f"Formulas are evaluated as Python by patsy: "
                                      f"{problem}.")

    def _check_format(self, node: ast.Attribute) -> None:
        if self._templates_in_arguments(node):
            if id(node) not in self.called:
                self.add(node, "indirect-call", f"'.{node.attr}' may only be called directly, "
                                                f"so its template can be checked.")
            return
        self._check_template(node.value)

    def _check_template(self, node: ast.AST) -> None:
        template = fold_string(node)
        templates = [template] if template is not None else self._constant_values(node)
        if templates is None:
            self.add(node, "format-template", "The format template is computed, so it cannot "
                                              "be checked; use an f-string or a literal "
                                              "template.")
        for text in templates or ():
            problem = template_problem(text)
            if problem:
                self.add(node, "format-template", problem[0].upper() + problem[1:] + ".")

    def _is_style(self, func: ast.AST) -> bool:
        receiver = func.value if isinstance(func, ast.Attribute) else None
        return (isinstance(receiver, ast.Attribute) and receiver.attr == "style") or (
            isinstance(receiver, ast.Name) and self.imports.get(receiver.id, "").endswith(
                "style"))

    def _check_style(self, arg: ast.AST) -> None:
        values = arg.elts if isinstance(arg, (ast.List, ast.Tuple)) else [arg]
        for value in values:
            if isinstance(value, ast.Dict):
                continue  # a dict of rcParams; its keys are checked like any dict
            problem = style_problem(fold_string(value))
            if problem:
                self.add(value, "plot-style", problem[0].upper() + problem[1:] + ".")

    def _check_backend(self, node: ast.AST, value: str | None) -> None:
        problem = backend_problem(value)
        if problem:
            self.add(node, "plot-backend", problem[0].upper() + problem[1:] + ".", CRITICAL)

    def _check_options(self, node: ast.Call, name: str) -> None:
        """pd.set_option/option_context("key", value, ...) (or one dict), reset_option(key)."""
        args = node.args
        if name == "reset_option":
            pairs = [(arg, None) for arg in args]
        elif len(args) == 1 and isinstance(args[0], ast.Dict):
            pairs = list(zip(args[0].keys, args[0].values))
        else:
            pairs = list(zip_longest(args[::2], args[1::2]))
        for key_node, value_node in pairs:
            key = fold_string(key_node)
            if key is None:
                self.add(key_node or node, "pandas-option", "Option names must be literal "
                                                            "strings.")
                continue
            self.checked_keys.add(id(key_node))
            full, problem = pandas_option_problem(key, reset=name == "reset_option")
            if problem is None and name != "reset_option":
                if value_node is None or not static_value(value_node):
                    problem = f"the value for '{full}' must be written as a literal"
                elif full == "plotting.backend" and pandas_backend_problem(value_node):
                    self.add(value_node, "plot-backend",
                             pandas_backend_problem(value_node) + ".", CRITICAL)
            if problem:
                self.add(key_node, "pandas-option", problem[0].upper() + problem[1:] + ".")

    def _option_key(self, node: ast.AST) -> bool:
        key = fold_string(node)
        return key is not None and (key in OPTION_KEYS or key.endswith(".backend"))

    def visit_Dict(self, node: ast.Dict) -> None:
        for key, value in zip(node.keys, node.values):
            if key is not None and self._option_key(key):
                self._check_option_value(key, value)
        self.generic_visit(node)

    def _check_option_value(self, key: ast.AST, value: ast.AST) -> None:
        self.checked_keys.add(id(key))
        name = fold_string(key)
        if name == "stylesheet":
            self.add(key, "xslt", "XSLT stylesheets are not allowed.")
        elif name == "allow_pickle":
            self.add(key, "io-pickle", "allow_pickle is not allowed.")
        else:
            self._check_backend(value, fold_string(value))

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            self._check_target(target, node.value)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self._check_target(node.target, None)
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self._check_target(node.target, node.value)
        self.generic_visit(node)

    def _check_target(self, target: ast.AST, value: ast.AST | None) -> None:
        """``pd.options.plotting.backend = ...`` and ``rcParams["backend"] = ...``."""
        if isinstance(target, ast.Attribute) and target.attr == "backend":
            self._check_backend(target, fold_string(value) if value is not None else None)
        elif isinstance(target, ast.Subscript) and self._option_key(target.slice):
            self.checked_keys.add(id(target.slice))
            self._check_backend(target, fold_string(value) if value is not None else None)

    def visit_Constant(self, node: ast.Constant) -> None:
        value = node.value
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        if not isinstance(value, str):
            return
        if any(m not in HARMLESS_DUNDERS for m in DUNDER.findall(value)):
            self.add(node, "dunder", "This string names Python internals (a '__dunder__'), "
                                     "which format templates and expression evaluators can "
                                     "reach; remove it.", CRITICAL)
        elif "module://" in value:
            self._check_backend(node, value)
        elif EXTERNAL_PROGRAM_SETTING.search(value):
            self.add(node, "external-program", f"The setting '{value}' makes matplotlib run an "
                                               f"external program; keep the defaults.")
        elif (value in OPTION_KEYS or value.endswith(".backend")) and \
                id(node) not in self.checked_keys:
            self.add(node, "plot-backend", f"The option name '{value}' may only appear as a "
                                           f"literal key with a literal, allowed value.")

    def visit_MatchClass(self, node: ast.MatchClass) -> None:
        # keyword patterns read attributes, but are plain strings in the AST
        for attr in node.kwd_attrs:
            self._check_attribute_name(node, attr, ast.Load())
        self.generic_visit(node)
