"""The kernel the installed kernelspec starts: a relay to a kernel in the Docker sandbox.

    python -m jupyter_analyst.sandbox.notebook_kernel -f CONNECTION_FILE

A Jupyter server runs this with the connection file it wrote (tcp ports and a key),
in the notebook's folder. It starts a sandbox kernel with the Docker provisioner
(ipc sockets in a private run/, the notebook's folder read-only as data/), signed
with the server's key, and relays each channel between the server's ports and the
kernel's sockets; messages pass through unchanged, so the kernel checks the
server's signatures itself. It ends when the kernel ends (a shutdown request, or
a death, which the server's restarter answers by starting it again) or on SIGTERM;
if it is killed outright, the container's watchdog ends the container.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from typing import Any

import zmq
from jupyter_client.manager import AsyncKernelManager
from zmq.devices import ThreadProxy

from ..errors import AnalystError
from .kernelspec import KERNEL_NAME, SandboxSpecManager, kernelspec

PROVISIONER = "jupyter-analyst-docker"
# channel -> (the server's side, the kernel's side); the routing sockets keep the
# client's identity in front of each message, as a ROUTER/DEALER broker does.
CHANNELS = {
    "shell": (zmq.ROUTER, zmq.DEALER),
    "control": (zmq.ROUTER, zmq.DEALER),
    "stdin": (zmq.ROUTER, zmq.DEALER),
    "hb": (zmq.ROUTER, zmq.DEALER),
    "iopub": (zmq.XPUB, zmq.XSUB),
}
# The kernel sends an input request on stdin to the identity it saw on shell, so the
# shell and stdin relays connect to it under one identity.
RELAY_ID = b"jupyter-analyst-relay"
POLL = 1.0  # seconds between checks that the sandbox kernel still runs
SHUTDOWN_TIMEOUT = 30.0


def url(info: dict[str, Any], channel: str) -> str:
    port = info[f"{channel}_port"]
    if info["transport"] == "ipc":
        return f"ipc://{info['ip']}-{port}"
    return f"{info['transport']}://{info['ip']}:{port}"


def relay(server: dict[str, Any], kernel: dict[str, Any]) -> None:
    """One proxy thread per channel: bound where the server connects, connected to the
    kernel's socket."""
    for channel, (front, back) in CHANNELS.items():
        proxy = ThreadProxy(front, back)
        proxy.daemon = True  # they end with the process
        proxy.bind_in(url(server, channel))
        proxy.connect_out(url(kernel, channel))
        if back == zmq.DEALER:
            proxy.setsockopt_out(zmq.ROUTING_ID, RELAY_ID)
        proxy.start()


async def serve(connection_file: str) -> None:
    with open(connection_file) as handle:
        server = json.load(handle)
    spec = kernelspec([sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                      provisioner=PROVISIONER)
    manager = AsyncKernelManager(kernel_name=KERNEL_NAME,
                                 kernel_spec_manager=SandboxSpecManager(spec=spec))
    manager.session.key = server["key"].encode()
    manager.session.signature_scheme = server.get("signature_scheme", "hmac-sha256")
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, asyncio.current_task().cancel)
    try:
        await manager.start_kernel(cwd=os.getcwd())
        relay(server, manager.get_connection_info())
        while await manager.is_alive():
            await asyncio.sleep(POLL)
    finally:
        if manager.has_kernel:
            await asyncio.wait_for(manager.shutdown_kernel(now=True), SHUTDOWN_TIMEOUT)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {__spec__.name}")
    parser.add_argument("-f", dest="connection_file", required=True,
                        help="the connection file the Jupyter server wrote")
    args = parser.parse_args(argv)
    # Interrupts come as control messages (interrupt_mode "message"); a Ctrl-C meant for
    # the server's terminal must not end the relay.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        asyncio.run(serve(args.connection_file))
    except asyncio.CancelledError:  # SIGTERM: the kernel was shut down above
        pass
    except AnalystError as exc:  # the server's log shows this, and the kernel as dead
        print(f"The sandbox kernel could not start: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
