"""The real CNCF distribution registry (``/usr/bin/docker-registry``, 2.8) as a test upstream.

Facts about distribution 2.8.2 that tests rely on (checked against the Debian build):

* Logs: the access log (Apache combined format) goes to **stdout**; the application log
  (logrus text, ``level=... msg=...``) goes to stderr. The access line is written after the
  response has been sent, so a client can see its response before the line exists; ``requests``
  therefore makes a marker request first and waits until the marker line is in the log.
* A manifest stored as OCI (image manifest or index) requested (GET or HEAD) with an Accept header
  lacking that exact OCI type (including no Accept at all): 404 ``MANIFEST_UNKNOWN`` with message
  "OCI manifest found, but accept header does not support OCI manifests" (or "... OCI index
  found, ... OCI indexes"), by tag and by digest alike. Accepting only the OCI manifest type does
  not make an OCI index acceptable.
* A Docker schema 2 manifest requested by tag with no Accept header (or one without the schema 2
  type, e.g. only OCI types): 200, converted on the fly to signed schema 1
  (``application/vnd.docker.distribution.manifest.v1+prettyjws``). ``Docker-Content-Digest`` is the
  stable digest of the unsigned payload, but the body differs on every request (fresh signature).
  Requested by digest, the stored schema 2 bytes are returned whatever the Accept header.
* A Docker manifest list requested by tag without the list type in Accept: the linux/amd64 entry
  is picked; it is returned as schema 2 if Accept has schema 2 (with that entry's digest), else
  converted to schema 1 as above. By digest the list itself is returned.
"""

from __future__ import annotations

import http.client
import json
import re
import secrets
import ssl
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .ports import free_port
from .process import Process, Service, start_on_free_ports, wait_for

REGISTRY_BINARY = "/usr/bin/docker-registry"

_ACCESS_LINE = re.compile(
    r'^\S+ \S+ \S+ \[[^\]]*\] "(?P<method>[A-Z]+) (?P<path>\S+) [^"]*" '
    r'(?P<status>\d{3}) (?P<bytes>\d+|-) "(?P<referer>[^"]*)" "(?P<agent>[^"]*)"'
)
_BLOB_GET = re.compile(r"^/v2/.+/blobs/(?P<digest>[a-z0-9]+:[a-f0-9]+)$")
_SYNC_PATH = "/v2/?regcache-log-sync="


@dataclass(frozen=True)
class AccessEntry:
    """One request from the registry's access log."""

    method: str
    path: str
    status: int
    bytes: int
    user_agent: str


def hash_password(password: str) -> str:
    """A bcrypt hash of ``password`` in the form distribution's htpasswd auth accepts."""
    import bcrypt

    hashed: bytes = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5))
    return hashed.decode()


