"""The libraries of the sandbox: the one list the rest is derived from.

- the sandbox image installs exactly these versions (``jupyter-analyst build-image`` writes its
  requirements from ``image_requirements()``);
- the validator lets generated code import the ``modules`` of ``ANALYSIS`` and nothing else
  outside the standard library (``safety/policy.py``);
- the generation prompt offers the ``offered`` ones, with their ``imports`` as examples;
- ``jupyter-analyst doctor`` compares the host's versions with the image's, because the
  validator inspects the host's libraries while the code runs with the image's.

pyproject.toml names the same distributions as default dependencies, with ranges rather than
pins so the package installs beside other software (tests/test_libraries.py checks both agree).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Library:
    distribution: str  # the name on PyPI
    version: str  # the version in the sandbox image
    modules: tuple[str, ...] = ()  # top-level modules generated code may import
    imports: tuple[str, ...] = ()  # the prompt's example imports
    offered: str = ""  # how the prompt names it ('' = not offered)


ANALYSIS = (
    Library("pandas", "3.1.1", ("pandas",), ("import pandas as pd",), "pandas"),
    Library("numpy", "2.4.6", ("numpy",), ("import numpy as np",), "numpy"),
    Library("scipy", "1.17.1", ("scipy",), ("from scipy import stats",), "scipy"),
    Library("statsmodels", "0.15.0", ("statsmodels",), ("import statsmodels.api as sm",),
            "statsmodels (`statsmodels.api`, `statsmodels.formula.api`)"),
    Library("scikit-learn", "1.9.1", ("sklearn",),
            ("from sklearn.linear_model import LinearRegression",), "scikit-learn submodules"),
    Library("matplotlib", "3.11.2", ("matplotlib", "mpl_toolkits"),
            ("import matplotlib.pyplot as plt",), "matplotlib"),
    Library("seaborn", "0.13.2", ("seaborn",), ("import seaborn as sns",), "seaborn"),
    # Importable (user code and templates may use it), not offered: an analysis result keeps
    # images, tables and metrics, and a plotly figure is none of them (docs/sandbox.md).
    Library("plotly", "7.1.0", ("plotly",)),
)

# In the image for the kernel itself, not for generated code to import.
KERNEL = (
    Library("ipykernel", "7.4.0"),  # matches the jupyter_client the host drives it with
    Library("pyarrow", "26.0.1"),  # reads the frames the host hands over as Parquet
    Library("nbformat", "5.11.1"),  # plotly's fig.show() needs it to emit its MIME bundle
)


def image_requirements() -> str:
    """The image's requirements file: every library, pinned."""
    return "".join(f"{lib.distribution}=={lib.version}\n" for lib in (*ANALYSIS, *KERNEL))


def analysis_modules() -> frozenset[str]:
    """The top-level modules of the analysis libraries."""
    return frozenset(module for lib in ANALYSIS for module in lib.modules)


def minor(version: str) -> tuple[str, ...]:
    """``major.minor`` of a version string: what the validator's view depends on."""
    return tuple(version.split(".")[:2])
