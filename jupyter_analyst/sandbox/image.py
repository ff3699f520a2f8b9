"""Build the sandbox image, with or without a registry.

Both paths run the same ``sandbox_image/Dockerfile`` (in an installed package
``jupyter_analyst/sandbox_image/``); they differ in its base:

- **registry**: ``python:3.11-slim-bookworm``, pulled as usual;
- **offline**: a Debian bookworm root file system made with ``debootstrap`` from
  Debian packages (Python 3.11 from Debian) and loaded with ``docker import``.

The Python packages (pinned in ``jupyter_analyst/libraries.py``) are downloaded on the
host by the host's ``pip`` (so its
index, proxy and certificate settings apply, including a local mirror at an
air-gapped site) and installed in the build with ``--no-index``: the build itself
needs no network. An image whose recipe (Dockerfile, requirements, runtime module,
base) has not changed is not rebuilt, so a repeated build costs about a second.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import SandboxError
from ..libraries import image_requirements
from .engine import (
    IN_IMAGE_MODULES,
    RECIPE_LABEL,
    RUNTIME_LABEL,
    docker_client,
    find_image,
    image_name,
    runtime_digest,
)

REGISTRY_BASE = "python:3.11-slim-bookworm"
OFFLINE_BASE_REPO = "jupyter-analyst-base"
SUITE = "bookworm"
BASE_PACKAGES = ("python3",)  # everything else comes as wheels into /opt/venv
GLIBC_MINOR = 36  # bookworm's glibc 2.36: the newest manylinux tag its wheels may carry
MODES = ("auto", "registry", "offline")

Log = Callable[[str], None]


@dataclass
class BuildResult:
    image: str
    mode: str  # "registry", "offline" or "up to date"
    base: str
    seconds: float


def recipe_dir() -> Path:
    """The ``sandbox_image/`` folder with the Dockerfile: inside the installed package (the
    wheel puts it there), else at the top of the source checkout (an editable install)."""
    package = Path(__file__).resolve().parents[1]
    places = (package / "sandbox_image", package.parent / "sandbox_image")
    for folder in places:
        if (folder / "Dockerfile").is_file():
            return folder
    raise SandboxError(
        f"The image recipe (sandbox_image/Dockerfile) is in neither {places[0]} nor "
        f"{places[1]}: this installation of jupyter-analyst is incomplete.",
        "Reinstall it (`pip install --force-reinstall jupyter-analyst`), or build and tag the "
        "image yourself and set DOCKER_IMAGE_NAME.",
    )


def build_image(mode: str = "auto", name: str | None = None, refresh: bool = False,
                log: Log = print) -> BuildResult:
    """Build the sandbox image; ``mode`` "auto" uses the registry if it answers, else offline."""
    if mode not in MODES:
        raise SandboxError(f"Unknown build mode {mode!r}.", f"Use one of: {', '.join(MODES)}.")
    started = time.monotonic()
    client = docker_client(timeout=1800)
    name = name or image_name()
    recipe = recipe_dir()

    base, chosen = _choose_base(client, mode, refresh, log)
    digest = recipe_digest(recipe, client.images.get(base).id)
    current = find_image(client, name)
    up_to_date = current is not None and current.labels.get(RECIPE_LABEL) == digest \
        and current.labels.get(RUNTIME_LABEL) == runtime_digest()
    if up_to_date and not refresh:
        log(f"{name} is up to date (recipe {digest[:12]}); nothing to build.")
        return BuildResult(name, "up to date", base, time.monotonic() - started)

    log(f"Building {name} on {base} ({chosen} path)...")
    with tempfile.TemporaryDirectory(prefix="jupyter-analyst-build-") as context:
        context = Path(context)
        shutil.copy2(recipe / "Dockerfile", context / "Dockerfile")
        (context / "requirements.txt").write_text(image_requirements())
        package = context / "package" / "jupyter_analyst"
        package.mkdir(parents=True)
        (package / "__init__.py").write_text("")
        for module in IN_IMAGE_MODULES:
            shutil.copy2(module, package / module.name)
        download_wheels(context / "requirements.txt", context / "wheels",
                        client.info().get("Architecture", platform.machine()), log)
        _docker_build(client, context, name, base, digest, refresh, log)
    if current is not None and current.id != client.images.get(name).id:
        _remove_quietly(client, current.id)  # the superseded image, now untagged
    seconds = time.monotonic() - started
    log(f"Built {name} in {seconds:.0f} s ({chosen} path).")
    return BuildResult(name, chosen, base, seconds)


def recipe_digest(recipe: Path, base_id: str) -> str:
    """Hash of everything that goes into the image, so an unchanged recipe is not rebuilt."""
    digest = hashlib.sha256(base_id.encode())
    digest.update((recipe / "Dockerfile").read_bytes())
    digest.update(image_requirements().encode())
    for path in IN_IMAGE_MODULES:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _choose_base(client: Any, mode: str, refresh: bool, log: Log) -> tuple[str, str]:
    if mode in ("auto", "registry"):
        problem = _pull(client, REGISTRY_BASE, refresh)
        if problem is None:
            return REGISTRY_BASE, "registry"
        if mode == "registry":
            raise SandboxError(
                f"Cannot pull {REGISTRY_BASE}: {problem}",
                "Check the registry access, or build without one: "
                "`jupyter-analyst build-image --offline`.",
            )
        log(f"No registry ({problem}); building the base from Debian packages instead.")
    return offline_base(client, refresh, log), "offline"


def _pull(client: Any, reference: str, refresh: bool) -> str | None:
    """None when the image is present (or was pulled), else why not."""
    import docker.errors

    if not refresh and find_image(client, reference) is not None:
        return None
    repository, tag = reference.rsplit(":", 1)
    try:
        client.images.pull(repository, tag=tag)
        return None
    except docker.errors.APIError as exc:
        return str(exc.explanation or exc).splitlines()[0][:200]


def offline_base(client: Any, refresh: bool = False, log: Log = print) -> str:
    """A Debian bookworm base image with Python 3.11, made with debootstrap (cached by tag)."""
    mirror = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")
    security = os.environ.get("DEBIAN_SECURITY_MIRROR", "http://deb.debian.org/debian-security")
    recipe = f"{SUITE} {' '.join(BASE_PACKAGES)} {mirror} {security} v1"
    tag = f"{OFFLINE_BASE_REPO}:{SUITE}-{hashlib.sha256(recipe.encode()).hexdigest()[:12]}"
    if not refresh and find_image(client, tag) is not None:
        log(f"Using the existing offline base {tag}.")
        return tag
    _check_debootstrap()
    log(f"Making a Debian {SUITE} root file system with debootstrap from {mirror} ...")
    # Under /var/tmp: the root file system is a few hundred MB and /tmp may be small.
    with tempfile.TemporaryDirectory(prefix="jupyter-analyst-rootfs-", dir="/var/tmp") as work:
        root = Path(work) / "rootfs"
        try:
            _run(["debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
                  SUITE, str(root), mirror], "debootstrap")
            _apply_security_updates(root, mirror, security)
        finally:
            _unmount_below(root)
        _slim(root)
        log(f"Importing the root file system as {tag} ...")
        tar = subprocess.Popen(["tar", "--numeric-owner", "-C", str(root), "-c", "."],
                               stdout=subprocess.PIPE)
        try:
            client.api.import_image_from_stream(tar.stdout, repository=tag.split(":")[0],
                                                tag=tag.split(":")[1])
        finally:
            tar.stdout.close()
            if tar.wait() != 0:
                raise SandboxError("Packing the root file system failed.",
                                   "Check free space under /var/tmp and run the build again.")
    return tag


def _unmount_below(root: Path) -> None:
    """Unmount what a failed debootstrap may have left mounted (proc, sys, a bind of /dev),
    so deleting the work directory can never reach into the host's file systems."""
    with open("/proc/self/mounts") as mounts:
        points = [line.split()[1].encode().decode("unicode_escape") for line in mounts]
    for point in sorted((p for p in points if Path(p).is_relative_to(root)), reverse=True):
        subprocess.run(["umount", "--lazy", point], check=False)


