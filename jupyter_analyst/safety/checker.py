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
from .policy import (
    ALLOWED_BUILTINS,
    ALLOWLIST_FILE,
    BUILTIN_NAMES,
    CRITICAL_NAMES,
    FRAME_ATTRIBUTES,
    HARMLESS_DUNDERS,
    IPYTHON_NAMES,
    SAFE_DUNDER_METHODS,
    SAFE_FUNCTION_NAMES,
    Exclusion,
    Policy,
    excluded,
)
from .report import Finding, RiskLevel
from .strings import (
    DUNDER,
    annotation_problems,
    backend_problem,
    formula_problem,
    is_formula_call,
    option_store_problems,
    pandas_backend_problem,
    pandas_expression_problem,
    pandas_option_problem,
    static_value,
    string_valued,
    style_problem,
    template_problem,
)

CRITICAL, HIGH, MEDIUM = RiskLevel.CRITICAL, RiskLevel.HIGH, RiskLevel.MEDIUM
MAX_DEPTH = 200  # deeper nesting is refused instead of risking the interpreter's stack

_IPYTHON_HISTORY = re.compile(r"_i{1,3}\d*|_\d+")

# Calls that read or write files (besides pandas' read_*): the path is the first argument
# or one of PATH_KEYWORDS (plotly.io.write_*(fig, file) takes it second).
READERS = frozenset({"imread", "ExcelFile", "fromfile", "fromregex", "loadtxt", "genfromtxt",
                     "load", "load_npz"})
WRITERS = frozenset({
    "to_csv", "to_excel", "to_json", "to_parquet", "to_feather", "to_html", "to_latex",
    "to_markdown", "to_string", "to_xml", "to_stata", "to_orc", "savefig", "imsave", "tofile",
    "ExcelWriter", "save", "savez", "savez_compressed", "savetxt", "save_npz", "write_html",
    "write_image", "write_json",
    # a figure's canvas writes files too (fig.canvas.print_png(path))
    "print_figure", *(f"print_{fmt}" for fmt in ("png", "jpg", "jpeg", "pdf", "svg", "svgz",
                                                  "raw", "rgba", "tif", "tiff", "webp"))})
PATH_KEYWORDS = ("filepath_or_buffer", "path_or_buf", "path_or_buffer", "path", "fname",
                 "filename", "filepath", "file", "io", "buf", "excel_writer")
# the ones that only ever name a file ("path", "file", "buf" are also matplotlib paths,
# print's stream, ...): computed values for these are refused on any call
FILE_KEYWORDS = frozenset({"filepath_or_buffer", "path_or_buf", "path_or_buffer", "fname",
                           "filename", "filepath", "excel_writer"})
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
# savefig formats whose backends run TeX or Ghostscript
EXTERNAL_FORMATS = frozenset({"pgf", "ps", "eps"})
# Calls whose keyword names are data, not API: column names (assign, named aggregation),
# dict keys, template fields, array names in an archive, plotly's property paths
# ("xaxis_title_text"). Excluded families still apply to them.
KEYWORD_DATA_CALLS = frozenset({"dict", "assign", "agg", "aggregate", "format", "format_map",
                                "savez", "savez_compressed"})
KEYWORD_DATA_PREFIXES = ("update_", "add_")  # plotly's fig.update_layout(...), add_hline(...)
# Expressions that give a DataFrame, so an attribute no frame has is a column (``df.price``)
FRAME_FACTORIES = frozenset({"DataFrame", "read_csv", "read_parquet", "read_excel", "read_json",
                             "read_feather", "concat", "merge", "pivot_table", "crosstab",
                             "get_dummies", "melt"})
FRAME_METHODS = frozenset({"copy", "dropna", "fillna", "reset_index", "set_index", "sort_values",
                           "sort_index", "merge", "join", "assign", "query", "rename", "head",
                           "tail", "drop", "drop_duplicates", "astype", "pivot", "pivot_table",
                           "melt", "sample", "nlargest", "nsmallest", "filter", "reindex",
                           "to_frame", "round", "interpolate", "ffill", "bfill",
                           "groupby"})  # df.groupby(...).price selects a column too
# Data attributes analysis sets on frames and arrays (df.columns = [...]); assigning any other
# attribute a frame or array has would replace a method on that object.
# (numpy refuses to set ndarray.data; on a sparse matrix it is the values array)
SETTABLE_DATA = frozenset({"columns", "index", "name", "names", "attrs", "shape", "data"})
# pandas option groups code may set as attributes (pd.options.display.max_rows = 10)
OPTION_GROUPS = frozenset({"display", "mode", "compute", "plotting", "styler", "future"})
SPARSE_COMPRESSED = frozenset({f"{kind}_{form}" for kind in ("csr", "csc", "bsr")
                               for form in ("matrix", "array")})