class Registry(Service):
    """A ``docker-registry serve`` process on 127.0.0.1:<free port> with storage in ``workdir``.

    ``htpasswd`` maps user names to passwords and turns on Basic auth; ``tls`` is a
    ``(certificate, key)`` pair of PEM files; ``token_auth`` is the ``auth.token`` section
    (realm, service, issuer, rootcertbundle, ...). ``extra_config`` is merged into the top level.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        htpasswd: Mapping[str, str] | None = None,
        tls: tuple[Path, Path] | None = None,
        token_auth: Mapping[str, Any] | None = None,
        extra_config: Mapping[str, Any] | None = None,
    ) -> None:
        if htpasswd and token_auth:
            raise ValueError("htpasswd and token auth are mutually exclusive")
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.config_path = workdir / "config.yml"
        self.port = free_port()
        self.tls = tls
        self.htpasswd = dict(htpasswd or {})
        self.token_auth = dict(token_auth or {})
        self.extra_config = dict(extra_config or {})
        self.process = Process("registry", [REGISTRY_BINARY, "serve", self.config_path], workdir)
        self._started = False
        self._secret = secrets.token_hex(16)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"

    def start(self) -> None:
        """Start serving; after ``stop`` this restarts on the same port with the same storage."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(exist_ok=True)
        start_on_free_ports(self._start_once, self.process.stop, self._new_port,
                            restart=self._started)  # fmt: skip
        self._started = True

    def _start_once(self) -> None:
        # JSON is valid YAML, so no YAML library is needed.
        self.config_path.write_text(json.dumps(self._config(), indent=2))
        self.process.start()
        self.process.wait_until(self._serving, what="serving")

    def _new_port(self) -> None:
        self.port = free_port()

    def stop(self) -> None:
        self.process.stop()

    def requests(self) -> list[AccessEntry]:
        """All requests served so far, in log order, excluding the helper's own marker requests.

        While the registry runs, a marker request is made and awaited in the log first, so that
        requests whose responses the caller has already seen are included.
        """
        if not self.process.running:
            return self._parse_log(include_markers=False)
        marker = f"{_SYNC_PATH}{uuid.uuid4().hex}"
        if self._get_status(marker) is None:
            raise RuntimeError(f"registry did not answer the log marker request\n{self.logs()}")
        wait_for(
            lambda: any(entry.path == marker for entry in self._parse_log()),
            what="the access log to catch up",
            on_timeout=self.logs,
        )
        return self._parse_log(include_markers=False)

    def blob_gets(self, digest: str | None = None) -> int:
        """How many GET /v2/<name>/blobs/<digest> requests were served (any status)."""
        count = 0
        for entry in self.requests():
            match = _BLOB_GET.match(entry.path)
            if entry.method == "GET" and match and digest in (None, match["digest"]):
                count += 1
        return count

    def logs(self) -> str:
        return self.process.logs()

    def _parse_log(self, include_markers: bool = True) -> list[AccessEntry]:
        entries = []
        for line in self.process.stdout_path.read_text(errors="replace").splitlines():
            match = _ACCESS_LINE.match(line)
            if match and (include_markers or not match["path"].startswith(_SYNC_PATH)):
                size = match["bytes"]
                entries.append(
                    AccessEntry(
                        method=match["method"],
                        path=match["path"],
                        status=int(match["status"]),
                        bytes=0 if size == "-" else int(size),
                        user_agent=match["agent"],
                    )
                )
        return entries

    def _serving(self) -> bool:
        # Only trust the probe once this process has bound the port: another server may hold it.
        listening = f"listening on {self.host}" in self.process.stderr_since_start()
        return listening and self._get_status("/v2/") is not None

    def _get_status(self, path: str) -> int | None:
        """The status of GET ``path``, or None if the registry does not answer (yet)."""
        conn: http.client.HTTPConnection
        if self.tls:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=5, context=context)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request("GET", path, headers={"User-Agent": "regcache-tests-probe"})
            response = conn.getresponse()
            response.read()
            return response.status
        except OSError:
            return None
        finally:
            conn.close()

    def _config(self) -> dict[str, Any]:
        http_section: dict[str, Any] = {
            "addr": self.host,
            "secret": self._secret,
            "headers": {"X-Content-Type-Options": ["nosniff"]},
        }
        if self.tls:
            http_section["tls"] = {"certificate": str(self.tls[0]), "key": str(self.tls[1])}
        config: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "info", "formatter": "text", "accesslog": {"disabled": False}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.data_dir)},
                "delete": {"enabled": True},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": http_section,
        }
        if self.htpasswd:
            htpasswd_path = self.workdir / "htpasswd"
            htpasswd_path.write_text(
                "".join(f"{user}:{hash_password(pw)}\n" for user, pw in self.htpasswd.items())
            )
            config["auth"] = {"htpasswd": {"realm": "regcache-test", "path": str(htpasswd_path)}}
        elif self.token_auth:
            config["auth"] = {"token": self.token_auth}
        config.update(self.extra_config)
        return config
