"""Ready-to-paste client configuration for the running settings: containerd, docker, podman."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from regcache.config import Settings


@dataclass(frozen=True)
class ConfigFile:
    path: str  # where it goes on a client machine
    text: str


def cache_url(settings: Settings, override: str | None = None) -> str:
    """How clients reach the cache: --cache-url, else public_url, else this host and port."""
    if override:
        return override.rstrip("/")
    if settings.public_url:
        return settings.public_url
    scheme = "https" if settings.tls else "http"
    host = settings.listen_host
    if host in ("0.0.0.0", "::", ""):
        host = socket.getfqdn()
    return f"{scheme}://{host}:{settings.listen_port}"


def containerd(settings: Settings, url: str) -> list[ConfigFile]:
    """One hosts.toml per upstream; containerd adds `?ns=<registry>`, which picks the upstream."""
    files = []
    for upstream in settings.upstreams:
        text = (
            f'server = "{upstream.url}"\n\n[host."{url}"]\n  capabilities = ["pull", "resolve"]\n'
        )
        files.append(ConfigFile(f"/etc/containerd/certs.d/{upstream.registry}/hosts.toml", text))
    return files


def docker(settings: Settings, url: str) -> list[ConfigFile]:
    """dockerd mirrors Docker Hub only, at the mirror's root: the default upstream serves it."""
    config: dict[str, list[str]] = {}
    default = settings.upstream if settings.default_upstream else None
    if default is not None and default.is_docker_hub:
        config["registry-mirrors"] = [url]
    if urlsplit(url).scheme == "http":
        config["insecure-registries"] = [urlsplit(url).netloc]
    text = json.dumps(config, indent=2) + "\n"
    if "registry-mirrors" not in config:
        text = (
            "// No registry-mirrors entry: dockerd mirrors only Docker Hub, and this cache's\n"
            "// default upstream is not Docker Hub. Pull through the cache's name instead:\n"
            f"//   docker pull {urlsplit(url).netloc}/<repository>:<tag>\n" + text
        )
    return [ConfigFile("/etc/docker/daemon.json", text)]


def podman(settings: Settings, url: str) -> list[ConfigFile]:
    """registries.conf mirrors with a path: /v2/<upstream name>/<repository>/..."""
    netloc = urlsplit(url).netloc
    insecure = urlsplit(url).scheme == "http"
    blocks = []
    for upstream in settings.upstreams:
        block = (
            "[[registry]]\n"
            f'prefix = "{upstream.registry}"\n'
            f'location = "{upstream.registry}"\n\n'
            "[[registry.mirror]]\n"
            f'location = "{netloc}/{upstream.name}"\n'
        )
        if insecure:
            block += "insecure = true\n"
        blocks.append(block)
    return [ConfigFile("/etc/containers/registries.conf.d/regcache.conf", "\n".join(blocks))]


GENERATORS = {"containerd": containerd, "docker": docker, "podman": podman}


def render(files: list[ConfigFile]) -> str:
    return "\n".join(f"# {file.path}\n{file.text}" for file in files)


def write(files: list[ConfigFile], root: Path) -> list[Path]:
    """Write the files below `root` as they would lie below / on a client."""
    written = []
    for file in files:
        target = root / file.path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(file.text)
        written.append(target)
    return written
