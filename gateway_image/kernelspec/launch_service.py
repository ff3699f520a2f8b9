"""Start one sandbox kernel as a hardened Docker Swarm service (run by Enterprise Gateway).

Enterprise Gateway's DockerSwarmProcessProxy runs this script with the kernel's id, the
gateway's response address and public key; it creates the service and exits, and the
process proxy then waits for the kernel's launcher to send its connection info back.

The hardening is the operator's, read from the gateway's environment, never from the
client: the image (JUPYTER_ANALYST_KERNEL_IMAGE), the network (EG_DOCKER_NETWORK, an
internal overlay network that reaches nothing but the gateway), and the limits
(JUPYTER_ANALYST_KERNEL_MEMORY bytes, _CPUS cores, _PIDS processes, _FILE_SIZE bytes,
_OUTPUTS_SIZE bytes of the outputs/ tmpfs); a client may ask for less, never more.
The kernel runs as the image's non-root user, on a read-only root file system with a
small /tmp, without capabilities or new privileges, and is never restarted by Swarm:
a kernel that dies is reported to the client, which starts a new one.
"""

from __future__ import annotations

import argparse
import os

import docker
from docker.types import ContainerSpec, Mount, Resources, RestartPolicy, TaskTemplate

UID = "10001:10001"  # the sandbox image's user
IMAGE = "jupyter-analyst-sandbox:gateway"
LAUNCHER = "/opt/launcher/launch_ipykernel.py"
# Sets no_new_privs, then runs the launcher: Swarm services on engines before API 1.46
# cannot ask for it, and any process may set it for itself and its children.
NO_NEW_PRIVILEGES = ("import ctypes, os, sys; "
                     "assert ctypes.CDLL(None, use_errno=True).prctl(38, 1, 0, 0, 0) == 0; "
                     "os.execv(sys.executable, [sys.executable] + sys.argv[1:])")
TMP_BYTES = 256 * 1024**2


def limit(name: str, default: float) -> float:
    """The operator's cap (JUPYTER_ANALYST_KERNEL_<name>), or the client's lower request
    (KERNEL_<name>, which Enterprise Gateway passes on from the kernel start request)."""
    cap = float(os.environ.get(f"JUPYTER_ANALYST_KERNEL_{name}", default))
    try:
        asked = float(os.environ.get(f"KERNEL_{name}", cap))
    except ValueError:
        asked = cap
    return min(cap, asked) if asked > 0 else cap


def main() -> None:
    parser = argparse.ArgumentParser()
    for option in ("kernel-id", "response-address", "public-key", "port-range"):
        parser.add_argument(f"--{option}", required=option != "port-range")
    args = parser.parse_args()

    image = os.environ.get("JUPYTER_ANALYST_KERNEL_IMAGE", IMAGE)  # never the client's KERNEL_IMAGE
    network = os.environ["EG_DOCKER_NETWORK"]
    command = ["python", "-c", NO_NEW_PRIVILEGES, LAUNCHER, "--kernel-id", args.kernel_id,
               "--response-address", args.response_address, "--public-key", args.public_key]
    if args.port_range and args.port_range != "0..0":
        command += ["--port-range", args.port_range]
    file_size = int(limit("FILE_SIZE", 512 * 1024**2))
    spec = ContainerSpec(
        image=image,
        command=command,
        user=UID,
        env={"KERNEL_ID": args.kernel_id, "HOME": "/tmp"},
        labels={"kernel_id": args.kernel_id, "jupyter-analyst.gateway-kernel": "1"},
        mounts=[Mount("/tmp", None, type="tmpfs", tmpfs_size=TMP_BYTES, tmpfs_mode=0o1777),
                Mount("/sandbox/outputs", None, type="tmpfs", tmpfs_mode=0o1777,
                      tmpfs_size=int(limit("OUTPUTS_SIZE", 512 * 1024**2)))],
        read_only=True,
        cap_drop=["ALL"],
        init=True,
        stop_grace_period=2 * 10**9,
    )
    # An engine API 1.41 field that docker-py has no argument for yet.
    spec["Ulimits"] = [{"Name": "fsize", "Soft": file_size, "Hard": file_size},
                       {"Name": "core", "Soft": 0, "Hard": 0}]
    resources = Resources(cpu_limit=int(limit("CPUS", 1.0) * 1e9),
                          mem_limit=int(limit("MEMORY", 2 * 1024**3)))
    resources["Limits"]["Pids"] = int(limit("PIDS", 256))
    task = TaskTemplate(container_spec=spec, resources=resources,
                        restart_policy=RestartPolicy(condition="none"),
                        networks=[network])
    client = docker.from_env()
    client.api.create_service(task, name=f"jupyter-analyst-kernel-{args.kernel_id}",
                              labels={"kernel_id": args.kernel_id,
                                      "jupyter-analyst.gateway-kernel": "1"})


if __name__ == "__main__":
    main()