def _check_debootstrap() -> None:
    if shutil.which("debootstrap") is None:
        raise SandboxError(
            "The offline image build needs debootstrap, which is not installed.",
            "Install it (`sudo apt-get install debootstrap`) and run the build again.",
        )
    if os.geteuid() != 0:
        raise SandboxError(
            "The offline image build runs debootstrap, which needs root.",
            "Run it as root: `sudo jupyter-analyst build-image` (only the build; the "
            "sandbox itself never runs as root).",
        )


def _apply_security_updates(root: Path, mirror: str, security: str) -> None:
    """debootstrap installs the release as published; bring it up to the security fixes."""
    (root / "etc/apt/sources.list").write_text(
        f"deb {mirror} {SUITE} main\n"
        f"deb {mirror} {SUITE}-updates main\n"
        f"deb {security} {SUITE}-security main\n"
    )
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND": "noninteractive",
           "LC_ALL": "C"}
    for step in (["apt-get", "update", "-q"], ["apt-get", "upgrade", "-y", "-q"],
                 ["apt-get", "clean"]):
        _run(["chroot", str(root), *step], "apt-get in the new root file system", env=env)


def _slim(root: Path) -> None:
    """Drop what nothing in the sandbox reads: package lists, caches, docs, translations."""
    for sub in ("var/lib/apt/lists", "var/cache/apt", "usr/share/doc", "usr/share/man",
                "usr/share/info", "usr/share/locale"):
        shutil.rmtree(root / sub, ignore_errors=True)
    (root / "var/lib/apt/lists/partial").mkdir(parents=True)
    # The engine provides /etc/resolv.conf and /etc/hostname at run time.
    for host_file in ("etc/resolv.conf", "etc/hostname"):
        (root / host_file).unlink(missing_ok=True)


