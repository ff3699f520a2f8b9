"""What generated code may use: modules, builtins, sandbox paths and plotting backends.

Everything here is an allow-list. Anything not named is refused, so a library release
that adds a new module or builtin is refused until someone decides to allow it.
"""

from __future__ import annotations

import builtins
import posixpath
import sys
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from functools import cache, lru_cache
from pathlib import Path

from ..layout import CONTAINER
from ..libraries import analysis_modules

SANDBOX_ROOT = str(CONTAINER.root)  # the kernel's working directory: relative paths start here
READ_DIRS = (str(CONTAINER.data), str(CONTAINER.outputs))  # reading back your outputs is fine
WRITE_DIRS = (str(CONTAINER.outputs),)

# Module -> allowed attribute names (glob patterns), or None for "any public attribute
# that is not itself a module". Submodules are allowed only when listed here; a package
# that is merely on the way to a listed submodule (``numpy.lib`` for
# ``numpy.lib.stride_tricks``) can be passed through but not used itself.
ALLOWED_MODULES: dict[str, tuple[str, ...] | None] = {
    # analysis libraries
    "pandas": None,
    "pandas.api": None,
    "pandas.api.types": None,
    "pandas.plotting": None,
    "pandas.tseries": None,
    "pandas.tseries.offsets": None,
    "numpy": None,
    "numpy.random": None,
    "numpy.linalg": None,
    "numpy.fft": None,
    "numpy.ma": None,
    "numpy.char": None,
    "numpy.rec": None,
    "numpy.polynomial": None,
    "numpy.polynomial.polynomial": None,
    "numpy.lib.stride_tricks": None,
    "scipy": None,
    **{f"scipy.{sub}": None for sub in (
        "stats", "stats.mstats", "stats.qmc", "optimize", "interpolate", "integrate", "signal",
        "signal.windows", "spatial", "spatial.distance", "spatial.transform", "sparse",
        "sparse.linalg", "sparse.csgraph", "linalg", "special", "cluster", "cluster.hierarchy",
        "cluster.vq", "ndimage", "fft", "fftpack", "constants", "odr")},
    "statsmodels.api": None,
    "statsmodels.formula.api": None,
    **{f"statsmodels.{sub}": None for sub in (
        "tsa.api", "tsa.stattools", "tsa.seasonal", "tsa.holtwinters", "tsa.arima.model",
        "tsa.statespace.sarimax", "stats.api", "stats.multitest", "stats.diagnostic",
        "stats.outliers_influence", "stats.proportion", "stats.weightstats", "stats.anova",
        "stats.multicomp", "graphics.tsaplots", "regression.linear_model",
        "nonparametric.smoothers_lowess", "discrete.discrete_model")},
    "sklearn": None,
    **{f"sklearn.{sub}": None for sub in (
        "base", "calibration", "cluster", "compose", "covariance", "cross_decomposition",
        "decomposition", "discriminant_analysis", "dummy", "ensemble", "feature_extraction",
        "feature_extraction.text", "feature_selection", "gaussian_process", "impute",
        "inspection", "isotonic", "kernel_approximation", "kernel_ridge", "linear_model",
        "manifold", "metrics", "metrics.pairwise", "mixture", "model_selection", "multiclass",
        "multioutput", "naive_bayes", "neighbors", "neural_network", "pipeline",
        "preprocessing", "semi_supervised", "svm", "tree")},
    # bundled toy data sets only: fetch_* downloads and load_files reads arbitrary folders
    "sklearn.datasets": ("load_iris", "load_diabetes", "load_digits", "load_wine",
                         "load_breast_cancer", "load_linnerud", "make_*"),
    "sklearn.utils": ("shuffle", "resample", "check_random_state"),
    "matplotlib": None,
    **{f"matplotlib.{sub}": None for sub in (
        "pyplot", "ticker", "dates", "colors", "cm", "patches", "lines", "gridspec",
        "collections", "markers", "transforms", "colorbar", "axes", "figure", "legend",
        "text", "style", "table", "scale", "path", "offsetbox", "patheffects")},
    "mpl_toolkits.mplot3d": None,
    "mpl_toolkits.axes_grid1": None,
    "seaborn": None,
    "plotly.express": None,
    "plotly.graph_objects": None,
    "plotly.subplots": None,
    "plotly.figure_factory": None,
    "plotly.io": None,
    # standard library: pure computation
    **{name: None for name in (
        "math", "cmath", "statistics", "datetime", "json", "re", "collections",
        "collections.abc", "itertools", "copy", "textwrap", "random", "decimal", "fractions",
        "numbers", "typing", "dataclasses", "enum", "heapq", "bisect", "calendar", "pprint",
        "unicodedata")},
    # not singledispatch: its register() evaluates string annotations as code
    "functools": ("reduce", "partial", "lru_cache", "cache", "cached_property", "wraps",
                  "total_ordering", "cmp_to_key"),
    # attrgetter and methodcaller would be getattr by another name
    "operator": ("itemgetter", "add", "sub", "mul", "truediv", "floordiv", "mod", "pow",
                 "neg", "pos", "abs", "eq", "ne", "lt", "le", "gt", "ge", "and_", "or_",
                 "xor", "not_", "truth", "contains", "getitem", "concat", "index"),
    "string": ("ascii_letters", "ascii_lowercase", "ascii_uppercase", "digits", "hexdigits",
               "octdigits", "punctuation", "printable", "whitespace", "capwords"),
    "time": ("time", "perf_counter", "monotonic", "process_time", "sleep", "strftime",
             "strptime", "gmtime", "localtime", "mktime"),
    "warnings": ("filterwarnings", "simplefilter", "catch_warnings", "warn"),
    "io": ("StringIO", "BytesIO"),  # in-memory buffers; io.open is open()
    # the sandbox contract
    "jupyter_analyst.runtime": ("save_metrics", "save_table"),
    "IPython.display": ("display",),
}
# A third-party module is importable only while its library is in the sandbox image's list.
ALLOWED_MODULES = {
    name: rule for name, rule in ALLOWED_MODULES.items()
    if name.split(".")[0] in analysis_modules() | sys.stdlib_module_names
    or name in ("jupyter_analyst.runtime", "IPython.display")}