SPARSE_INTERNALS = frozenset({"indices", "indptr"})
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


def _dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


def _api_message(name: str) -> str:
    return (f"'.{name}' is not on the list of analysis API attributes ({ALLOWLIST_FILE.name}), "
            f"so it was refused. If it is a column, write frame['{name}']; if it is library "
            f"API the analysis needs, add it to jupyter_analyst/safety/{ALLOWLIST_FILE.name} "
            f"or pass SafetyValidator(extra_attributes=['{name}']).")


_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef, ast.ListComp,
           ast.SetComp, ast.DictComp, ast.GeneratorExp)


def _bindings(scope: ast.AST, name: str) -> list[ast.AST | None]:
    """What ``name`` is bound to in one scope (a function or the module, not the scopes
    nested in it): assigned values, None for a parameter, and a constant None for any
    other binding (loops, unpacking, with, augmented assignment)."""
    values: list[ast.AST | None] = []
    if not isinstance(scope, ast.Module):
        args = scope.args
        if name in {a.arg for a in args.posonlyargs + args.args + args.kwonlyargs}:
            values.append(None)
    pending = list(scope.body) if isinstance(scope.body, list) else [scope.body]
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if node.name == name:
                values.append(ast.Constant(None))
            pending.extend(node.decorator_list)
            continue
        if isinstance(node, _SCOPES):
            continue
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and \
                isinstance(node.targets[0], ast.Name) and node.targets[0].id == name:
            values.append(node.value)
            pending.append(node.value)
            continue
        if isinstance(node, ast.Name) and node.id == name and \
                not isinstance(node.ctx, ast.Load):
            values.append(ast.Constant(None))
        pending.extend(ast.iter_child_nodes(node))
    return values


def _literal_keys(node: ast.AST | None) -> list[tuple[str, ast.AST]] | None:
    """The string keys of ``{"a": 1}`` or ``dict(a=1)``, else None."""
    if isinstance(node, ast.Dict):
        keys = [(fold_string(k), k) for k in node.keys if k is not None]
        if len(keys) != len(node.keys) or any(k is None for k, _ in keys):
            return None
        return keys
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
            node.func.id == "dict" and not node.args and \
            all(k.arg is not None for k in node.keywords):
        return [(k.arg, k.value) for k in node.keywords]
    return None


def _comprehension_targets(node: ast.AST) -> set[str]:
    return {n.id for gen in node.generators for n in ast.walk(gen.target)
            if isinstance(n, ast.Name)}


