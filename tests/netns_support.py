"""A private network of Linux network namespaces for fault tests that cut links without killing anyone.

One hub namespace holds a bridge; each member (etcd, each broker) gets a namespace of its own joined to
the bridge by a veth pair, on a private address 10.N.0.i/24; the test's own namespace joins the bridge
too (10.N.0.254), so the test reaches every member. `cut(member)` takes the member's link down inside
its namespace: it can reach nobody and nobody reaches it, while its process keeps running. Everything is
removed by `destroy()`, also after a failed test.

Making namespaces needs root (CAP_NET_ADMIN) and the `ip` tool; where either is missing,
`namespaces_unavailable()` says why and the test skips with that message.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field


def run(*command: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()}")


def namespaces_unavailable() -> str | None:
    """Why network namespaces cannot be made here, or None when they can."""
    if shutil.which("ip") is None:
        return "the `ip` tool (iproute2) is not installed"
    if os.geteuid() != 0:
        return "making network namespaces needs root (CAP_NET_ADMIN); CI runs as root"
    probe = f"lsprobe{os.getpid() % 100000}"
    try:
        run("ip", "netns", "add", probe)
        run("ip", "netns", "del", probe)
    except RuntimeError as exc:
        return f"cannot make a network namespace here: {exc}"
    return None


@dataclass
class PrivateNetwork:
    """Namespaces named `<tag>-<member>` around a bridge in `<tag>-hub`. Not thread-safe."""

    members: list[str]
    tag: str = field(default_factory=lambda: f"ls{os.getpid() % 10000}")
    subnet: int = field(default_factory=lambda: 200 + os.getpid() % 50)
    _made: list[str] = field(default_factory=list)
    _host_link: str | None = None

    def namespace(self, member: str) -> str:
        return f"{self.tag}-{member}"

    def address(self, member: str) -> str:
        return f"10.{self.subnet}.0.{self.members.index(member) + 1}"

    def prefix(self, member: str) -> tuple[str, ...]:
        """The command prefix that runs a program inside the member's namespace."""
        return ("ip", "netns", "exec", self.namespace(member))

    def _link(self, member: str) -> str:
        return f"{self.tag}m{self.members.index(member)}"

    def create(self) -> None:
        hub = self.namespace("hub")
        run("ip", "netns", "add", hub)
        self._made.append(hub)
        run("ip", "-n", hub, "link", "add", "br0", "type", "bridge")
        run("ip", "-n", hub, "link", "set", "br0", "up")
        for member in self.members:
            namespace, link = self.namespace(member), self._link(member)
            run("ip", "netns", "add", namespace)
            self._made.append(namespace)
            run("ip", "link", "add", link, "type", "veth", "peer", "name", f"{link}b")
            run("ip", "link", "set", link, "netns", namespace)
            run("ip", "link", "set", f"{link}b", "netns", hub)
            run("ip", "-n", namespace, "addr", "add", f"{self.address(member)}/24", "dev", link)
            run("ip", "-n", namespace, "link", "set", "lo", "up")
            run("ip", "-n", namespace, "link", "set", link, "up")
            run("ip", "-n", hub, "link", "set", f"{link}b", "master", "br0")
            run("ip", "-n", hub, "link", "set", f"{link}b", "up")
        host = f"{self.tag}h"
        run("ip", "link", "add", host, "type", "veth", "peer", "name", f"{host}b")
        self._host_link = host
        run("ip", "addr", "add", f"10.{self.subnet}.0.254/24", "dev", host)
        run("ip", "link", "set", host, "up")
        run("ip", "link", "set", f"{host}b", "netns", hub)
        run("ip", "-n", hub, "link", "set", f"{host}b", "master", "br0")
        run("ip", "-n", hub, "link", "set", f"{host}b", "up")

    def cut(self, member: str) -> None:
        """Take the member's only link down: its process runs on, reaching nobody."""
        run("ip", "-n", self.namespace(member), "link", "set", self._link(member), "down")

    def heal(self, member: str) -> None:
        run("ip", "-n", self.namespace(member), "link", "set", self._link(member), "up")

    def destroy(self) -> None:
        """Remove every namespace (their links go with them) and the test's own veth."""
        for namespace in reversed(self._made):
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, check=False)
        self._made.clear()
        if self._host_link is not None:
            subprocess.run(["ip", "link", "del", self._host_link], capture_output=True, check=False)
            self._host_link = None