# Builtins generated code may use. Every other builtin (eval, exec, open as a value,
# getattr, vars, input, help, exit, ...) is refused, including ones added in future Pythons.
# Not id(): in CPython it is the object's address, the first step of a raw-memory attack.
ALLOWED_BUILTINS = frozenset({
    "abs", "all", "any", "ascii", "bin", "bool", "bytearray", "bytes", "callable", "chr",
    "classmethod", "complex", "dict", "divmod", "enumerate", "filter", "float", "format",
    "frozenset", "hash", "hex", "int", "isinstance", "issubclass", "iter", "len", "list",
    "map", "max", "min", "next", "object", "oct", "ord", "pow", "print", "property", "range",
    "repr", "reversed", "round", "set", "slice", "sorted", "staticmethod", "str", "sum",
    "super", "tuple", "type", "zip", "aiter", "anext", "memoryview",
    "True", "False", "None", "Ellipsis", "NotImplemented",
    # pre-bound in the sandbox kernel
    "display", "save_metrics", "save_table",
}) | frozenset(name for name in dir(builtins)
               if name.endswith(("Error", "Exception", "Warning")) or name in {
                   "BaseException", "StopIteration", "StopAsyncIteration", "GeneratorExit",
                   "KeyboardInterrupt", "SystemExit", "BaseExceptionGroup", "ExceptionGroup"})

BUILTIN_NAMES = frozenset(dir(builtins))

