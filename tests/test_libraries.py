"""One list of libraries (jupyter_analyst/libraries.py): what the image installs, what the
validator lets code import, what the prompt offers, what pyproject.toml depends on, and what
`doctor` reports when the host and the image disagree."""

from __future__ import annotations

import io
import re
import tomllib
import uuid
from importlib.metadata import version
from pathlib import Path

import pytest
from conftest import docker_engine

from jupyter_analyst import cli
from jupyter_analyst.generation.prompts import LIBRARY_IMPORTS, SYSTEM_PROMPT
from jupyter_analyst.libraries import ANALYSIS, KERNEL, analysis_modules, image_requirements
from jupyter_analyst.safety import SafetyValidator
from jupyter_analyst.safety.policy import ALLOWED_MODULES
from jupyter_analyst.sandbox.engine import image_name

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
NOT_LISTED = ("pyarrow", "docker", "httpx", "IPython", "nbformat")  # installed, not for code


def _dependency_names() -> set[str]:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    return {re.split(r"[<>=!~ \[]", line, maxsplit=1)[0] for line in project["dependencies"]}


def test_the_image_pins_every_library_once():
    lines = image_requirements().splitlines()
    names = [line.split("==")[0] for line in lines]
    assert names == [lib.distribution for lib in (*ANALYSIS, *KERNEL)]
    assert len(set(names)) == len(names)
    assert all(re.fullmatch(r"[\w-]+==\d+(\.\d+)+", line) for line in lines)


def test_the_analysis_libraries_are_default_dependencies_not_an_extra():
    assert {lib.distribution for lib in ANALYSIS} <= _dependency_names()
    extras = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]
    assert "analysis" not in extras


def test_the_validator_allows_exactly_the_listed_libraries():
    third_party = {name.split(".")[0] for name in ALLOWED_MODULES} - set(
        __import__("sys").stdlib_module_names) - {"jupyter_analyst", "IPython"}
    assert third_party == analysis_modules()
    for lib in ANALYSIS:
        for module in lib.modules:
            assert any(name.split(".")[0] == module for name in ALLOWED_MODULES), module


@pytest.mark.parametrize("module", NOT_LISTED)
def test_an_installed_library_outside_the_list_cannot_be_imported(module):
    report = SafetyValidator().validate(f"import {module}\n")
    assert not report.allowed


def test_the_prompt_offers_the_listed_libraries_and_they_pass_the_validator():
    offered = [lib for lib in ANALYSIS if lib.offered]
    assert len(offered) >= 7
    listed = re.search(r"- Libraries: (.*?) and standard-library", SYSTEM_PROMPT, re.S).group(1)
    assert listed == ", ".join(lib.offered for lib in offered)
    for lib in offered:
        assert all(line in LIBRARY_IMPORTS for line in lib.imports)
    # Not offered: its figures are not part of an analysis result (docs/sandbox.md).
    assert "plotly" not in listed
    for line in LIBRARY_IMPORTS:
        assert SafetyValidator().validate(line + "\n").allowed, line


def test_the_host_has_the_image_versions_in_this_environment():
    """The development environment installs the image's versions, so the validator inspects
    what the sandbox runs (a user's environment may differ: `doctor` says so)."""
    assert cli.version_differences({lib.distribution: lib.version for lib in ANALYSIS}) == []


def test_a_difference_names_the_library_both_versions_and_the_fix():
    image = {lib.distribution: lib.version for lib in ANALYSIS}
    image["seaborn"] = "0.12.0"
    del image["scipy"]
    differences = cli.version_differences(image)
    assert differences == [("scipy", version("scipy"), None),
                           ("seaborn", version("seaborn"), "0.12.0")]
    fix = cli._versions_fix(differences)
    assert "pip install 'seaborn==0.12.0'" in fix and "jupyter-analyst build-image" in fix


# -- the real image ------------------------------------------------------------------------
@pytest.mark.docker
def test_the_image_contains_exactly_the_pinned_versions():
    client = docker_engine()
    found = cli._image_versions(client)
    assert found.pop("python").startswith("3.11.")
    assert found == {lib.distribution: lib.version for lib in (*ANALYSIS, *KERNEL)}


@pytest.mark.docker
def test_doctor_reports_an_image_whose_versions_differ(capsys, monkeypatch):
    """An image derived from the real one with another seaborn version in its metadata."""
    client = docker_engine()
    base = image_name()
    other = f"jupyter-analyst-sandbox:versions-{uuid.uuid4().hex[:8]}"
    dockerfile = (f"FROM {base}\nUSER 0:0\n"
                  "RUN sed -i 's/^Version: .*/Version: 0.12.0/' "
                  "/opt/venv/lib/python3.11/site-packages/seaborn-*.dist-info/METADATA\n"
                  "USER 10001:10001\n")
    client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=other, rm=True,
                        forcerm=True, pull=False)
    try:
        assert cli.main(["doctor"]) == 0
        assert "[ok] Host and image library versions agree" in capsys.readouterr().out
        monkeypatch.setenv("DOCKER_IMAGE_NAME", other)
        cli.main(["doctor"])
        out = capsys.readouterr().out
        here = version("seaborn")
        assert f"[!!] Host and image library versions differ: seaborn {here} here, 0.12.0 " \
               f"in the image" in out
        assert "pip install 'seaborn==0.12.0'" in out
        assert "scipy" not in out.split("differ:")[1].splitlines()[0]
    finally:
        client.images.remove(other, force=True)
