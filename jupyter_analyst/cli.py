"""``jupyter-analyst``: build the sandbox image, check the setup, list models, clean up, and
install a kernelspec."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .errors import AnalystError
from .generation.providers import PROBE_TIMEOUT, describe_all
from .sandbox.kernelspec import DISPLAY_NAME as KERNELSPEC_DISPLAY_NAME


def build_image_command(args: argparse.Namespace) -> int:
    from .sandbox.image import build_image

    mode = "offline" if args.offline else "registry" if args.registry else "auto"
    build_image(mode=mode, name=args.name, refresh=args.refresh)
    return 0


def doctor_command(args: argparse.Namespace) -> int:
    """Print each check as ok/problem with what to do, and which backend "auto" picks and
    why; exit 1 if the Docker backend is unusable."""
    from .generation import make_generator
    from .sandbox import BUBBLEWRAP_FIX, LOCAL_LABEL
    from .sandbox.engine import docker_client, image_name, require_image

    problems = 0

    def report(ok: bool, what: str, fix: str = "") -> None:
        nonlocal problems
        problems += not ok
        print(f"[{'ok' if ok else '!!'}] {what}")
        if fix and not ok:
            print(f"     -> {fix}")

    docker_ok = False
    try:
        client = docker_client(timeout=10)
        version = client.version()
        report(True, f"Docker engine {version.get('Version', '?')} is reachable")
        try:
            image = require_image(client)
            versions = _image_versions(client)
            report(True, f"Sandbox image {image_name()} ({image.short_id}, built "
                         f"{image.attrs.get('Created', '?')[:19]}): "
                         + ", ".join(f"{name} {v}" for name, v in versions.items() if v))
            differences = version_differences(versions)
            shown = "; ".join(f"{name} {here or 'missing'} here, {there or 'missing'} in the "
                              f"image" for name, here, there in differences)
            report(not differences, f"Host and image library versions differ: {shown}"
                   if differences else "Host and image library versions agree (major.minor)",
                   _versions_fix(differences) if differences else "")
            report(True, _runtime_line(client))
            docker_ok = True
            print(f"[ok] {_outputs_quota_line()}")
        except AnalystError as exc:
            report(False, exc.problem, exc.fix or "")
    except AnalystError as exc:
        report(False, exc.problem, exc.fix or "")
    bubblewrap_ok = _report_bubblewrap(report)
    _report_kernelspec(report)
    if docker_ok:
        report(True, "Backend for backend='auto': docker (isolated container)")
    elif bubblewrap_ok:
        report(True, f"Backend for backend='auto': {LOCAL_LABEL}, because Docker is not usable")
    else:
        report(False, "Backend for backend='auto': none: analyses stop with an error, since "
                      "neither Docker nor bubblewrap is usable", BUBBLEWRAP_FIX)
    has_key = bool(os.environ.get("ANTHROPIC_API_KEY"))
    report(has_key, "ANTHROPIC_API_KEY is " + ("set (not shown)" if has_key else "not set"),
           "Set ANTHROPIC_API_KEY to generate code with Claude; without it the offline "
           "generator handles common analyses.")
    generator = make_generator()
    print(f"[ok] Code generator: {generator.name}"
          + (f" ({generator.model})" if getattr(generator, "model", None) else ""))
    return 1 if not docker_ok else 0


def _runtime_line(client) -> str:
    """Which OCI runtimes the engine offers and which one the sandbox will use (SandboxError
    when SANDBOX_RUNTIME names one it does not have)."""
    from .sandbox.engine import GVISOR, RUNTIME_ENV, choose_runtime, engine_runtimes

    offered, default = engine_runtimes(client)
    chosen = choose_runtime(client) or default
    line = f"Container runtimes offered: {', '.join(offered)}; the sandbox uses {chosen}"
    if chosen == GVISOR:
        return line + " (gVisor)"
    if GVISOR in offered:
        return line + f" ({RUNTIME_ENV}=runsc would use gVisor)"
    return line + " (gVisor's runsc is not registered: docs/sandbox.md)"


def _outputs_quota_line() -> str:
    from .sandbox import SandboxLimits

    total = (f"{SandboxLimits.outputs_size // 1024**2} MiB and {SandboxLimits.outputs_files} "
             "files in total")
    if os.geteuid() != 0:
        return (f"outputs/ quota: {total}, checked by the host every second while code runs "
                "(a tmpfs, which only root can mount, would enforce it in the kernel)")
    return f"outputs/ quota: {total} (a tmpfs per sandbox)"


def _report_bubblewrap(report) -> bool:
    """bubblewrap and what it needs here (user namespaces, or setpriv for root)."""
    from .sandbox import BUBBLEWRAP_FIX, bubblewrap_problem
    from .sandbox.confine import SANDBOX_UID

    problem = bubblewrap_problem()
    if os.geteuid() == 0:
        how = f"as root: bwrap runs privileged, the kernel as uid {SANDBOX_UID} (setpriv)"
    else:
        clone = Path("/proc/sys/kernel/unprivileged_userns_clone")
        allowed = clone.read_text().strip() != "0" if clone.exists() else True
        limit = Path("/proc/sys/user/max_user_namespaces")
        count = limit.read_text().strip() if limit.exists() else "?"
        how = (f"unprivileged user namespaces {'allowed' if allowed else 'disabled'} "
               f"(max_user_namespaces {count})")
    if problem:
        report(False, f"Local backend: {problem} ({how})", BUBBLEWRAP_FIX)
    else:
        report(True, f"Local backend: bubblewrap works ({how})")
    return problem is None


def _report_kernelspec(report) -> None:
    """Whether the installed kernelspec starts from a Jupyter server in any environment."""
    from .sandbox.kernelspec import installed_problem

    folder, problem = installed_problem()
    if folder is None:
        report(True, f"Kernelspec '{KERNELSPEC_DISPLAY_NAME}': not installed (optional: "
                     "`jupyter-analyst install-kernelspec` runs notebooks in the sandbox)")
    elif problem:
        report(False, f"Kernelspec in {folder}: {problem}",
               "Reinstall it with `jupyter-analyst install-kernelspec`, run from the environment "
               "that has jupyter-analyst.")
    else:
        report(True, f"Kernelspec in {folder}: its interpreter runs the sandbox kernel, from a "
                     "Jupyter server in any environment")


def _image_versions(client) -> dict[str, str]:
    """Python's and each library's version inside the image, from package metadata (fast:
    nothing imported)."""
    from .libraries import ANALYSIS, KERNEL
    from .sandbox.engine import image_name

    names = [lib.distribution for lib in (*ANALYSIS, *KERNEL)]
    script = ("import importlib.metadata as m, json, platform; names = " + repr(names) + "\n"
              "def version(name):\n"
              "    try: return m.version(name)\n"
              "    except m.PackageNotFoundError: return None\n"
              "print(json.dumps({'python': platform.python_version(), "
              "**{name: version(name) for name in names}}))")
    output = client.containers.run(image_name(), ["python", "-c", script], remove=True,
                                   network_mode="none", read_only=True, cap_drop=["ALL"])
    return json.loads(output.decode())


def version_differences(image: dict[str, str | None]) -> list[tuple[str, str | None, str | None]]:
    """(library, host version, image version) for each analysis library whose major.minor
    differs: the validator judges code by the host's copy, the sandbox runs the image's."""
    from importlib.metadata import PackageNotFoundError, version

    from .libraries import ANALYSIS, minor

    differences = []
    for lib in ANALYSIS:
        try:
            here = version(lib.distribution)
        except PackageNotFoundError:
            here = None
        there = image.get(lib.distribution)
        if here is None or there is None or minor(here) != minor(there):
            differences.append((lib.distribution, here, there))
    return differences


def _versions_fix(differences: list[tuple[str, str | None, str | None]]) -> str:
    pins = " ".join(f"'{name}=={there}'" for name, _, there in differences if there)
    fixes = [f"install the image's versions here: pip install {pins}"] if pins else []
    if any(there is None for _, _, there in differences):
        fixes.append("rebuild the image (`jupyter-analyst build-image`): it lacks a library")
    text = "; ".join(fixes)
    return text[:1].upper() + text[1:] + "."


def models_command(args: argparse.Namespace) -> int:
    """Each provider: configured or not, and whether it answers a short request."""
    print(describe_all(timeout=args.timeout))
    return 0


def cleanup_command(args: argparse.Namespace) -> int:
    from .sandbox.docker_provisioner import unmount_stale_outputs
    from .sandbox.engine import docker_client, remove_containers

    client = docker_client(timeout=30)
    removed = remove_containers(client, orphans_only=not args.all)
    what = "sandbox containers" if args.all else "orphaned sandbox containers"
    unmounted = unmount_stale_outputs()
    quotas = f" and unmounted {unmounted} orphaned outputs/ quotas" if unmounted else ""
    print(f"Removed {removed} {what}{quotas}.")
    return 0


def install_kernelspec_command(args: argparse.Namespace) -> int:
    from .sandbox.kernelspec import install, interpreter

    path = install(user=args.user, prefix=args.prefix)
    print(f"Installed the kernelspec '{KERNELSPEC_DISPLAY_NAME}' in {path}; it runs "
          f"{interpreter()}, so a Jupyter server in any environment can start it.")
    print("Notebooks on it run in the Docker sandbox: the notebook's folder is the working "
          "directory (read-only, so pd.read_csv('sales.csv') works), and files written to "
          "outputs/ are kept in outputs/ next to the notebook when the kernel ends.")
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="jupyter-analyst",
        description="Build the sandbox image, check the setup, list models, clean up, install a "
                    "kernelspec.")
    commands = root.add_subparsers(dest="command", required=True)

    build = commands.add_parser("build-image", help="Build the Docker sandbox image.")
    how = build.add_mutually_exclusive_group()
    how.add_argument("--offline", action="store_true",
                     help="Base it on a debootstrap root file system (no registry needed).")
    how.add_argument("--registry", action="store_true",
                     help="Base it on python:3.11-slim-bookworm from the registry.")
    build.add_argument("--refresh", action="store_true",
                       help="Rebuild everything, including the offline base.")
    build.add_argument("--name", help="Image name (default: $DOCKER_IMAGE_NAME or "
                                      "jupyter-analyst-sandbox:latest).")
    build.set_defaults(run=build_image_command)

    doctor = commands.add_parser("doctor", help="Check the engine, the image, the API key.")
    doctor.set_defaults(run=doctor_command)

    models = commands.add_parser(
        "models", help="List the model providers that are configured and whether each answers.")
    models.add_argument("--timeout", type=float, default=PROBE_TIMEOUT, metavar="SECONDS",
                        help=f"How long to wait for each provider (default: {PROBE_TIMEOUT:g}).")
    models.set_defaults(run=models_command)

    cleanup = commands.add_parser("cleanup", help="Remove sandbox containers of dead sessions.")
    cleanup.add_argument("--all", action="store_true",
                         help="Remove every sandbox container, also of running sessions.")
    cleanup.set_defaults(run=cleanup_command)

    kernel = commands.add_parser("install-kernelspec",
                                 help=f"Install the '{KERNELSPEC_DISPLAY_NAME}' kernelspec.")
    where = kernel.add_mutually_exclusive_group()
    where.add_argument("--user", action="store_true", help="Install for the current user.")
    where.add_argument("--prefix",
                       help="Install under this prefix (default: this Python environment).")
    kernel.set_defaults(run=install_kernelspec_command)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except AnalystError as exc:
        print(f"Error: {exc.problem}", file=sys.stderr)
        if exc.fix:
            print(exc.fix, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