# Names that run strings as code or reach the interpreter: refused as critical.
CRITICAL_NAMES = frozenset({
    "eval", "exec", "compile", "__import__", "globals", "locals", "vars", "getattr",
    "setattr", "delattr", "breakpoint", "get_ipython", "__builtins__",
})
# Names IPython puts in a kernel's namespace (history, outputs, the shell itself).
IPYTHON_NAMES = frozenset({"get_ipython", "exit", "quit", "In", "Out", "_ih", "_oh", "_dh",
                           "_i", "_ii", "_iii", "__", "___"})

# Interpreter internals reachable from ordinary objects: frames, code, tracebacks.
FRAME_ATTRIBUTES = frozenset({
    "gi_frame", "gi_code", "gi_yieldfrom", "gi_running", "gi_suspended",
    "cr_frame", "cr_code", "cr_await", "cr_origin", "cr_running", "cr_suspended",
    "ag_frame", "ag_code", "ag_await", "ag_running",
    "f_back", "f_builtins", "f_code", "f_globals", "f_locals", "f_lasti", "f_lineno",
    "f_trace", "f_trace_lines", "f_trace_opcodes",
    "tb_frame", "tb_next", "tb_lasti", "tb_lineno", "func_globals", "func_code",
})
# Read-only dunders that only ever give a string: ``type(model).__name__`` is common.
HARMLESS_DUNDERS = frozenset({"__name__"})
# Special methods a class defined in the code may implement: construction, display,
# comparison, containers and arithmetic. Not the ones other machinery calls behind the
# code's back: __del__ (runs whenever, in a later analysis too), __reduce__/__setstate__/
# __copy__/__deepcopy__ (copy and pickle call what they return), __getattr__/__set_name__/
# __init_subclass__/__class_getitem__, __fspath__, __array_*__ and buffer protocols.
SAFE_DUNDER_METHODS = frozenset({
    "__init__", "__post_init__", "__repr__", "__str__", "__len__", "__iter__", "__next__",
    "__getitem__", "__contains__", "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__",
    "__hash__", "__bool__", "__call__", "__enter__", "__exit__", "__add__", "__radd__",
    "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__", "__rtruediv__", "__neg__",
    "__abs__"})

# Values a plotting backend may be set to (pandas, matplotlib). Anything else, and in
# particular "module://...", makes the library import a module by name.
# (pgf and ps are left out: they run LaTeX or Ghostscript as external programs.)
ALLOWED_BACKENDS = frozenset({"matplotlib", "plotly", "agg", "pdf", "svg", "template",
                              "inline"})

# Function names pandas' apply/agg/transform may be given as strings. pandas looks such a
# string up with getattr on the object (then on numpy), so "query", "to_csv" or "style"
# would reach methods the validator checks only when they are called directly.
SAFE_FUNCTION_NAMES = frozenset({
    "sum", "mean", "median", "min", "max", "std", "var", "sem", "count", "size", "nunique",
    "prod", "product", "first", "last", "any", "all", "skew", "kurt", "kurtosis", "quantile",
    "idxmin", "idxmax", "cumsum", "cumprod", "cummin", "cummax", "cumcount", "rank", "diff",
    "pct_change", "shift", "abs", "round", "mode", "describe", "value_counts", "unique",
    "nlargest", "nsmallest", "ohlc", "ffill", "bfill", "fillna", "head", "tail", "nth",
    "ngroup", "corr", "cov", "sort_values", "sort_index", "sqrt", "exp", "log", "log10",
    "log2", "log1p", "square", "sign", "floor", "ceil", "tolist", "to_list", "dropna",
    "notna", "isna", "notnull", "isnull", "astype", "copy", "clip", "interpolate",
})

# Functions a statsmodels/patsy formula may call; patsy evaluates formulas as Python with
# the builtins available, so anything else (``I(open(...))``) is refused.
FORMULA_FUNCTIONS = frozenset({
    "C", "I", "Q", "Treatment", "Sum", "Diff", "Helmert", "Poly", "center", "standardize",
    "scale", "bs", "cr", "cc", "te", "log", "exp", "sqrt", "abs"})


