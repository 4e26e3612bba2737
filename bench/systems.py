"""Starting and stopping each system under test, every one on 127.0.0.1 and a free port."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import sys
import uuid
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.procs import ProcessError, Service, free_port, http_status, run

REGISTRY = "/usr/bin/docker-registry"
SQUID = "/usr/sbin/squid"
NGINX = "/usr/sbin/nginx"
SQUID_USER = "proxy"

NGINX_SYS = "nginx"
DIRECT = "direct"
REGCACHE = "regcache"
DISTRIBUTION = "distribution"
SQUID_SYS = "squid"
SQUID_CF = "squid-cf"
ALL = (NGINX_SYS, DIRECT, REGCACHE, DISTRIBUTION, SQUID_SYS, SQUID_CF)
CACHES = (REGCACHE, DISTRIBUTION, SQUID_SYS, SQUID_CF)
LABELS = {
    NGINX_SYS: "nginx (static files, sendfile)",
    DIRECT: "direct (upstream, no cache)",
    REGCACHE: "regcache (filesystem)",
    DISTRIBUTION: "distribution proxy",
    SQUID_SYS: "squid (seed config)",
    SQUID_CF: "squid + collapsed_forwarding",
}
_REGCACHE_READY = re.compile(r"regcache listening on http://127\.0\.0\.1:(\d+)")


@dataclass(frozen=True)
class Running:
    name: str
    host: str
    """host:port to send requests to."""
    pid: int | None
    """The server process (None for the upstream itself, which is not a system's own)."""

    @property
    def url(self) -> str:
        return f"http://{self.host}"


@dataclass(frozen=True)
class Setup:
    """What every system is started from."""

    workdir: Path
    upstream: str
    """host:port of the upstream (or of the relay in front of it)."""
    static_root: Path | None = None
    """nginx's document root."""
    regcache_src: Path | None = None
    """Run regcache from this source directory instead of the installed one."""


@contextmanager
def started(name: str, setup: Setup, *, env: Mapping[str, str] | None = None) -> Iterator[Running]:
    """A fresh instance of system `name` (empty cache), stopped and deleted on exit."""
    if name == DIRECT:
        yield Running(DIRECT, setup.upstream, None)
        return
    workdir = setup.workdir / f"{name}-{uuid.uuid4().hex[:8]}"
    workdir.mkdir(parents=True)
    try:
        if name == REGCACHE:
            with _regcache(workdir, setup, env or {}) as running:
                yield running
        elif name == DISTRIBUTION:
            with _distribution(workdir, setup.upstream) as running:
                yield running
        elif name in (SQUID_SYS, SQUID_CF):
            with _squid(name, setup, workdir, collapsed=name == SQUID_CF) as running:
                yield running
        elif name == NGINX_SYS:
            if setup.static_root is None:
                raise ValueError("nginx needs a static root")
            with _nginx(workdir, setup.static_root) as running:
                yield running
        else:
            raise ValueError(f"unknown system {name!r}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def regcache_command(src: Path | None) -> list[str]:
    script = Path(sys.executable).parent / "regcache"
    if src is None and script.exists():
        return [str(script)]
    return [sys.executable, "-m", "regcache"]


# The admin listener (newer regcache) defaults to a fixed port: give it a free one instead.
ADMIN_ENV = {"REGCACHE_ADMIN_LISTEN": "127.0.0.1:0"}


@contextmanager
def _regcache(workdir: Path, setup: Setup, extra_env: Mapping[str, str]) -> Iterator[Running]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("REGCACHE_")}
    if setup.regcache_src is not None:
        env["PYTHONPATH"] = str(setup.regcache_src)
    env.update(extra_env)
    argv = [
        *regcache_command(setup.regcache_src),
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        f"http://{setup.upstream}",
        "--cache-dir",
        str(workdir / "cache"),
        "--cache-size",
        "20GB",
    ]
    with ExitStack() as stack:
        try:
            service, port = _start_regcache(stack, argv, workdir, {**env, **ADMIN_ENV})
        except ProcessError as exc:
            if "REGCACHE_ADMIN_LISTEN" not in str(exc):
                raise
            stack.close()  # an older regcache without an admin listener
            service, port = _start_regcache(stack, argv, workdir, env)
        yield Running(REGCACHE, f"127.0.0.1:{port}", service.pid)


def _start_regcache(
    stack: ExitStack, argv: list[str], workdir: Path, env: dict[str, str]
) -> tuple[Service, int]:
    service = Service(
        f"regcache-{len(list(workdir.glob('regcache*.err.log')))}", argv, workdir, env=env
    )
    port: list[int] = []

    def ready() -> bool:
        match = _REGCACHE_READY.search(service.stderr_path.read_text(errors="replace"))
        if match:
            port.append(int(match[1]))
        return bool(match)

    stack.enter_context(service)
    service.wait_ready(ready, what="listening")
    return service, port[0]


@contextmanager
def _distribution(workdir: Path, upstream: str) -> Iterator[Running]:
    port = free_port()
    config: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": "warn", "formatter": "text", "accesslog": {"disabled": True}},
        "storage": {
            "filesystem": {"rootdirectory": str(workdir / "data")},
            "maintenance": {"uploadpurging": {"enabled": False}},
        },
        "http": {"addr": f"127.0.0.1:{port}", "secret": secrets.token_hex(16)},
        "proxy": {"remoteurl": f"http://{upstream}"},
    }
    config_path = workdir / "config.yml"
    config_path.write_text(json.dumps(config, indent=2))
    service = Service("distribution", [REGISTRY, "serve", config_path], workdir)
    with service:
        service.wait_ready(lambda: http_status("127.0.0.1", port) == 200, what="serving")
        yield Running(DISTRIBUTION, f"127.0.0.1:{port}", service.pid)