class Checker:
    """Walks one parsed cell and adds findings through ``report``."""

    def __init__(self, policy: Policy, report: Callable[[Finding], None], budget: float,
                 started: float, imports_at_start: float):
        self.policy = policy
        self.report = report
        self.started = started  # the budget covers the whole validation, parsing included
        self.imports_at_start = imports_at_start
        self.budget = budget
        self.depth = 0
        self.visited = 0
        self.imports: dict[str, str] = {}  # local name -> qualified name it was imported as
        self.assigned: dict[str, list[ast.AST | None]] = {}  # name -> values (None: unknown)
        self.scopes: list[set[str]] = []  # enclosing function scopes' own names
        self.chain_inner: set[int] = set()  # nodes that are the object of an attribute access
        self.called: set[int] = set()  # nodes that are called directly
        self.checked_keys: set[int] = set()  # option-name strings whose value was checked
        self.classes: dict[str, set[str]] = {}  # class defined in the code -> its member names
        self.methods: dict[int, tuple[str, str]] = {}  # method node -> (self name, class)
        self.method_stack: list[tuple[str, str]] = []
        self.params: dict[str, set[str]] = {}  # local function or method name -> parameters
        self.rows: set[str] = set()  # loop variables over a frame's itertuples()
        self.class_functions: set[int] = set()  # functions defined in class bodies
        self.kwargs_params: set[str] = set()  # functions' **kwargs parameter names
        self.functions: dict[str, ast.FunctionDef] = {}  # functions the code defines
        self.call_sites: dict[str, list[tuple[ast.Call, tuple]]] = {}  # with their scopes
        self.function_stack: list[ast.AST] = []  # the functions being visited
        self.name_loads: dict[str, int] = {}  # how often each name is read
        self.locals_cache: dict[int, set[str]] = {}
        self.scope_values: dict[tuple[int, str], list[ast.AST | None]] = {}
        self.mutated: set[str] = set()  # names whose value is changed in place (x[k] = v)

    # -- driving the walk -------------------------------------------------------------
    def run(self, tree: ast.Module) -> None:
        self.tree = tree
        self._index(tree)
        for rule, problems in (("option-store", option_store_problems),
                               ("string-annotation", annotation_problems)):
            for problem in problems(tree, self._qualname):
                self.add(problem.node, rule, problem.message[0].upper() + problem.message[1:]
                         + ".")
        self._index_calls(tree, ())
        self.visit(tree)

    def _index_calls(self, node: ast.AST, scope: tuple) -> None:
        """Calls of the code's own functions, with the functions they are made in."""
        for child in ast.iter_child_nodes(node):
            self.tick()
            if isinstance(child, ast.Call) and isinstance(child.func, ast.Name):
                self.call_sites.setdefault(child.func.id, []).append((child, scope))
            elif isinstance(child, ast.Name) and isinstance(child.ctx, ast.Load):
                self.name_loads[child.id] = self.name_loads.get(child.id, 0) + 1
            inner = scope + (child,) if isinstance(
                child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) else scope
            self._index_calls(child, inner)

    def tick(self) -> None:
        """Count one unit of work; raise BudgetExceeded when the time budget is spent."""
        self.visited += 1
        if self.visited % 64 == 0:
            spent = time.perf_counter() - self.started
            spent -= introspect.import_seconds - self.imports_at_start
            if spent > self.budget:
                raise BudgetExceeded

    def visit(self, node: ast.AST) -> None:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise TooDeep
            self.tick()
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
            self.tick()
            if isinstance(node, ast.ClassDef):
                self._index_class(node)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self.functions[node.name] = node
                args = node.args
                self.params.setdefault(node.name, set()).update(
                    a.arg for a in args.posonlyargs + args.args + args.kwonlyargs)
                if args.kwarg is not None:
                    self.kwargs_params.add(args.kwarg.arg)
            elif isinstance(node, (ast.Subscript, ast.Attribute)) and \
                    isinstance(node.value, ast.Name) and (
                    not isinstance(node.ctx, ast.Load) or isinstance(node, ast.Attribute)):
                # d[k] = v, del d[k], d.update(...): the dict is not what its literal says
                self.mutated.add(node.value.id)
            elif isinstance(node, ast.For) and isinstance(node.target, ast.Name) and \
                    isinstance(node.iter, ast.Call) and \
                    isinstance(node.iter.func, ast.Attribute) and \
                    node.iter.func.attr == "itertuples":
                self.rows.add(node.target.id)
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
        # a loop variable is only a row if nothing else binds the name
        self.rows = {name for name in self.rows if len(self.assigned.get(name, ())) == 1}

    def _index_class(self, node: ast.ClassDef) -> None:
        """A class defined in the code: the names it defines, and its methods' ``self``."""
        members = self.classes.setdefault(node.name, set())
        for statement in node.body:
            if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
                members.add(statement.name)
                self.class_functions.add(id(statement))
                args = statement.args.posonlyargs + statement.args.args
                if args:
                    self.methods[id(statement)] = (args[0].arg, node.name)
                    for child in ast.walk(statement):
                        if isinstance(child, ast.Attribute) and \
                                not isinstance(child.ctx, ast.Load) and \
                                isinstance(child.value, ast.Name) and \
                                child.value.id == args[0].arg:
                            members.add(child.attr)
                if statement.name == "__init__":
                    self.params.setdefault(node.name, set()).update(a.arg for a in args[1:])
            for target in getattr(statement, "targets", [getattr(statement, "target", None)]):
                if isinstance(target, ast.Name):
                    members.add(target.id)
        if any(isinstance(d, (ast.Name, ast.Attribute)) and
               ast.unparse(d).endswith("dataclass") or isinstance(d, ast.Call) and
               ast.unparse(d.func).endswith("dataclass") for d in node.decorator_list):
            self.params.setdefault(node.name, set()).update(members)

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
        method = self.methods.get(id(node))
        if _dunder(node.name) and not (method and node.name in SAFE_DUNDER_METHODS):
            self._dunder_definition(node, node.name)
        # decorators, defaults and annotations run in the enclosing scope, the body inside
        body = {id(statement) for statement in node.body}
        outer = [child for child in ast.iter_child_nodes(node) if id(child) not in body]
        if method:
            self.method_stack.append(method)
        self.function_stack.append(node)
        try:
            self._visit_scoped(outer, _function_locals(node), node.body)
        finally:
            self.function_stack.pop()
            if method:
                self.method_stack.pop()

    def visit_arg(self, node: ast.arg) -> None:
        if _dunder(node.arg):
            self._dunder_definition(node, node.arg)
        self.generic_visit(node)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.name and _dunder(node.name):
            self._dunder_definition(node, node.name)
        self.generic_visit(node)

    def _dunder_definition(self, node: ast.AST, name: str) -> None:
        self.add(node, "dunder", f"Defining '{name}' changes how Python itself behaves (module "
                                 f"hooks, builtins, special methods other machinery calls); "
                                 f"choose an ordinary name.", CRITICAL)

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
    def _check_aliases(self, node: ast.Import | ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.asname and _dunder(alias.asname):
                self._dunder_definition(node, alias.asname)

    def visit_Import(self, node: ast.Import) -> None:
        self._check_aliases(node)
        for alias in node.names:
            if not self.policy.module_allowed(alias.name):
                self.add(node, "import", self._import_message(alias.name))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        self._check_aliases(node)
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
            if _dunder(name):
                self._dunder_definition(node, name)
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
        member = self._local_member(node.value, node.attr)
        if member and isinstance(node.ctx, ast.Del):
            # deleting its own name would uncover what a library base class has there
            self.add(node, "library-patch", f"Deleting '{ast.unparse(node)}' changes what the "
                                            f"class inherits; assign a new value instead.")
        if member and _dunder(node.attr) and node.attr not in SAFE_DUNDER_METHODS:
            self._check_attribute_name(node, node.attr, node.ctx)
        elif not member and not self._super_method(node) and \
                not self._check_attribute_name(node, node.attr, node.ctx) and \
                self._module_of(node.value) is None:
            self._check_api_attribute(node, node.attr, node.value)
        if isinstance(node.value, (ast.Attribute, ast.Name)):
            self.chain_inner.add(id(node.value))
        if id(node) not in self.chain_inner:
            self._check_chain(node)
        if not isinstance(node.ctx, ast.Load) and not member:
            self._check_attribute_store(node)
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

    def _check_attribute_name(self, node: ast.AST, attr: str, ctx: ast.AST) -> bool:
        """The name rules (dunders, frames, private names); True if one was broken."""
        if attr in HARMLESS_DUNDERS and isinstance(ctx, ast.Load):
            return True  # allowed, and needs no allow-list entry
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
        else:
            return False
        return True

    # -- the API surface --------------------------------------------------------------
    def _check_api_attribute(self, node: ast.AST, attr: str, receiver: ast.AST | None) -> None:
        """An attribute of an object (not a module) must be on the allow-list, or be a
        column of a frame: a name no frame, series or array has, read from a frame."""
        family = excluded(attr, "attributes")
        if family is None and self.policy.attribute_allowed(attr):
            return
        if receiver is not None and not introspect.data_attribute(attr) and \
                self._frame_like(receiver):
            return  # a column
        if family is not None:
            self._excluded(node, f"'.{attr}'", family)
        elif not self.policy.attribute_allowed(attr):
            self.add(node, "api-attribute", _api_message(attr))

    def _excluded(self, node: ast.AST, shown: str, family: Exclusion) -> None:
        severity = CRITICAL if family.family == "raw-memory" else HIGH
        self.add(node, "api-excluded", f"{shown} is refused: it {family.reason} (family "
                                       f"'{family.family}' in {ALLOWLIST_FILE.name}); use the "
                                       f"documented analysis API instead.", severity)

    def _local_member(self, receiver: ast.AST, attr: str) -> bool:
        """``self.x`` in a method of a class the code defines, ``Point.x`` and ``p.x`` for
        ``p = Point(...)``, where the class defines ``x`` (a method, a class attribute or
        an attribute its methods assign on ``self``)."""
        if not isinstance(receiver, ast.Name) or excluded(attr, "attributes") is not None:
            return False  # excluded families are refused on the code's own objects too
        name = receiver.id
        for self_name, cls in reversed(self.method_stack):
            if name == self_name:
                return attr in self.classes[cls]
        if name in self.classes and not self.assigned.get(name):
            return attr in self.classes[name]
        values = self.assigned.get(name, [None])
        classes = {v.func.id if isinstance(v, ast.Call) and isinstance(v.func, ast.Name)
                   and v.func.id in self.classes and not self.assigned.get(v.func.id)
                   else None for v in values}
        return len(classes) == 1 and None not in classes and attr in self.classes[classes.pop()]

    def _super_method(self, node: ast.Attribute) -> bool:
        """``super().__init__(...)``: a special method of the code's own class hierarchy."""
        return node.attr in SAFE_DUNDER_METHODS and isinstance(node.value, ast.Call) and \
            isinstance(node.value.func, ast.Name) and node.value.func.id == "super" and \
            bool(self.method_stack)

    def _frame_like(self, node: ast.AST, scope: tuple | None = None,
                    assumed: frozenset = frozenset()) -> bool:
        """True for expressions that give a DataFrame: a name the code never binds (the
        frames an analysis is given), pandas' constructors and readers, frame methods and
        selections on those, and a function's parameter when every call of the function
        passes one. ``scope`` is the chain of functions the expression is in; a name being
        decided already (``df = df.copy()``) is assumed to be a frame while deciding it."""
        self.tick()
        if len(assumed) > 16:
            return False
        scope = tuple(self.function_stack) if scope is None else scope
        if isinstance(node, ast.Name):
            name = node.id
            if name in self.imports or name in self.classes or name in self.functions or \
                    name.startswith("_") or name in ALLOWED_BUILTINS:
                return False  # _ is IPython's last output; save_table is a function
            if name in self.rows:
                return True
            owner = next((f for f in reversed(scope) if name in self._locals_of(f)), None)
            key = (id(owner), name)
            if key in assumed:
                return True
            assumed = assumed | {key}
            if owner is None:
                if name in BUILTIN_NAMES and name not in self.assigned:
                    return False
                return all(self._frame_like(v, (), assumed)
                           for v in self._module_bindings(name))
            inner = scope[:scope.index(owner) + 1]
            return all(self._frame_like(v, inner, assumed) if v is not None else
                       self._frame_argument(owner, name, assumed)
                       for v in self._scope_bindings(owner, name))
        if isinstance(node, ast.Subscript):
            value = node.value
            if isinstance(value, ast.Attribute) and value.attr in ("loc", "iloc"):
                value = value.value
            return self._frame_like(value, scope, assumed)
        if isinstance(node, ast.Call):
            func = node.func
            if self._qualname(func).startswith("pandas.") and \
                    self._qualname(func).rpartition(".")[2] in FRAME_FACTORIES:
                # read_csv(chunksize=...) gives a reader object, not a frame
                return not any(k.arg in ("chunksize", "iterator") for k in node.keywords)
            if isinstance(func, ast.Name) and func.id in self.functions:
                # the code's own function: a frame if everything it returns is one
                function = self.functions[func.id]
                key = (id(function), "return")
                if key in assumed:
                    return True
                returns = [n.value for n in ast.walk(function) if isinstance(n, ast.Return)]
                inner = scope + (function,)
                return bool(returns) and all(
                    r is not None and self._frame_like(r, inner, assumed | {key})
                    for r in returns)
            return isinstance(func, ast.Attribute) and func.attr in FRAME_METHODS and \
                self._frame_like(func.value, scope, assumed)
        return False

    def _module_bindings(self, name: str) -> list[ast.AST]:
        return self._scope_bindings(self.tree, name)

    def _scope_bindings(self, scope: ast.AST, name: str) -> list[ast.AST | None]:
        key = (id(scope), name)
        if key not in self.scope_values:
            self.scope_values[key] = _bindings(scope, name)
        return self.scope_values[key]

    def _locals_of(self, function: ast.AST) -> set[str]:
        if id(function) not in self.locals_cache:
            self.locals_cache[id(function)] = _function_locals(function)
        return self.locals_cache[id(function)]

    def _frame_argument(self, function: ast.AST, name: str, assumed: frozenset) -> bool:
        """A parameter is a frame if the function is only ever called, each time with a
        frame in that place."""
        if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)) or \
                self.functions.get(function.name) is not function or \
                id(function) in self.class_functions:
            return False  # methods are called through their objects, out of sight
        args = function.args
        positional = [a.arg for a in args.posonlyargs + args.args]
        if name not in positional + [a.arg for a in args.kwonlyargs]:
            return False  # *args, **kwargs or a local variable with no value
        defaults = dict(zip([a.arg for a in args.posonlyargs + args.args][::-1],
                            args.defaults[::-1]))
        defaults.update((a.arg, d) for a, d in zip(args.kwonlyargs, args.kw_defaults) if d)
        default = defaults.get(name)
        if default is not None and not self._frame_like(default, (), assumed):
            return False
        sites = self.call_sites.get(function.name, [])
        if self.name_loads.get(function.name, 0) != len(sites):
            return False  # used as a value: called from somewhere the code does not show
        if not sites:
            # never called in the cell, so the body never runs here (each analysis starts
            # from a fresh namespace): what it would be given is the caller's concern
            return True
        for call, scope in sites:
            index = positional.index(name) if name in positional else len(call.args)
            if index < len(call.args):
                arg = call.args[index]
            else:
                arg = next((k.value for k in call.keywords if k.arg == name), default)
            if arg is None or isinstance(arg, ast.Starred) or any(
                    isinstance(a, ast.Starred) for a in call.args[:index]) or \
                    not self._frame_like(arg, scope, assumed):
                return False
        return True

    def _module_of(self, node: ast.AST) -> str | None:
        """The allowed module an expression is (``np.random``), else None."""
        chain = self._chain(node)
        if chain is None:
            return None
        root, attrs = chain
        kind = self._kind(self.imports[root])
        current = kind.module if kind.kind == "module" else None
        for attr in attrs:
            if current is None:
                return None
            kind = self._kind(f"{current}.{attr}")
            current = kind.module if kind.kind == "module" and self._passable(
                kind.module) else None
        return current

    def _library_rooted(self, node: ast.AST, depth: int = 0) -> bool:
        """An expression that is a library's module, class or function rather than an
        object the code made: ``pd.DataFrame``, ``S`` after ``S = pd.Series``, ``type(x)``."""
        if depth > 8:
            return False
        if isinstance(node, ast.Call):
            return isinstance(node.func, ast.Name) and node.func.id == "type"
        if isinstance(node, ast.Attribute):
            return self._library_rooted(node.value, depth + 1)
        if isinstance(node, ast.Name):
            if self._chain(node) is not None:
                return True
            values = self.assigned.get(node.id, [])
            return bool(values) and all(v is not None and not isinstance(v, ast.Call) and
                                        self._library_rooted(v, depth + 1) for v in values)
        return False

    def _check_attribute_store(self, node: ast.Attribute) -> None:
        """Assigning or deleting an attribute: never on a library's modules, classes or
        functions (the change would outlive the analysis in a warm kernel), and never a
        method of a frame or array."""
        shown = ast.unparse(node)
        if self._library_rooted(node.value):
            if self._option_setting(node):
                return
            if self._module_of(node.value) is None:  # module attributes: module-patch
                self.add(node, "library-patch", f"Assigning or deleting '{shown}' changes a "
                                                f"library class or function for every later "
                                                f"analysis; keep your own variables.")
        elif node.attr in SPARSE_INTERNALS:
            self._sparse_internals(node)
        elif self._frame_like(node.value) and not introspect.data_attribute(node.attr,
                                                                             frame_only=True):
            return  # df.price = ...: sets the column
        elif introspect.data_attribute(node.attr) and node.attr not in SETTABLE_DATA:
            self.add(node, "library-patch", f"Assigning '{shown}' replaces the object's own "
                                            f"'{node.attr}'; keep the result in a new "
                                            f"variable.")

    def _option_setting(self, node: ast.Attribute) -> bool:
        """``pd.options.display.max_rows = 10``: pandas checks the name and the value."""
        qualname = self._qualname(node).split(".")
        return len(qualname) >= 4 and qualname[:2] == ["pandas", "options"] and \
            qualname[2] in OPTION_GROUPS

    def _sparse_internals(self, node: ast.AST) -> None:
        self.add(node, "sparse-indices", "Writing a sparse matrix's indices or indptr skips "
                                         "scipy's bounds checks (out-of-bounds memory access); "
                                         "build a new matrix from (data, (row, col)) "
                                         "instead.", CRITICAL)

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
        elif excluded(attr, "attributes") is not None:
            self._excluded(node, f"'{shown}'", excluded(attr, "attributes"))
        elif kind.kind == "object" and not self.policy.extra_module(module) and \
                not self.policy.attribute_allowed(attr):
            self.add(node, "api-attribute", _api_message(attr).replace(
                f"If it is a column, write frame['{attr}']; if", "If"))
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
                                            f"runs, so '{shown}' cannot be checked; reinstall "
                                            f"jupyter-analyst, which depends on it "
                                            f"(pip install --force-reinstall jupyter-analyst).")
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
            (self._qualname(func).rpartition(".")[2] or func.id)
            if isinstance(func, ast.Name) else "")
        if isinstance(func, ast.Name) and func.id == "open" and not self._local("open"):
            name = "open"
        qualname = self._qualname(func)
        for keyword in node.keywords:
            self._check_keyword(node, name, keyword)
            self._check_keyword_name(node, func, name, keyword)
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
        elif name == "rc_context" and self._argument(node, 1, ("fname",)) is not None:
            self.add(node, "plot-settings", "rc_context(fname=...) reads a settings file, which "
                                            "can select a backend or run programs; pass the "
                                            "settings as a dict.")
        elif name in SPARSE_COMPRESSED and node.args and \
                isinstance(node.args[0], ast.Tuple) and len(node.args[0].elts) == 3:
            self.add(node, "sparse-indices", f"'{name}((data, indices, indptr))' takes index "
                                             f"arrays scipy does not bounds-check (out-of-"
                                             f"bounds memory access); build it from (data, "
                                             f"(row, col)), which scipy checks.", CRITICAL)
        if name in ("savefig", "print_figure"):
            self._check_savefig_format(node)
        self.generic_visit(node)

    def _check_savefig_format(self, node: ast.Call) -> None:
        """The pgf, ps and eps writers run TeX or Ghostscript."""
        chosen = self._argument(node, 99, ("format",))
        path = self._argument(node, 0, PATH_KEYWORDS)
        text = fold_string(path) if path is not None else None
        if isinstance(path, ast.JoinedStr) and isinstance(path.values[-1], ast.Constant):
            text = path.values[-1].value
        suffix = (text or "").rpartition(".")[2].lower() if text and "." in text else None
        value = fold_string(chosen) if chosen is not None else suffix
        if (chosen is not None and value is None) or (value or "").lower() in EXTERNAL_FORMATS:
            self.add(chosen or node, "external-program", f"savefig with format "
                                                         f"'{value or 'computed'}' runs TeX or "
                                                         f"Ghostscript; save as png, svg or "
                                                         f"pdf.")

    def _check_keyword_name(self, call: ast.Call, func: ast.AST, name: str,
                            keyword: ast.keyword) -> None:
        """Keyword names are API too (``resize(refcheck=False)``, ``opener=``): they must be
        on the allow-list, or be parameters of a function or class the code defines, or be
        data (column names for ``assign``, keys for ``dict``)."""
        if keyword.arg is None:
            self._check_unpacked_keywords(keyword.value)
            return
        family = excluded(keyword.arg, "keywords")
        if family is not None:
            self._excluded(keyword.value, f"The keyword '{keyword.arg}='", family)
        elif not (self.policy.keyword_allowed(keyword.arg) or name in KEYWORD_DATA_CALLS
                  or name.startswith(KEYWORD_DATA_PREFIXES)
                  or keyword.arg in self._own_parameters(func)):
            self.add(keyword.value, "api-keyword",
                     f"The keyword '{keyword.arg}=' is not on the list of analysis API "
                     f"keywords ({ALLOWLIST_FILE.name}), so it was refused; if the library "
                     f"documents it, add it to that file or pass "
                     f"SafetyValidator(extra_keywords=['{keyword.arg}']).")

    def _own_parameters(self, func: ast.AST) -> set[str]:
        """Parameters of the code's own function or class ``func`` calls, else nothing."""
        if isinstance(func, ast.Name) and func.id not in self.imports:
            return self.params.get(func.id, set())
        if isinstance(func, ast.Attribute) and self._local_member(func.value, func.attr):
            return self.params.get(func.attr, set())
        return set()

    def _check_unpacked_keywords(self, value: ast.AST) -> None:
        """``f(**options)`` hides the keyword names, so only a dict literal, a name only
        ever set to one, or a function's own ``**kwargs`` passed on unchanged may be
        unpacked; their keys get the keyword checks."""
        values = [value]
        if isinstance(value, ast.Name):
            if self._local(value.id) and self.assigned.get(value.id) == [None] and \
                    value.id in self.kwargs_params and value.id not in self.mutated:
                return
            values = self.assigned.get(value.id, [None])
            if value.id in self.mutated:
                values = [None]
        for item in values:
            keys = _literal_keys(item)
            if keys is None:
                self.add(value, "unpacked-arguments", "Keyword arguments unpacked with ** must "
                                                      "come from a dict written in the code "
                                                      "(so their names can be checked); write "
                                                      "them out.")
                return
            for key, node in keys:
                family = excluded(key, "keywords")
                if family is not None:
                    self._excluded(node, f"The keyword '{key}='", family)
                elif not self.policy.keyword_allowed(key):
                    self.add(node, "api-keyword", f"The keyword '{key}=' (unpacked with **) is "
                                                  f"not on the list of analysis API keywords "
                                                  f"({ALLOWLIST_FILE.name}); add it there or "
                                                  f"pass SafetyValidator(extra_keywords=...).")

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
        elif keyword.arg in PATH_KEYWORDS and not self._io_kind(name, self._qualname(call.func)):
            path = fold_string(value)
            if path is not None:
                self._check_path(value, path, self.policy.read_dirs)
            elif keyword.arg in FILE_KEYWORDS and not self._is_handle(value):
                self.add(value, "io-path", f"The file given as '{keyword.arg}=' to '{name}' is "
                                           f"computed, so it cannot be checked; write the path "
                                           f"as a literal string under data/ or outputs/.")

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
        elif kind == "write" and isinstance(arg, ast.JoinedStr) and \
                self._templated_file_name(arg):
            return
        elif not self._is_handle(arg):
            where = "data/..." if kind == "read" else "outputs/..."
            self.add(arg, "io-path", f"The path given to '{name}' is computed, so it cannot be "
                                     f"checked; write it as a literal string such as "
                                     f"'{where}'.")

    def _templated_file_name(self, node: ast.JoinedStr) -> bool:
        """``f"outputs/hist_{col}.png"``: a constant folder inside the write folders, and
        placeholders only in the file name, each after constant text. The value cannot
        start a path component ('..' or '/'), and a '/' inside it names a folder that must
        already exist under outputs/ (nothing the validator allows creates one from a
        computed name); what remains is confined by the sandbox's mounts."""
        parts = [v.value if isinstance(v, ast.Constant) else None for v in node.values]
        if None not in parts or not isinstance(parts[0], str) or "/" not in parts[0]:
            return False
        folder, _, start = parts[0].rpartition("/")
        later = [p for p in parts[1:] if p is not None]
        if any("/" in p for p in later) or any(
                part is None and (previous is None or previous.endswith("/") or not previous)
                for previous, part in zip([start] + parts[1:], parts[1:])):
            return False
        if not start:
            return False
        if path_problem(folder + "/file", self.policy.write_dirs):
            return False
        suffix = parts[-1] if parts[-1] is not None else ""
        if suffix.rpartition(".")[2].lower() in EXTERNAL_FORMATS:
            return False
        return True

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
        """``pd.options.plotting.backend = ...``, ``rcParams["backend"] = ...``, settings
        stores written with a computed key, sparse matrices' index arrays."""
        if isinstance(target, ast.Attribute) and target.attr == "backend":
            self._check_backend(target, fold_string(value) if value is not None else None)
        elif isinstance(target, ast.Subscript) and self._option_key(target.slice):
            self.checked_keys.add(id(target.slice))
            self._check_backend(target, fold_string(value) if value is not None else None)
        elif isinstance(target, ast.Subscript) and self._settings_store(target.value) and \
                fold_string(target.slice) is None:
            self.add(target, "plot-settings", "A settings key (rcParams, options) must be a "
                                              "literal string, so the setting can be checked; "
                                              "write the name out.")
        if isinstance(target, ast.Subscript) and isinstance(target.value, ast.Attribute) and \
                target.value.attr in SPARSE_INTERNALS:
            self._sparse_internals(target)

    def _settings_store(self, node: ast.AST) -> bool:
        name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "")
        return name in ("rcParams", "rcParamsDefault", "options") or \
            self._qualname(node) in ("matplotlib.rcParams", "pandas.options")

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
        own = node.cls.id if isinstance(node.cls, ast.Name) and node.cls.id in self.classes \
            else None
        for attr in node.kwd_attrs:
            if own and attr in self.classes[own] and excluded(attr, "attributes") is None:
                continue
            if not self._check_attribute_name(node, attr, ast.Load()):
                self._check_api_attribute(node, attr, None)
        self.generic_visit(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        if _dunder(node.name):
            self._dunder_definition(node, node.name)
        for keyword in node.keywords:  # metaclass=..., or keywords for __init_subclass__
            self.add(keyword.value, "class-keyword", "Class keywords (metaclass=...) change how "
                                                     "Python builds the class; define a plain "
                                                     "class.")
        self.generic_visit(node)
