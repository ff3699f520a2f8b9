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

