"""A private dockerd 20.10 (vfs, no networking) on its own containerd, for pulls by Docker.

Notes for this sandbox (docker.io 20.10.24, root):

* dockerd is given its own ``Containerd`` with ``--containerd``. Left to itself it would use
  ``/run/containerd/containerd.sock`` if a system containerd were running, or start a
  supervised one that puts plugin state in ``/opt/containerd``.
* dockerd 20.10 writes its identity key to ``/etc/docker/key.json`` unless the config file sets
  ``deprecated-key-path`` (there is no command-line flag), so a daemon.json is always written.
* 127.0.0.0/8 is an insecure registry by default: ``docker pull 127.0.0.1:PORT/x`` uses plain
  HTTP without any ``--insecure-registry``. Mirrors (``--registry-mirror``) only apply to
  docker.io references.
* The CLI is ``/usr/bin/docker`` from the same package (``/usr/local/bin/docker`` is a newer
  client), run with a private ``DOCKER_CONFIG`` so no host credential helpers are used.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from .containerd import Containerd
from .process import Process, ProcessError, Service, run

DOCKERD_BINARY = "/usr/sbin/dockerd"
DOCKER_BINARY = "/usr/bin/docker"


class Dockerd(Service):
    """``dockerd`` with its own data root, exec root, socket, config and containerd."""

    def __init__(
        self,
        workdir: Path,
        *,
        registry_mirrors: Sequence[str] = (),
        insecure_registries: Sequence[str] = (),
        extra_args: Sequence[str] = (),
    ) -> None:
        self.workdir = workdir
        self.registry_mirrors = list(registry_mirrors)
        self.insecure_registries = list(insecure_registries)
        self.extra_args = list(extra_args)
        self.containerd = Containerd(workdir / "containerd")
        self._short_dir: Path | None = None
        self._process: Process | None = None

    @property
    def socket(self) -> Path:
        if self._short_dir is None:
            raise ProcessError("dockerd is not started")
        return self._short_dir / "docker.sock"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        # exec-root holds unix sockets too, so it must have a short path.
        self._short_dir = Path(tempfile.mkdtemp(prefix="regcache-dockerd-"))
        try:
            self.containerd.start()
            self._process = Process("dockerd", self._argv(), self.workdir)
            self._process.start()
            self._process.wait_until(self._answers, what="answering docker version")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        try:
            if self._process is not None:
                self._process.stop()
        finally:
            try:
                self.containerd.stop()
            finally:
                if self._short_dir is not None:
                    shutil.rmtree(self._short_dir, ignore_errors=True)
                    self._short_dir = None

    def docker(self, *args: str, timeout: float = 300.0) -> str:
        """Run the docker CLI against this daemon; raise with its output on failure."""
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "DOCKER_CONFIG": str(self.workdir / "cli-config"),
        }
        return run(
            [DOCKER_BINARY, "--host", f"unix://{self.socket}", *args], timeout=timeout, env=env
        )

    def pull(self, ref: str, *, timeout: float = 300.0) -> str:
        return self.docker("pull", ref, timeout=timeout)

    def image_ids(self) -> set[str]:
        """IDs (config digests) of all images."""
        return set(self.docker("images", "--all", "--quiet", "--no-trunc").split())

    def repo_digests(self, ref: str) -> list[str]:
        """The ``name@sha256:...`` manifest digests Docker recorded for a pulled image."""
        output = self.docker("image", "inspect", "--format", "{{json .RepoDigests}}", ref)
        digests: list[str] = json.loads(output)
        return digests

    def remove_all(self) -> None:
        ids = sorted(self.image_ids())
        if ids:
            self.docker("image", "rm", "--force", *ids)

    def logs(self) -> str:
        parts = [self._process.logs()] if self._process else []
        return "\n".join([*parts, self.containerd.logs()])

    def _answers(self) -> bool:
        try:
            self.docker("version", timeout=10)
        except ProcessError:
            return False
        return True

    def _argv(self) -> list[str]:
        assert self._short_dir is not None
        config_file = self.workdir / "daemon.json"
        config_file.write_text(json.dumps({"deprecated-key-path": str(self.workdir / "key.json")}))
        argv = [
            DOCKERD_BINARY,
            f"--config-file={config_file}",
            f"--containerd={self.containerd.socket}",
            f"--data-root={self.workdir / 'data'}",
            f"--exec-root={self._short_dir / 'exec'}",
            f"--pidfile={self.workdir / 'dockerd.pid'}",
            f"--host=unix://{self.socket}",
            "--storage-driver=vfs",
            "--bridge=none",
            "--iptables=false",
            "--ip6tables=false",
            "--ip-masq=false",
            "--ip-forward=false",
            "--userland-proxy=false",
        ]
        argv += [f"--registry-mirror={mirror}" for mirror in self.registry_mirrors]
        argv += [f"--insecure-registry={registry}" for registry in self.insecure_registries]
        return argv + self.extra_args
