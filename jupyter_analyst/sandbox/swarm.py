"""Enterprise Gateway on this machine's Docker Swarm: build its images, start and stop it.

What an operator of a single-node Swarm (and the tests) use to stand up the cluster side
of the gateway backend: ``build_images`` makes the kernel image (the sandbox image plus
the gateway's kernel launcher) and the gateway image from ``gateway_image/``, with the
Python packages installed by the host's pip (no network in the build); ``start_gateway``
runs the gateway as a container published on 127.0.0.1, attached to an internal overlay
network that is the kernels' only network. Needs ``docker swarm init`` first.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import SandboxError
from .engine import RECIPE_LABEL, docker_client, find_image, image_name

RECIPE = Path(__file__).resolve().parents[2] / "gateway_image"
KERNEL_IMAGE = "jupyter-analyst-sandbox:gateway"
GATEWAY_IMAGE = "jupyter-analyst-gateway:latest"
NETWORK = "jupyter-analyst-kernels"
SUBNET = "10.231.7.0/24"
GATEWAY_IP = "10.231.7.250"  # fixed, so the kernels' launcher knows where to answer
GATEWAY_LABEL = "jupyter-analyst.gateway"
ENTERPRISE_GATEWAY = "jupyter_enterprise_gateway==3.3.0"
LAUNCHER_FILES = {"python/scripts/launch_ipykernel.py": "launch_ipykernel.py",
                  "shared/scripts/server_listener.py": "server_listener.py"}
SWARM_FIX = "Run `docker swarm init --advertise-addr 127.0.0.1` (a single-node Swarm)."


@dataclass
class Gateway:
    url: str
    token: str
    container: Any


def _pip(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", "-q", *args], capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise SandboxError(f"pip could not fetch the gateway's packages: "
                           f"{done.stderr.strip()[-500:]}",
                           "Check the package index access (pip config list).")


def _target(into: Path, *requirements: str) -> None:
    """Install for the image's Python (3.11, glibc 2.36) into ``into``, wheels only."""
    _pip("install", "--target", str(into), "--platform", "manylinux2014_x86_64",
         "--python-version", "3.11", "--implementation", "cp", "--only-binary=:all:",
         *requirements)


def recipe_digest(sandbox_id: str) -> str:
    digest = hashlib.sha256(sandbox_id.encode())
    for path in sorted(p for p in RECIPE.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(RECIPE)).encode() + path.read_bytes())
    return digest.hexdigest()


def build_images(log=print) -> None:
    """Build the kernel and gateway images from the sandbox image, unless up to date."""
    client = docker_client(timeout=1800)
    sandbox = find_image(client, image_name())
    if sandbox is None:
        raise SandboxError(f"The sandbox image {image_name()} is missing.",
                           "Build it first: `jupyter-analyst build-image`.")
    digest = recipe_digest(sandbox.id)
    wanted = [name for name in (KERNEL_IMAGE, GATEWAY_IMAGE)
              if (image := find_image(client, name)) is None
              or image.labels.get(RECIPE_LABEL) != digest]
    if not wanted:
        return
    with tempfile.TemporaryDirectory(prefix="jupyter-analyst-gateway-") as context:
        context = Path(context)
        for item in ("Dockerfile", "kernelspec", "shim"):
            source = RECIPE / item
            (shutil.copytree if source.is_dir() else shutil.copy2)(source, context / item)
        log("Fetching the gateway's packages with the host's pip...")
        site = context / "gateway-site"
        _target(site, "-r", str(RECIPE / "requirements-gateway.txt"))
        _target(site, "--no-deps", ENTERPRISE_GATEWAY)
        _target(context / "kernel-site", "-r", str(RECIPE / "requirements-kernel.txt"))
        _launcher(context)
        for name in wanted:
            target = "kernel" if name == KERNEL_IMAGE else "gateway"
            log(f"Building {name}...")
            try:
                client.images.build(path=str(context), target=target, tag=name, rm=True,
                                    buildargs={"SANDBOX_IMAGE": image_name()},
                                    labels={RECIPE_LABEL: digest})
            except Exception as exc:  # docker.errors.BuildError and APIError
                raise SandboxError(f"Building {name} failed: {exc}",
                                   "See the Docker engine's log.") from exc


def _launcher(context: Path) -> None:
    """The kernel launcher of gateway_provisioners, assembled as its packaging does."""
    wheels = context / "wheels"
    _pip("download", "--no-deps", "--dest", str(wheels), "gateway_provisioners==0.5.0")
    (context / "launcher").mkdir()
    with zipfile.ZipFile(next(wheels.glob("gateway_provisioners-*.whl"))) as wheel:
        for inside, name in LAUNCHER_FILES.items():
            data = wheel.read(f"gateway_provisioners/kernel-launchers/{inside}")
            (context / "launcher" / name).write_bytes(data)
    shutil.rmtree(wheels)


def start_gateway(port: int, token: str, limits: dict[str, int | float] | None = None,
                  name: str = "jupyter-analyst-gateway") -> Gateway:
    """Run Enterprise Gateway on 127.0.0.1:``port``; its kernels get only ``NETWORK``."""
    import docker.errors

    client = docker_client()
    if client.info().get("Swarm", {}).get("LocalNodeState") != "active":
        raise SandboxError("Docker Swarm is not active on this engine.", SWARM_FIX)
    try:
        client.networks.get(NETWORK)
    except docker.errors.NotFound:
        ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=SUBNET)])
        client.networks.create(NETWORK, driver="overlay", internal=True, attachable=True,
                               ipam=ipam, labels={GATEWAY_LABEL: "1"})
    env = {"EG_DOCKER_NETWORK": NETWORK, "EG_RESPONSE_IP": GATEWAY_IP,
           "EG_AUTH_TOKEN": token, "JUPYTER_ANALYST_KERNEL_IMAGE": KERNEL_IMAGE,
           # Idle kernels are culled after an hour; busy ones never.
           "EG_CULL_IDLE_TIMEOUT": "3600", "EG_CULL_INTERVAL": "60"}
    env.update({f"JUPYTER_ANALYST_KERNEL_{k.upper()}": str(v) for k, v in (limits or {}).items()})
    # The gateway passes none of its own environment to the launch script unless told to.
    env["EG_INHERITED_ENVS"] = ",".join(k for k in env if k.startswith("JUPYTER_ANALYST_"))
    container = client.containers.create(
        GATEWAY_IMAGE, name=name, environment=env, labels={GATEWAY_LABEL: "1"},
        ports={"8888/tcp": ("127.0.0.1", port)},
        volumes={"/var/run/docker.sock": {"bind": "/var/run/docker.sock", "mode": "rw"}})
    client.networks.get(NETWORK).connect(container, ipv4_address=GATEWAY_IP)
    container.start()
    gateway = Gateway(f"http://127.0.0.1:{port}", token, container)
    _wait_until_up(gateway)
    return gateway


def _wait_until_up(gateway: Gateway, timeout: float = 60) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    request = urllib.request.Request(f"{gateway.url}/api/kernelspecs",
                                     headers={"Authorization": f"token {gateway.token}"})
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(request, timeout=5):
                return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(1)
    logs = gateway.container.logs(tail=20).decode(errors="replace")
    raise SandboxError(f"Enterprise Gateway did not come up: {logs}", "See its log above.")


def stop_gateway(gateway: Gateway) -> None:
    """Stop the gateway and remove the kernel services it started."""
    client = docker_client()
    for service in client.services.list(filters={"label": "jupyter-analyst.gateway-kernel"}):
        service.remove()
    gateway.container.remove(force=True)
