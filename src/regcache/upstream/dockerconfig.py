"""Upstream credentials from a docker-style config.json (`docker login` writes one)."""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path
from urllib.parse import urlsplit

from regcache.upstream.credentials import Credentials

DOCKER_HUB_HOSTS = ("registry-1.docker.io", "docker.io", "index.docker.io")
DOCKER_HUB_KEY = "https://index.docker.io/v1/"


def _host_of(key: str) -> str:
    return (urlsplit(key).netloc if "://" in key else key.split("/", 1)[0]).lower()


def credentials_from_docker_config(path: Path, upstream_url: str) -> Credentials | None:
    """The `auths` entry for the upstream's host, or None when the file has none."""
    try:
        auths = json.loads(path.read_text()).get("auths", {})
    except (OSError, ValueError, AttributeError):
        return None
    host = urlsplit(upstream_url).netloc.lower()
    wanted = {host}
    if urlsplit(upstream_url).hostname in DOCKER_HUB_HOSTS:
        wanted |= set(DOCKER_HUB_HOSTS) | {_host_of(DOCKER_HUB_KEY)}
    for key, entry in auths.items():
        if _host_of(key) not in wanted or not isinstance(entry, dict):
            continue
        if entry.get("username") and entry.get("password"):
            return Credentials(str(entry["username"]), str(entry["password"]))
        try:
            decoded = base64.b64decode(str(entry.get("auth", "")), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            continue
        username, sep, password = decoded.partition(":")
        if sep:
            return Credentials(username, password)
    return None
