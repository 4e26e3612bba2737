"""Benchmark images: OCI layouts with real gzip layers of incompressible payload, and their push.

A layer is a tar holding one file of random bytes, compressed with gzip level 1, so its blob is
about as large as its payload. Layouts are kept in a cache directory keyed by their sizes, as
making a 1 GiB layer takes half a minute; a fresh payload is random, so every layout is unique.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import uuid
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.procs import run

MiB = 1024 * 1024
GiB = 1024 * MiB
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
LAYOUT_VERSION = "1"  # bump when the layout format below changes
_CHUNK = 4 * MiB
_TAR_RECORD = 10240


@dataclass(frozen=True)
class ImageSpec:
    name: str
    """Repository name, e.g. bench/big."""
    layers: tuple[int, ...]
    """Payload size of each layer, in bytes."""
    tag: str = "v1"

    @property
    def key(self) -> str:
        sizes = "-".join(str(size) for size in self.layers)
        return f"{self.name.replace('/', '_')}-{LAYOUT_VERSION}-{sizes}"


@dataclass(frozen=True)
class Blob:
    digest: str
    size: int
    media_type: str

    @property
    def hex(self) -> str:
        return self.digest.split(":", 1)[1]


@dataclass(frozen=True)
class Image:
    spec: ImageSpec
    layout: Path
    manifest: bytes
    manifest_digest: str
    config: Blob
    layers: tuple[Blob, ...]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def tag(self) -> str:
        return self.spec.tag

    @property
    def blobs(self) -> tuple[Blob, ...]:
        return (self.config, *self.layers)

    @property
    def size(self) -> int:
        """Config plus layers: what a pull downloads besides the manifest."""
        return sum(blob.size for blob in self.blobs)

    @property
    def largest(self) -> Blob:
        return max(self.layers, key=lambda blob: blob.size)

    def blob_path(self, blob: Blob) -> Path:
        return self.layout / "blobs" / "sha256" / blob.hex


def build_images(specs: list[ImageSpec], cache_dir: Path) -> dict[str, Image]:
    """Each spec's layout, from `cache_dir` when it is there, else made (in parallel) and kept."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    missing = [spec for spec in specs if not (cache_dir / spec.key / "index.json").exists()]
    jobs = [(spec, index, size) for spec in missing for index, size in enumerate(spec.layers)]
    jobs.sort(key=lambda job: -job[2])
    staging = {spec.key: cache_dir / f".{spec.key}.{uuid.uuid4().hex}" for spec in missing}
    made: dict[tuple[str, int], tuple[str, int, str]] = {}
    try:
        if jobs:
            for path in staging.values():
                (path / "blobs" / "sha256").mkdir(parents=True)
            with ProcessPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
                futures = {
                    (spec.key, index): pool.submit(make_layer, staging[spec.key], size)
                    for spec, index, size in jobs
                }
                made = {key: future.result() for key, future in futures.items()}
        for spec in missing:
            layers = [made[(spec.key, index)] for index in range(len(spec.layers))]
            _write_layout(staging[spec.key], spec, layers)
            target = cache_dir / spec.key
            shutil.rmtree(target, ignore_errors=True)
            staging[spec.key].rename(target)
    finally:
        for path in staging.values():
            shutil.rmtree(path, ignore_errors=True)
    return {spec.name: load_image(spec, cache_dir / spec.key) for spec in specs}


