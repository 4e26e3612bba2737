"""A private containerd 1.6 daemon driven with ``ctr``, for pulls by a real containerd client.

Notes for this sandbox (containerd 1.6.20, root, no systemd): the daemon runs fine with the CRI
plugin disabled. Both the native and the overlayfs snapshotters work here; native is the default
because it needs no mount support. containerd's ``opt`` plugin defaults to ``/opt/containerd``,
so the config points it into the work dir. ``ctr images pull --hosts-dir DIR`` works: DIR holds
``<host>/hosts.toml`` files (see ``write_hosts_toml``), for ``docker.io`` and for ``IP:PORT``.
Through a mirror, containerd resolves with ``HEAD /v2/<name>/manifests/<tag>?ns=<host>``; on a
404 or a connection error it tries the next host, ending with the upstream server.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from .process import Process, ProcessError, Service, run

CONTAINERD_BINARY = "/usr/bin/containerd"
CTR_BINARY = "/usr/bin/ctr"
NAMESPACE = "default"


def write_hosts_toml(
    hosts_dir: Path,
    host: str,
    mirror_url: str,
    *,
    server: str | None = None,
    ca_file: Path | None = None,
    skip_verify: bool = False,
) -> Path:
    """Write ``hosts_dir/<host>/hosts.toml`` sending pulls of ``host`` to ``mirror_url`` first.

    ``host`` is the registry as it appears in image references ("docker.io", "127.0.0.1:5000").
    containerd tries the mirror, then falls back to ``server`` (default: its built-in upstream
    for ``host``, e.g. https://registry-1.docker.io, unreachable here).
    """
    lines = [f'server = "{server}"'] if server else []
    lines += [f'[host."{mirror_url}"]', '  capabilities = ["pull", "resolve"]']
    if ca_file is not None:
        lines.append(f'  ca = "{ca_file}"')
    if skip_verify:
        lines.append("  skip_verify = true")
    path = hosts_dir / host / "hosts.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


class Containerd(Service):
    """``containerd`` with its own root, state, config and socket, stopped on exit.

    The socket lives in a short directory under the system temp dir, because unix socket paths
    are limited to 107 bytes and pytest's ``tmp_path`` can be long.
    """

    def __init__(self, workdir: Path, *, snapshotter: str = "native") -> None:
        self.workdir = workdir
        self.snapshotter = snapshotter
        self.config_path = workdir / "containerd.toml"
        self._socket_dir: Path | None = None
        self.process = Process(
            "containerd", [CONTAINERD_BINARY, "--config", self.config_path], workdir
        )

    @property
    def socket(self) -> Path:
        if self._socket_dir is None:
            raise ProcessError("containerd is not started")
        return self._socket_dir / "containerd.sock"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._socket_dir = Path(tempfile.mkdtemp(prefix="regcache-ctd-"))
        self.config_path.write_text(self._config())
        self.process.start()
        try:
            self.process.wait_until(self._answers, what="answering ctr version")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        try:
            self.process.stop()
        finally:
            if self._socket_dir is not None:
                shutil.rmtree(self._socket_dir, ignore_errors=True)
                self._socket_dir = None

    def ctr(self, *args: str, timeout: float = 300.0) -> str:
        """Run ``ctr`` against this daemon; raise with its output on failure."""
        return run(
            [CTR_BINARY, "--address", str(self.socket), "--namespace", NAMESPACE, *args],
            timeout=timeout,
        )

    def pull(
        self,
        ref: str,
        *,
        hosts_dir: Path | None = None,
        plain_http: bool = True,
        platform: str | None = None,
        all_platforms: bool = False,
        user: str | None = None,
        timeout: float = 300.0,
    ) -> str:
        """``ctr images pull`` (fetch and unpack); returns ctr's output."""
        args: list[str] = ["images", "pull", "--snapshotter", self.snapshotter]
        if hosts_dir is not None:
            args += ["--hosts-dir", str(hosts_dir)]
        if plain_http:
            args.append("--plain-http")
        if platform is not None:
            args += ["--platform", platform]
        if all_platforms:
            args.append("--all-platforms")
        if user is not None:
            args += ["--user", user]
        return self.ctr(*args, ref, timeout=timeout)

    def image_refs(self) -> list[str]:
        return self.ctr("images", "ls", "--quiet").split()

    def content_digests(self) -> set[str]:
        return set(self.ctr("content", "ls", "--quiet").split())

    def remove_all(self) -> None:
        """Delete every image and, through synchronous garbage collection, all content."""
        refs = self.image_refs()
        if refs:
            self.ctr("images", "rm", "--sync", *refs)
        leftovers: Sequence[str] = sorted(self.content_digests())
        if leftovers:
            self.ctr("content", "rm", *leftovers)

    def logs(self) -> str:
        return self.process.logs()

    def _answers(self) -> bool:
        try:
            self.ctr("version", timeout=10)
        except ProcessError:
            return False
        return True

    def _config(self) -> str:
        root = self.workdir / "root"
        state = self.workdir / "state"
        return f"""version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "{self.socket}"

[ttrpc]
  address = "{self.socket}.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{self.workdir / "opt"}"
"""
