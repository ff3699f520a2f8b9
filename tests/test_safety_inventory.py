"""Inventory: what the attribute paths the validator allows actually reach.

Walks the public attributes of every allowed module and of the objects analysis typically
creates (introspect.typical_objects) to depth 3, following only paths the real validator
allows, and fails when one reaches the operating system, the interpreter or raw memory.
A library upgrade that adds such a path under an allowed name fails here.
"""

from __future__ import annotations

import builtins
import importlib
import io
import types
import warnings
from functools import cache

import pytest

from jupyter_analyst.safety import SafetyValidator
from jupyter_analyst.safety.introspect import typical_objects
from jupyter_analyst.safety.policy import ALLOWED_MODULES

DEPTH = 3
FORBIDDEN_MODULES = {"ctypes", "_ctypes", "os", "posix", "nt", "sys", "subprocess", "builtins",
                     "importlib", "pathlib", "io", "_io", "shutil", "socket", "pickle",
                     "code", "codeop", "runpy", "webbrowser", "pytest", "tempfile"}
DANGEROUS_BUILTINS = {id(getattr(builtins, n)) for n in (
    "eval", "exec", "compile", "open", "getattr", "setattr", "delattr", "__import__",
    "globals", "locals", "vars", "breakpoint", "input")}
validator = SafetyValidator()


def _danger(value) -> str | None:
    """What is wrong with reaching ``value``, or None."""
    if isinstance(value, types.ModuleType):
        root = value.__name__.split(".")[0]
        return f"the module {value.__name__}" if root in FORBIDDEN_MODULES else None
    if id(value) in DANGEROUS_BUILTINS:
        return f"the builtin {value.__name__}"
    if isinstance(value, (types.CodeType, types.FrameType, types.TracebackType)):
        return f"a {type(value).__name__}"
    kind = type(value)
    root = (kind.__module__ or "").split(".")[0]
    if "ctypes" in kind.__name__.lower() or root in ("ctypes", "_ctypes"):
        return f"a ctypes object ({kind.__module__}.{kind.__name__})"
    if root in ("pathlib", "os", "posix", "subprocess", "socket"):
        return f"a {kind.__module__}.{kind.__name__}"
    if isinstance(value, io.IOBase) and not isinstance(value, (io.StringIO, io.BytesIO)):
        return f"a file object ({kind.__name__})"
    if isinstance(value, type) and (value.__module__ or "").split(".")[0] in (
            "pathlib", "ctypes", "_ctypes", "subprocess"):
        return f"the class {value.__module__}.{value.__name__}"
    return None


@cache
def _object_attribute_allowed(name: str) -> bool:
    return validator.validate(f"obj = make()\nobj.{name}").allowed


@cache
def _module_path_allowed(path: str) -> bool:
    return validator.validate(f"import {path.split(':')[0]} as m\nm.{path.split(':')[1]}"
                              ).allowed


def _public(value) -> list[str]:
    try:
        return sorted(n for n in dir(value) if not n.startswith("_"))
    except Exception:
        return []


def _walk(label: str, root, module: str | None, found: list[str], seen: set[int]) -> int:
    """Breadth first from ``root``; ``module`` is set while the path stays on modules."""
    frontier = [(label, root, module, "")]
    walked = 0
    for _ in range(DEPTH):
        following = []
        for path, value, on_module, module_path in frontier:
            if id(value) in seen or isinstance(value, (types.BuiltinFunctionType,
                                                       types.MethodType, types.FunctionType,
                                                       str, bytes, int, float)):
                continue
            seen.add(id(value))
            for name in _public(value):
                step = f"{module_path}.{name}".lstrip(".")
                allowed = (_module_path_allowed(f"{on_module}:{step}") if on_module
                           else _object_attribute_allowed(name))
                if not allowed:
                    continue
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        child = getattr(value, name)
                except Exception:
                    continue
                walked += 1
                problem = _danger(child)
                if problem:
                    found.append(f"{path}.{name} reaches {problem}")
                    continue
                stays = on_module and isinstance(child, types.ModuleType)
                following.append((f"{path}.{name}", child, on_module if stays else None,
                                  step if stays else ""))
        frontier = following
    return walked


def _modules():
    for name in ALLOWED_MODULES:
        try:
            yield name, importlib.import_module(name)
        except ImportError:
            continue


@pytest.fixture(scope="module")
def inventory():
    found: list[str] = []
    seen: set[int] = set()
    walked = 0
    for name, module in _modules():
        walked += _walk(name, module, name, found, seen)
    for label, obj in typical_objects().items():
        walked += _walk(label, obj, None, found, seen)
    return found, walked


def test_no_allowed_path_reaches_the_system_or_raw_memory(inventory):
    found, walked = inventory
    assert walked > 5000  # the walk really covered the libraries
    assert not found, "\n".join(found[:50])


def test_the_walk_reports_a_dangerous_path_under_an_allowed_name():
    # what a library upgrade could do: an ordinary public name that leads to the system
    import os

    class Gadget:
        mean = os
        sum = types.SimpleNamespace(path=os.path)

    found: list[str] = []
    _walk("Gadget", Gadget(), None, found, set())
    assert found == ["Gadget.mean reaches the module os"]


def test_the_walk_uses_the_validator_itself():
    # the policy under test is the validator's: an excluded name is not followed
    assert not _object_attribute_allowed("ctypes")
    assert not _object_attribute_allowed("this_dir")
    assert _object_attribute_allowed("mean")
    assert not _module_path_allowed("numpy:ctypeslib")
    assert _module_path_allowed("numpy:random.default_rng")
