"""Shared fixtures: real data, a fixed-code generator seam, and CI-strict requirements."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from jupyter_analyst.generation.base import CodeGenerator, GeneratedCode

ROOT = Path(__file__).resolve().parents[1]
CORPORA = ROOT / "tests" / "corpora"  # copied in, with their licence notes
SEABORN = CORPORA / "seaborn-data"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(condition: bool, reason: str) -> None:
    """Skip locally when a real component is missing; in CI that is a failure."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


def read_seaborn(name: str) -> pd.DataFrame:
    return pd.read_csv(SEABORN / f"{name}.csv")


@pytest.fixture(scope="session")
def tips() -> pd.DataFrame:
    return read_seaborn("tips")


class StaticGenerator(CodeGenerator):
    """A generator that answers with the code it was given: the seam for pipeline tests.

    ``codes`` are returned in turn (the last one repeats), so a test can script a
    failing first try and a repaired second try.
    """

    name = "static"

    def __init__(self, *codes: str, can_repair: bool = False):
        self.codes = list(codes)
        self.can_repair = can_repair
        self.requests = []

    async def generate(self, request):
        self.requests.append(request)
        code = self.codes[min(len(self.requests), len(self.codes)) - 1]
        return GeneratedCode(code=code, explanation="fixed code for a test", generator=self.name,
                             usage={"input_tokens": 10, "output_tokens": 5})

    async def insights(self, request, metrics, output):
        return [f"{len(metrics)} metrics computed"], {"input_tokens": 1}


def fresh_shell():
    """The process-wide test IPython shell, without the extension and its %config (but
    with ``Analyze.prestart = False``).

    ``start_ipython()`` makes the shell only once per process (later calls return
    None), so tests share it: each starts from a shell with nothing of ours loaded.
    """
    from IPython.testing import globalipapp

    shell = globalipapp.start_ipython() or globalipapp.get_ipython()
    if "jupyter_analyst" in shell.extension_manager.loaded:
        shell.run_line_magic("unload_ext", "jupyter_analyst")
    shell.config.pop("Analyze", None)
    # Tests pick their backend after loading: no sandbox of the default backend starts at
    # load (tests/test_prestart.py covers the pre-start).
    shell.config.Analyze.prestart = False
    return shell


def analyst_shell(**settings):
    """``fresh_shell()`` with the extension loaded, then ``%config Analyze.<name> = <value>``
    for each setting, as a user would type it."""
    shell = fresh_shell()
    shell.run_line_magic("load_ext", "jupyter_analyst")
    for name, value in settings.items():
        shell.run_line_magic("config", f"Analyze.{name} = {value!r}")
    return shell


def docker_engine():
    """A docker-py client with the sandbox image built, or skip (fail in CI) without them."""
    from jupyter_analyst.errors import SandboxError
    from jupyter_analyst.sandbox.engine import docker_client, image_name

    try:
        client = docker_client(timeout=30)
    except SandboxError as exc:
        require(False, exc.problem)
    require(bool(client.images.list(name=image_name())),
            f"the sandbox image {image_name()} is not built (jupyter-analyst build-image)")
    return client
