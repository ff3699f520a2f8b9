"""Analysis templates: runnable notebook cells with a parameter block at the top.

The offline generator renders these same templates, so a template and what the
offline generator emits for its intent are one and the same code, e.g.
``get_template("distribution", frame="tips", column="total_bill")``.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from ..errors import InputError
from .base import Param, Template


def _discover() -> dict[str, Template]:
    """Every template defined in this package's modules: adding one is adding a module."""
    found: dict[str, Template] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name == "base":
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for value in vars(module).values():
            for candidate in value if isinstance(value, list) else [value]:
                if isinstance(candidate, Template):
                    found[candidate.name] = candidate
    return found


TEMPLATES: dict[str, Template] = _discover()

__all__ = ["TEMPLATES", "Param", "Template", "get_template", "list_templates", "template"]


def list_templates() -> list[str]:
    """Names of the available templates."""
    return list(TEMPLATES)


def template(name: str) -> Template:
    """The template called ``name`` (its description, parameters and insights)."""
    try:
        return TEMPLATES[name]
    except KeyError:
        raise InputError(
            f"There is no template called {name!r}.",
            f"Choose one of: {', '.join(TEMPLATES)}.",
        ) from None


def get_template(name: str, frame: str = "df", **bindings: Any) -> str:
    """Runnable code for template ``name`` on the frame bound as ``frame``.

    Bindings set its parameters (e.g. ``column="total_bill"``); unbound ones fall back
    to defaults chosen in the kernel, such as the first numeric column.
    """
    return template(name).render(frame, **bindings)
