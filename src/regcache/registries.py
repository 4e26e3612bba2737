"""Well-known public registries and Docker Hub's naming rules."""

from __future__ import annotations

from urllib.parse import urlsplit

DOCKER_HUB = "docker.io"
DOCKER_HUB_ALIASES = ("docker.io", "registry-1.docker.io", "index.docker.io")
KNOWN_REGISTRIES = {
    "docker.io": "https://registry-1.docker.io",
    "ghcr.io": "https://ghcr.io",
    "quay.io": "https://quay.io",
    "registry.k8s.io": "https://registry.k8s.io",
    "gcr.io": "https://gcr.io",
    "mcr.microsoft.com": "https://mcr.microsoft.com",
    "public.ecr.aws": "https://public.ecr.aws",
}


def canonical_host(host: str) -> str:
    """The name clients use for a registry: Docker Hub's hosts are all `docker.io`."""
    host = host.lower()
    return DOCKER_HUB if host in DOCKER_HUB_ALIASES else host


def registry_host(url: str) -> str:
    return canonical_host(urlsplit(url).netloc)


def looks_like_host(component: str) -> bool:
    """A first path component that names a registry (Docker Hub namespaces have no dots)."""
    return "." in component or ":" in component or component == "localhost"


def hub_repository(repository: str) -> str:
    """Docker Hub's official images live under `library/`: `alpine` is `library/alpine`."""
    return repository if "/" in repository else f"library/{repository}"
