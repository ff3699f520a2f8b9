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
import time
import warnings
from dataclasses import dataclass
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


_frame_attributes: dict[tuple[str, bool], bool] = {}


def data_attribute(name: str, frame_only: bool = False) -> bool:
    """True if a DataFrame, Series, Index or ndarray (only a DataFrame: ``frame_only``) has
    ``name`` as a real attribute.

    A name none of them has can only be a column (``df.price``) on a frame; asked of the
    installed libraries so that an attribute a new release adds is not taken for a column.
    """
    key = (name, frame_only)
    if key not in _frame_attributes:
        pandas, numpy = _load("pandas"), _load("numpy")
        if pandas is None or numpy is None:
            return True  # cannot tell: not a column
        classes = (pandas.DataFrame,) if frame_only else (
            pandas.DataFrame, pandas.Series, pandas.Index, numpy.ndarray)
        _frame_attributes[key] = any(
            inspect.getattr_static(cls, name, _MISSING) is not _MISSING for cls in classes)
    return _frame_attributes[key]