def download_wheels(requirements: Path, target: Path, arch: str, log: Log = print) -> None:
    """Download the pinned wheels (and pip, used only during the build) with the host's pip."""
    target.mkdir(parents=True, exist_ok=True)
    arch = {"arm64": "aarch64", "amd64": "x86_64"}.get(arch, arch)
    platforms = [f"manylinux_2_{minor}_{arch}" for minor in range(5, GLIBC_MINOR + 1)]
    platforms += [f"manylinux{legacy}_{arch}" for legacy in ("1", "2010", "2014")]
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:",
               "--python-version", "3.11", "--implementation", "cp",
               "--abi", "cp311", "--abi", "abi3", "--abi", "none", "--dest", str(target),
               "--requirement", str(requirements), "pip"]
    for tag in platforms:
        command += ["--platform", tag]
    log("Downloading the Python wheels with the host's pip ...")
    _run(command, "pip download")


def _docker_build(client: Any, context: Path, name: str, base: str, digest: str,
                  refresh: bool, log: Log) -> None:
    import docker.errors

    try:
        labels = {RECIPE_LABEL: digest, RUNTIME_LABEL: runtime_digest()}
        for chunk in client.api.build(path=str(context), tag=name, buildargs={"BASE_IMAGE": base},
                                      labels=labels, rm=True, forcerm=True, nocache=refresh,
                                      pull=False, decode=True):
            if "error" in chunk:
                raise SandboxError(f"The image build failed: {chunk['error'].strip()}",
                                   "See the build log above; fix the cause and build again.")
            line = chunk.get("stream", "").strip()
            if line.startswith("Step "):
                log(f"  {line}")
    except docker.errors.APIError as exc:
        raise SandboxError(f"The image build failed: {exc.explanation or exc}",
                           "See the build log above; fix the cause and build again.") from exc


def _run(command: list[str], what: str, env: dict[str, str] | None = None) -> None:
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-15:])
        raise SandboxError(f"{what} failed (exit {result.returncode}):\n{tail}",
                           "Check the network access to the package mirrors (DEBIAN_MIRROR, "
                           "DEBIAN_SECURITY_MIRROR, pip's index) and run the build again.")


def _remove_quietly(client: Any, image_id: str) -> None:
    import docker.errors

    try:
        client.images.remove(image_id)
    except docker.errors.APIError:  # still used by a container, or already gone
        pass
