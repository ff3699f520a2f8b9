"""Which attributes of an allowed library are modules, by looking at the installed library.

Peers were bypassed through public attributes that happen to be modules
(``np.f2py.os``, ``pd.io.common.os``, ``plt.cbook.subprocess``). A hand-written list of such
names would always be one release behind, so the validator asks the library itself: it
imports the allow-listed module (only ever one from the policy, never a name taken from the
code unchecked) and inspects the attribute without running descriptors.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import re
import time
import warnings
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import lru_cache
from types import ModuleType


@dataclass(frozen=True)
class Kind:
    """What ``module.attr`` is: "module" (with its real name), "object" or "missing";
    "uninspectable" when the library cannot be imported where the validator runs."""

    kind: str
    module: str = ""


_MISSING = object()
_cache: dict[tuple[str, str], Kind] = {}
_modules: dict[str, ModuleType | None] = {}
import_seconds = 0.0  # time spent importing libraries, kept out of the validation budget


def _load(name: str) -> ModuleType | None:
    global import_seconds
    if name not in _modules:
        started = time.perf_counter()
        try:
            _modules[name] = importlib.import_module(name)
        except Exception:  # not installed, or broken: the caller fails closed
            _modules[name] = None
        import_seconds += time.perf_counter() - started
    return _modules[name]


def classify(module: str, attr: str) -> Kind:
    """Classify ``module.attr`` for an allowed ``module``; cached per process."""
    key = (module, attr)
    if key not in _cache:
        with warnings.catch_warnings():  # deprecation notices are the library's business
            warnings.simplefilter("ignore")
            _cache[key] = _classify(module, attr)
    return _cache[key]


def _classify(module: str, attr: str) -> Kind:
    parent = _load(module)
    if parent is None:
        return Kind("uninspectable")
    value = inspect.getattr_static(parent, attr, _MISSING)
    if value is _MISSING and hasattr(parent, "__path__"):
        # a submodule not imported yet (scipy loads them lazily)
        try:
            if importlib.util.find_spec(f"{module}.{attr}") is not None:
                return Kind("module", f"{module}.{attr}")
        except (ImportError, ValueError):
            pass
    if value is _MISSING:
        # attributes served by a module-level __getattr__ (lazy loading, deprecations)
        global import_seconds
        started = time.perf_counter()
        try:
            value = getattr(parent, attr)
        except Exception:
            return Kind("missing")
        finally:
            import_seconds += time.perf_counter() - started
    if isinstance(value, ModuleType):
        return Kind("module", value.__name__)
    return Kind("object")



def typical_objects() -> dict[str, object]:
    """The objects analysis code typically creates, by a readable name.

    The allow-list of attribute names was derived from these objects' public surface (with
    every allowed module's), and the inventory test walks them to find what an allowed
    attribute path reaches. Building them imports the analysis libraries and fits two small
    models, so this is for tests and tools, never for validating a cell.
    """
    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import pandas as pd
    import seaborn as sns
    import statsmodels.api as sm
    from sklearn.cluster import KMeans
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=24), "b": rng.normal(size=24),
                          "g": list("xyz") * 8,
                          "when": pd.date_range("2024-01-01", periods=24, freq="D")})
    series = frame["a"]
    dated = frame.set_index("when")["a"]
    figure, axes = plt.subplots()
    line, = axes.plot([1, 2], [3, 4])
    grid = sns.FacetGrid(frame, col="g")
    objects = {
        "DataFrame": frame, "Series": series, "Index": frame.index,
        "DatetimeIndex": dated.index, "MultiIndex": frame.set_index(["g", "b"]).index,
        "DataFrameGroupBy": frame.groupby("g"), "SeriesGroupBy": frame.groupby("g")["a"],
        "Rolling": series.rolling(3), "Expanding": series.expanding(),
        "ExponentialMovingWindow": series.ewm(span=3), "Resampler": dated.resample("W"),
        "StringMethods": frame["g"].str, "DatetimeProperties": frame["when"].dt,
        "TimedeltaProperties": frame["when"].diff().dt,
        "CategoricalAccessor": frame["g"].astype("category").cat,
        "Timestamp": frame["when"].iloc[0], "Timedelta": pd.Timedelta("1D"),
        "Styler": frame.style, "ndarray": frame[["a", "b"]].to_numpy(),
        "Generator": rng, "RandomState": np.random.RandomState(0),
        "LinearRegression": LinearRegression().fit(frame[["a"]], frame["b"]),
        "KMeans": KMeans(n_clusters=2, n_init=1, random_state=0).fit(frame[["a", "b"]]),
        "OLSResults": sm.OLS(frame["b"], sm.add_constant(frame["a"])).fit(),
        "Figure": figure, "Axes": axes, "Line2D": line, "FacetGrid": grid,
    }
    try:
        import plotly.express as px

        objects["plotly Figure"] = px.scatter(frame, x="a", y="b")
    except ImportError:  # plotly is optional
        pass
    return objects


@lru_cache(maxsize=1 << 16)  # names come from the code: a bounded cache
def data_attribute(name: str, frame_only: bool = False) -> bool:
    """True if a DataFrame, Series, Index or ndarray (only a DataFrame: ``frame_only``) has
    ``name`` as a real attribute.

    A name none of them has can only be a column (``df.price``) on a frame; asked of the
    installed libraries so that an attribute a new release adds is not taken for a column.
    """
    pandas, numpy = _load("pandas"), _load("numpy")
    if pandas is None or numpy is None:
        return True  # cannot tell: not a column
    classes = (pandas.DataFrame,) if frame_only else (
        pandas.DataFrame, pandas.Series, pandas.Index, numpy.ndarray)
    return any(inspect.getattr_static(cls, name, _MISSING) is not _MISSING for cls in classes)


_SECTION = re.compile(r"^(Parameters|Other Parameters|Returns|Attributes)\n-+\n(.*?)"
                      r"(?=^\S[^\n]*\n-+\n|\Z)", re.M | re.S)
_DOC_NAME = re.compile(r"^\s*(?:- )?(\w+)\s*:", re.M)


def public_surface(modules: dict[str, tuple[str, ...] | None]) -> tuple[set[str], set[str]]:
    """(attribute names, keyword names) the installed libraries document publicly.

    The public members of ``modules``, of the classes they export and of
    ``typical_objects()``; the parameter names of their functions and methods; the names
    in numpydoc Parameters, Returns and Attributes sections (fitted ``coef_``, result
    fields, keywords taken through ``**kwargs``); matplotlib's artist properties and
    their aliases; plotly's figure properties. This is where api_allowlist.toml came
    from; ``python -m jupyter_analyst.safety.introspect`` lists what it would add now.
    """
    attributes: set[str] = set()
    keywords: set[str] = set()
    seen: set[int] = set()

    def document(obj) -> None:
        try:
            doc = inspect.getdoc(obj) or ""
            params = inspect.signature(obj).parameters.values()
        except Exception:
            return
        keywords.update(p.name for p in params if p.kind not in (p.VAR_POSITIONAL,
                                                                  p.VAR_KEYWORD))
        for title, body in _SECTION.findall(doc):
            (keywords if "Parameters" in title else attributes).update(_DOC_NAME.findall(body))
        if any(p.kind == p.VAR_KEYWORD for p in params):
            keywords.update(n for n in re.findall(r"``(\w+)``", doc) if n.isidentifier())

    def take_class(cls: type) -> None:
        if id(cls) in seen:
            return
        seen.add(id(cls))
        document(cls)
        for name in _public(dir(cls)):
            attributes.add(name)
            value = inspect.getattr_static(cls, name, None)
            if isinstance(value, (staticmethod, classmethod)):
                value = value.__func__
            if callable(value):
                document(value)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, patterns in modules.items():
            module = _load(name)
            if module is None:
                continue
            for member in _public(dir(module)):
                if patterns is not None and not any(fnmatchcase(member, p) for p in patterns):
                    continue
                value = getattr(module, member, None)
                if isinstance(value, ModuleType):
                    continue
                attributes.add(member)
                if inspect.isclass(value):
                    take_class(value)
                elif callable(value):
                    document(value)
        for obj in typical_objects().values():
            take_class(type(obj))
            for name in _public(dir(obj)):
                attributes.add(name)
                try:
                    value = getattr(obj, name)
                except Exception:
                    continue
                if callable(value):
                    document(value)
                elif type(value).__module__.split(".")[0] in _LIBRARIES:
                    take_class(type(value))
        _plotting_properties(keywords)
        attributes.update(_pandas_option_words())
    return attributes, keywords


_LIBRARIES = ("pandas", "numpy", "matplotlib", "sklearn", "statsmodels", "scipy", "seaborn",
              "plotly")


def _public(names) -> list[str]:
    return [n for n in names if not n.startswith("_")]


def _plotting_properties(keywords: set[str]) -> None:
    """matplotlib artist properties (``lw=``, ``markersize=``) and plotly properties."""
    from matplotlib import artist, axes, collections, figure, image, legend, lines, patches, text

    for cls in (lines.Line2D, patches.Rectangle, patches.Patch, text.Text, text.Annotation,
                collections.PathCollection, collections.PolyCollection, axes.Axes,
                figure.Figure, image.AxesImage, legend.Legend):
        inspector = artist.ArtistInspector(cls)
        keywords.update(inspector.get_setters())
        for aliases in inspector.aliasd.values():
            keywords.update(aliases)
    graph_objects = _load("plotly.graph_objects")
    for name in _public(dir(graph_objects)) if graph_objects else ():
        cls = getattr(graph_objects, name)
        if inspect.isclass(cls):
            try:
                keywords.update(cls()._valid_props)
            except Exception:  # abstract or deprecated classes
                continue


def _pandas_option_words() -> set[str]:
    """The words of pandas' option names (``pd.options.display.max_rows``)."""
    pandas = _load("pandas")
    names = pandas.options.__dir__() if pandas else []
    words: set[str] = set()
    pending = [(pandas.options, n) for n in names] if pandas else []
    while pending:
        parent, name = pending.pop()
        words.add(name)
        child = getattr(parent, name, None)
        if type(child).__name__ == "DictWrapper":
            pending.extend((child, n) for n in child.__dir__())
    return words


def main() -> int:
    """Print the names the installed libraries document that the allow-list neither
    allows nor excludes: the candidates to review after a library upgrade."""
    from .policy import ALLOWED_MODULES, api_surface, excluded

    attributes, keywords = public_surface(ALLOWED_MODULES)
    surface = api_surface()
    for kind, names, allowed in (("attributes", attributes, surface.attributes),
                                 ("keywords", keywords, surface.keywords)):
        new = sorted(n for n in names - allowed if excluded(n, kind) is None)
        print(f"# {kind} documented by the installed libraries, not in api_allowlist.toml "
              f"({len(new)})")
        print("\n".join(new))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