def make_layer(layout: Path, payload: int) -> tuple[str, int, str]:
    """Write one gzip'd tar layer into `layout`'s blobs; returns (digest, size, diff_id)."""
    tmp = layout / f"layer-{uuid.uuid4().hex}.tmp"
    compressed = hashlib.sha256()
    uncompressed = hashlib.sha256()
    gzip = zlib.compressobj(1, zlib.DEFLATED, 31)
    size = 0

    with tmp.open("wb") as out:

        def emit(data: bytes) -> None:
            nonlocal size
            uncompressed.update(data)
            packed = gzip.compress(data)
            if packed:
                out.write(packed)
                compressed.update(packed)
                size += len(packed)

        info = tarfile.TarInfo("payload.bin")
        info.size = payload
        info.mode = 0o644
        info.mtime = 0
        header = info.tobuf(format=tarfile.PAX_FORMAT)
        emit(header)
        left = payload
        while left > 0:
            chunk = os.urandom(min(_CHUNK, left))
            emit(chunk)
            left -= len(chunk)
        written = len(header) + payload
        padding = (-payload) % 512 + 1024
        written += padding
        padding += (-written) % _TAR_RECORD
        emit(bytes(padding))
        tail = gzip.flush()
        out.write(tail)
        compressed.update(tail)
        size += len(tail)
    digest = compressed.hexdigest()
    tmp.rename(layout / "blobs" / "sha256" / digest)
    return f"sha256:{digest}", size, f"sha256:{uncompressed.hexdigest()}"


def _write_blob(layout: Path, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return f"sha256:{digest}"


def _write_layout(layout: Path, spec: ImageSpec, layers: list[tuple[str, int, str]]) -> None:
    config: dict[str, Any] = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["PATH=/usr/local/bin:/usr/bin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id for _, _, diff_id in layers]},
        "history": [{"created_by": f"regcache bench layer {i}"} for i in range(len(layers))],
    }
    config_bytes = json.dumps(config, separators=(",", ":")).encode()
    config_digest = _write_blob(layout, config_bytes)
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config_bytes)},
        "layers": [
            {"mediaType": OCI_LAYER, "digest": digest, "size": size} for digest, size, _ in layers
        ],
    }
    manifest_bytes = json.dumps(manifest, indent=2).encode()
    manifest_digest = _write_blob(layout, manifest_bytes)
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": manifest_digest,
                "size": len(manifest_bytes),
                "annotations": {"org.opencontainers.image.ref.name": spec.tag},
            }
        ],
    }
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    (layout / "index.json").write_text(json.dumps(index))


def load_image(spec: ImageSpec, layout: Path) -> Image:
    index = json.loads((layout / "index.json").read_text())
    manifest_digest: str = index["manifests"][0]["digest"]
    manifest_bytes = (layout / "blobs" / "sha256" / manifest_digest.split(":", 1)[1]).read_bytes()
    manifest = json.loads(manifest_bytes)

    def blob(entry: dict[str, Any]) -> Blob:
        return Blob(entry["digest"], int(entry["size"]), entry["mediaType"])

    return Image(
        spec=spec,
        layout=layout,
        manifest=manifest_bytes,
        manifest_digest=manifest_digest,
        config=blob(manifest["config"]),
        layers=tuple(blob(entry) for entry in manifest["layers"]),
    )


def push(image: Image, registry: str, *, netns: str | None = None) -> None:
    """Copy the layout to `registry` (host:port, plain HTTP) with its digests unchanged."""
    run(
        [
            "skopeo",
            "--insecure-policy",
            "copy",
            "--quiet",
            "--preserve-digests",
            "--dest-tls-verify=false",
            f"oci:{image.layout}:{image.tag}",
            f"docker://{registry}/{image.name}:{image.tag}",
        ],
        timeout=600,
        netns=netns,
    )


def publish_static(image: Image, root: Path) -> None:
    """Lay the image out under `root` as the URLs of the registry API, for nginx to serve."""
    base = root / "v2" / image.name
    (base / "blobs").mkdir(parents=True, exist_ok=True)
    (base / "manifests").mkdir(parents=True, exist_ok=True)
    for blob in image.blobs:
        target = base / "blobs" / blob.digest
        if not target.exists():
            try:
                os.link(image.blob_path(blob), target)
            except OSError:
                shutil.copyfile(image.blob_path(blob), target)
    (base / "manifests" / image.tag).write_bytes(image.manifest)
    (base / "manifests" / image.manifest_digest).write_bytes(image.manifest)