def _normalise_dir(path: str) -> str:
    return posixpath.normpath(posixpath.join(SANDBOX_ROOT, path))


ALLOWLIST_FILE = Path(__file__).with_name("api_allowlist.toml")


@dataclass(frozen=True)
class Exclusion:
    """A family of attribute or keyword names refused on every object, and why."""

    family: str
    reason: str
    attributes: tuple[str, ...]
    keywords: tuple[str, ...]


@dataclass(frozen=True)
class ApiSurface:
    """The attribute and keyword names code may use, from ``api_allowlist.toml``."""

    attributes: frozenset[str]
    keywords: frozenset[str]
    exclusions: tuple[Exclusion, ...]


@cache
def api_surface() -> ApiSurface:
    with ALLOWLIST_FILE.open("rb") as handle:
        data = tomllib.load(handle)
    exclusions = tuple(Exclusion(family, entry["reason"], tuple(entry["attributes"]),
                                 tuple(entry["keywords"]))
                       for family, entry in data["excluded"].items())
    return ApiSurface(frozenset(data["allowed"]["attributes"]),
                      frozenset(data["allowed"]["keywords"]), exclusions)


@lru_cache(maxsize=1 << 16)  # names come from the code: bounded, unlike functools.cache
def excluded(name: str, kind: str) -> Exclusion | None:
    """The excluded family ``name`` belongs to as an attribute or a keyword, if any."""
    for exclusion in api_surface().exclusions:
        patterns = exclusion.attributes if kind == "attributes" else exclusion.keywords
        if any(fnmatchcase(name, pattern) for pattern in patterns):
            return exclusion
    return None


@dataclass(frozen=True)
class Policy:
    """The allow-lists one validator applies (defaults plus the user's extras)."""

    modules: Mapping[str, tuple[str, ...] | None] = field(
        default_factory=lambda: dict(ALLOWED_MODULES))
    read_dirs: tuple[str, ...] = READ_DIRS
    write_dirs: tuple[str, ...] = WRITE_DIRS
    extra_attributes: frozenset[str] = frozenset()
    extra_keywords: frozenset[str] = frozenset()

    @classmethod
    def with_extras(cls, modules: Iterable[str] = (), read_paths: Iterable[str] = (),
                    write_paths: Iterable[str] = (), attributes: Iterable[str] = (),
                    keywords: Iterable[str] = ()) -> Policy:
        allowed = dict(ALLOWED_MODULES)
        allowed.update({name: None for name in modules})
        writes = tuple(_normalise_dir(p) for p in write_paths)
        return cls(allowed,
                   READ_DIRS + tuple(_normalise_dir(p) for p in read_paths) + writes,
                   WRITE_DIRS + writes, frozenset(attributes), frozenset(keywords))

    def extra_module(self, name: str) -> bool:
        """A module the user added: its members are not held to the attribute list."""
        return name in self.modules and name not in ALLOWED_MODULES

    def attribute_allowed(self, name: str) -> bool:
        """On the list (or the user's extras) and in no excluded family."""
        return (name in api_surface().attributes or name in self.extra_attributes) and \
            excluded(name, "attributes") is None

    def keyword_allowed(self, name: str) -> bool:
        return (name in api_surface().keywords or name in self.extra_keywords) and \
            excluded(name, "keywords") is None

    def module_allowed(self, name: str) -> bool:
        return name in self.modules

    def is_package_prefix(self, name: str) -> bool:
        """True if ``name`` only leads to allowed submodules (``numpy.lib``, ``statsmodels``)."""
        return any(allowed.startswith(name + ".") for allowed in self.modules)

    def name_allowed(self, module: str, name: str) -> bool:
        patterns = self.modules.get(module)
        return patterns is None or any(fnmatchcase(name, p) for p in patterns)

    def allowed_names(self, module: str) -> str:
        return ", ".join(self.modules.get(module) or ())
