"""A slow link on this machine: two network namespaces joined by a veth pair shaped with tbf.

The upstream registry runs in the "upstream" namespace; the relay (bench.relay) makes its
outgoing connections from the "client" namespace. Addresses exist only inside these two
namespaces, so no packet can leave the machine; deleting the namespaces deletes the veth pair.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.procs import ProcessError, run

SUBNET = "10.213.0"
UPSTREAM_IP = f"{SUBNET}.2"
CLIENT_IP = f"{SUBNET}.1"
_OURS = re.compile(r"rcb(\d+)-(up|cl)")


@dataclass(frozen=True)
class SlowLink:
    upstream_ns: str
    client_ns: str
    upstream_ip: str
    client_ip: str
    shaping: str

    def describe(self) -> str:
        return (
            f"veth pair between namespaces {self.client_ns} ({self.client_ip}) and "
            f"{self.upstream_ns} ({self.upstream_ip}), each end `tc qdisc ... root {self.shaping}`"
        )


def _ip(*args: str) -> None:
    run(["ip", *args], timeout=30)


def remove_stale() -> None:
    """Delete the namespaces of an earlier harness that was killed before it could."""
    netns_dir = Path("/run/netns")
    if not netns_dir.is_dir():
        return
    for entry in netns_dir.iterdir():
        match = _OURS.fullmatch(entry.name)
        if match and not Path(f"/proc/{match[1]}").exists():
            with contextlib.suppress(ProcessError):
                _ip("netns", "del", entry.name)


@contextmanager
def slow_link(
    rate: str = "100mbit", burst: str = "32kbit", latency: str = "400ms"
) -> Iterator[SlowLink]:
    """Create the namespaces and the shaped veth pair; ProcessError if this machine cannot."""
    remove_stale()
    tag = f"rcb{os.getpid()}"
    upstream_ns, client_ns = f"{tag}-up", f"{tag}-cl"
    upstream_if, client_if = f"{tag}u", f"{tag}c"
    shaping = f"tbf rate {rate} burst {burst} latency {latency}"
    made: list[str] = []
    try:
        for ns in (upstream_ns, client_ns):
            _ip("netns", "add", ns)
            made.append(ns)
        _ip(
            "link", "add", client_if, "netns", client_ns,
            "type", "veth", "peer", "name", upstream_if, "netns", upstream_ns,
        )  # fmt: skip
        for ns, dev, address in (
            (upstream_ns, upstream_if, UPSTREAM_IP),
            (client_ns, client_if, CLIENT_IP),
        ):
            _ip("-n", ns, "addr", "add", f"{address}/30", "dev", dev)
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "link", "set", dev, "up")
            run(["tc", "-n", ns, "qdisc", "add", "dev", dev, "root", *shaping.split()])
        yield SlowLink(upstream_ns, client_ns, UPSTREAM_IP, CLIENT_IP, shaping)
    finally:
        for ns in reversed(made):
            with contextlib.suppress(ProcessError):
                _ip("netns", "del", ns)