def squid_config(workdir: Path, port: int, upstream: str, *, collapsed: bool) -> str:
    """The seed's design: an accelerator in front of one registry, caching by URL."""
    host, upstream_port = upstream.rsplit(":", 1)
    return "\n".join(
        [
            f"http_port 127.0.0.1:{port} accel defaultsite={upstream} no-vhost",
            f"cache_peer {host} parent {upstream_port} 0 no-query originserver name=upstream",
            "http_access allow all",
            f"cache_dir ufs {workdir / 'cache'} 2000 16 256",
            "maximum_object_size 8 GB",
            "range_offset_limit 8 GB",
            "quick_abort_min -1",
            f"collapsed_forwarding {'on' if collapsed else 'off'}",
            f"pid_filename {workdir / 'squid.pid'}",
            f"cache_log {workdir / 'cache.log'}",
            "access_log none",
            "cache_store_log none",
            "shutdown_lifetime 0 seconds",
            f"coredump_dir {workdir}",
            f"cache_effective_user {SQUID_USER}",
            "",
        ]
    )


def _squid_template(parent: Path, upstream: str) -> Path:
    """A cache_dir made once by `squid -z` (2-3 s), copied for each fresh instance."""
    template = parent / "squid-template"
    if not (template / "cache").is_dir():
        staging = parent / f"squid-template-{uuid.uuid4().hex[:8]}"
        (staging / "cache").mkdir(parents=True)
        config = staging / "squid.conf"
        config.write_text(squid_config(staging, free_port(), upstream, collapsed=False))
        for path in (staging, staging / "cache"):
            shutil.chown(path, SQUID_USER, SQUID_USER)
        run([SQUID, "-z", "-N", "-f", config], timeout=60)
        staging.rename(template)
    return template / "cache"


@contextmanager
def _squid(name: str, setup: Setup, workdir: Path, *, collapsed: bool) -> Iterator[Running]:
    port = free_port()
    config_path = workdir / "squid.conf"
    config_path.write_text(squid_config(workdir, port, setup.upstream, collapsed=collapsed))
    template = _squid_template(setup.workdir, setup.upstream)
    run(["cp", "-a", template, workdir / "cache"], timeout=60)
    shutil.chown(workdir, SQUID_USER, SQUID_USER)
    # SIGKILL: a graceful stop takes squid 2 s, and the cache is thrown away anyway.
    service = Service(name, [SQUID, "-N", "-f", config_path], workdir, stop_signal=signal.SIGKILL)
    with service:
        service.wait_ready(lambda: http_status("127.0.0.1", port) == 200, what="serving")
        yield Running(name, f"127.0.0.1:{port}", service.pid)


def nginx_config(workdir: Path, port: int, root: Path) -> str:
    temp = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
    return "\n".join(
        [
            "daemon off;",
            "master_process off;",
            "worker_processes 1;",
            f"pid {workdir / 'nginx.pid'};",
            f"error_log {workdir / 'error.log'} warn;",
            "events { worker_connections 4096; }",
            "http {",
            "  access_log off;",
            "  sendfile on;",
            "  tcp_nopush on;",
            "  keepalive_requests 1000000;",
            *(f"  {kind}_temp_path {workdir / kind};" for kind in temp),
            "  types { }",
            "  default_type application/octet-stream;",
            "  server {",
            f"    listen 127.0.0.1:{port};",
            f"    root {root};",
            "    location = /v2/ { default_type application/json; return 200 '{}'; }",
            "    location ~ ^/v2/.+/manifests/ {",
            "      default_type application/vnd.oci.image.manifest.v1+json;",
            "    }",
            "  }",
            "}",
            "",
        ]
    )


@contextmanager
def _nginx(workdir: Path, root: Path) -> Iterator[Running]:
    port = free_port()
    config_path = workdir / "nginx.conf"
    config_path.write_text(nginx_config(workdir, port, root))
    argv = [NGINX, "-p", f"{workdir}/", "-e", str(workdir / "error.log"), "-c", str(config_path)]
    service = Service("nginx", argv, workdir)
    with service:
        service.wait_ready(lambda: http_status("127.0.0.1", port) == 200, what="serving")
        yield Running(NGINX_SYS, f"127.0.0.1:{port}", service.pid)
