"""Start one sandbox kernel as a hardened Kubernetes pod (run by Enterprise Gateway).

The Kubernetes counterpart of gateway_image/kernelspec/launch_service.py, whose caps and
constants it imports (the gateway image carries that script; this kernelspec's
PYTHONPATH names its folder). Enterprise Gateway's KubernetesProcessProxy runs this
script with the kernel's id, the gateway's response address and public key; it creates
the pod from kernel-pod.yaml.j2 and exits, and the process proxy then finds the pod by
its kernel_id label and waits for the kernel's launcher to send its connection info back.

Everything the pod is made of comes from the operator (the gateway's environment, passed
on through EG_INHERITED_ENVS) or from this kernelspec, never from the client: the image
(JUPYTER_ANALYST_KERNEL_IMAGE), the namespace (KERNEL_NAMESPACE in kernel.json, whose
NetworkPolicies confine the pod), the limits (JUPYTER_ANALYST_KERNEL_MEMORY bytes, _CPUS
cores, _FILE_SIZE bytes, _OUTPUTS_SIZE bytes; a client's KERNEL_MEMORY, ... may ask for
less, never more). Enterprise Gateway's own template reads every KERNEL_* variable a
client sends (image, uid, volumes, service account); this one reads none of them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from launch_service import IMAGE, LAUNCHER, TMP_BYTES, UID, limit

TEMPLATE = Path(__file__).resolve().with_name("kernel-pod.yaml.j2")
KERNEL_JSON = TEMPLATE.with_name("kernel.json")
# Kubernetes has no rlimit field: the kernel's first process sets them for itself and its
# children (as Swarm's Ulimits do), then runs the launcher.
RLIMITS = ("import os, resource, sys; "
           "resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]),) * 2); "
           "resource.setrlimit(resource.RLIMIT_CORE, (0, 0)); "
           "os.execv(sys.executable, [sys.executable] + sys.argv[2:])")


def pod_values(kernel_id: str, response_address: str, public_key: str,
               port_range: str | None = None) -> dict:
    """The template's values for one kernel, from the operator's settings and caps."""
    namespace = json.loads(KERNEL_JSON.read_text())["env"]["KERNEL_NAMESPACE"]
    asked = os.environ.get("KERNEL_NAMESPACE", namespace)
    if asked != namespace:
        # The gateway looks for the pod where the client said; refuse rather than start a
        # kernel it cannot find, outside the namespace whose NetworkPolicies confine it.
        sys.exit(f"KERNEL_NAMESPACE {asked!r} is not the kernels' namespace {namespace!r}.")
    command = ["python", "-c", RLIMITS, str(int(limit("FILE_SIZE", 512 * 1024**2))),
               LAUNCHER, "--kernel-id", kernel_id, "--response-address", response_address,
               "--public-key", public_key]
    if port_range and port_range != "0..0":
        command += ["--port-range", port_range]
    return {
        "name": f"jupyter-analyst-kernel-{kernel_id}",
        "namespace": namespace,
        "kernel_id": kernel_id,
        "image": os.environ.get("JUPYTER_ANALYST_KERNEL_IMAGE", IMAGE),
        "command": command,
        "uid": int(UID.split(":")[0]),
        "memory": int(limit("MEMORY", 2 * 1024**3)),
        "millicpus": max(1, int(limit("CPUS", 1.0) * 1000)),
        "tmp_bytes": TMP_BYTES,
        "outputs_bytes": int(limit("OUTPUTS_SIZE", 512 * 1024**2)),
    }


def render_pod(values: dict) -> dict:
    """kernel-pod.yaml.j2 filled in: the Pod to create, as a dict."""
    import jinja2
    import yaml

    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False,
                                     keep_trailing_newline=True)
    return yaml.safe_load(environment.from_string(TEMPLATE.read_text()).render(**values))


def main() -> None:
    parser = argparse.ArgumentParser()
    for option in ("kernel-id", "response-address", "public-key", "port-range"):
        parser.add_argument(f"--{option}", required=option != "port-range")
    args = parser.parse_args()
    values = pod_values(args.kernel_id, args.response_address, args.public_key,
                        args.port_range)

    from kubernetes import client, config

    config.load_incluster_config()  # the gateway pod's service account (its Role: pods only)
    client.CoreV1Api().create_namespaced_pod(values["namespace"], render_pod(values))


if __name__ == "__main__":
    main()
