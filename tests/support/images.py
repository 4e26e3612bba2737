"""Deterministic test images in OCI layout directories, pushed to a registry with skopeo.

Layers are real gzip-compressed tars whose payload is seeded pseudo-random (incompressible) data,
so a layer of N bytes of payload is about N bytes on the wire. Configs carry correct diff_ids.
Layer i of an image built with seed s is seeded ``s * 1000 + i``; platform n (from 1) of an index
built with seed s is an image with seed ``s * 100 + n``. Same seed and sizes, same digests.

skopeo 1.9.3 copies with ``--preserve-digests``, so the registry stores exactly the bytes written
here (``push`` checks this with ``skopeo inspect --raw``). Its ``oci:`` transport skips index.json
entries with Docker media types, so Docker-format images are pushed from a ``dir:`` view instead.
"""

from __future__ import annotations

import filecmp
import gzip
import hashlib
import json
import os
import random
import shutil
import tarfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .process import run, run_bytes
from .registry import Registry

MiB = 1024 * 1024

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"

DEFAULT_PLATFORMS: tuple[tuple[str, str], ...] = (("linux", "amd64"), ("linux", "arm64"))
_CHUNK = MiB


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: tuple[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        desc: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.platform:
            desc["platform"] = {"os": self.platform[0], "architecture": self.platform[1]}
        return desc


@dataclass(frozen=True)
class BuiltImage:
    """A manifest or index in a layout, with everything it references."""

    tag: str
    descriptor: Descriptor
    blobs: tuple[Descriptor, ...]
    """Per platform, in order: the config, then the layers."""
    children: tuple[Descriptor, ...] = ()
    """Platform manifests of an index or manifest list."""


@dataclass(frozen=True)
class PushedImage:
    name: str
    tag: str
    manifest_digest: str
    media_type: str
    blob_digests: list[str]
    """Per platform, in order: the config digest, then the layer digests."""
    total_size: int
    """Bytes of every manifest and blob."""
    platforms: dict[str, str] = field(default_factory=dict)
    """For an index or list: "os/arch" -> platform manifest digest."""

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.tag}"


class OciLayout:
    """A writable OCI image layout directory (``oci-layout``, ``index.json``, ``blobs/sha256``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
        if not (root / "index.json").exists():
            self._write_index([])

    def blob_path(self, digest: str) -> Path:
        algorithm, hex_digest = digest.split(":", 1)
        return self.root / "blobs" / algorithm / hex_digest

    def add_bytes(self, data: bytes, media_type: str) -> Descriptor:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        self.blob_path(digest).write_bytes(data)
        return Descriptor(media_type, digest, len(data))

    def add_json(self, document: dict[str, Any], media_type: str) -> Descriptor:
        return self.add_bytes(json.dumps(document, indent=2).encode(), media_type)

    def add_layer(self, seed: int, size: int, media_type: str) -> tuple[Descriptor, str]:
        """A gzip tar with ``size`` bytes of seeded random payload; returns (desc, diff_id)."""
        tar_path = self.root / f"layer-{seed}.tar"
        gz_path = self.root / f"layer-{seed}.tar.gz"
        with tarfile.open(tar_path, "w", format=tarfile.PAX_FORMAT) as tar:
            directory = tarfile.TarInfo(f"layer-{seed}")
            directory.type = tarfile.DIRTYPE
            directory.mode = 0o755
            tar.addfile(directory)
            payload = tarfile.TarInfo(f"layer-{seed}/payload.bin")
            payload.size = size
            payload.mode = 0o644
            tar.addfile(payload, _RandomReader(seed, size))
        diff_hash = hashlib.sha256()
        with (
            tar_path.open("rb") as src,
            gz_path.open("wb") as raw,
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=1, mtime=0) as gz,
        ):
            while chunk := src.read(_CHUNK):
                diff_hash.update(chunk)
                gz.write(chunk)
        tar_path.unlink()
        digest = "sha256:" + _file_sha256(gz_path)
        gz_path.replace(self.blob_path(digest))
        return Descriptor(media_type, digest, self.blob_path(digest).stat().st_size), (
            "sha256:" + diff_hash.hexdigest()
        )

    def tag(self, tag: str, descriptor: Descriptor) -> None:
        index = json.loads((self.root / "index.json").read_text())
        manifests = [
            m
            for m in index["manifests"]
            if m.get("annotations", {}).get("org.opencontainers.image.ref.name") != tag
        ]
        entry = descriptor.to_json()
        entry["annotations"] = {"org.opencontainers.image.ref.name": tag}
        self._write_index([*manifests, entry])

    def _write_index(self, manifests: list[dict[str, Any]]) -> None:
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}
        (self.root / "index.json").write_text(json.dumps(index, indent=2))


class _RandomReader:
    """``size`` bytes of pseudo-random data determined by ``seed``, as a readable file."""

    def __init__(self, seed: int, size: int) -> None:
        self._random = random.Random(seed)
        self._left = size

    def read(self, n: int = -1) -> bytes:
        n = self._left if n < 0 else min(n, self._left)
        self._left -= n
        return self._random.randbytes(n)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def build_image(
    layout: OciLayout,
    tag: str | None,
    *,
    docker: bool = False,
    layer_sizes: Sequence[int] = (MiB, 256 * 1024),
    seed: int = 0,
    platform: tuple[str, str] = ("linux", "amd64"),
) -> BuiltImage:
    """A single-platform image manifest (OCI, or Docker schema 2 if ``docker``).

    Layer ``i`` is seeded with ``seed * 1000 + i``, so different seeds give disjoint blobs.
    ``tag=None`` writes the blobs without tagging (used for the platforms of an index).
    """
    layer_type, config_type, manifest_type = (
        (DOCKER_LAYER, DOCKER_CONFIG, DOCKER_MANIFEST)
        if docker
        else (OCI_LAYER, OCI_CONFIG, OCI_MANIFEST)
    )
    layers, diff_ids = [], []
    for i, size in enumerate(layer_sizes):
        layer, diff_id = layout.add_layer(seed * 1000 + i, size, layer_type)
        layers.append(layer)
        diff_ids.append(diff_id)
    config = layout.add_json(
        {
            "architecture": platform[1],
            "os": platform[0],
            "created": "2024-01-01T00:00:00Z",
            "config": {"Env": ["PATH=/usr/bin:/bin"], "Cmd": ["/payload"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [
                {"created": "2024-01-01T00:00:00Z", "created_by": f"regcache test layer {i}"}
                for i in range(len(layers))
            ],
        },
        config_type,
    )
    manifest = layout.add_json(
        {
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": config.to_json(),
            "layers": [layer.to_json() for layer in layers],
        },
        manifest_type,
    )
    if tag is not None:
        layout.tag(tag, manifest)
    return BuiltImage(tag or "", manifest, (config, *layers))


def build_index(
    layout: OciLayout,
    tag: str,
    *,
    docker: bool = False,
    layer_sizes: Sequence[int] = (MiB, 256 * 1024),
    seed: int = 0,
    platforms: Sequence[tuple[str, str]] = DEFAULT_PLATFORMS,
) -> BuiltImage:
    """An OCI index (or Docker manifest list if ``docker``) with one image per platform."""
    images = [
        build_image(
            layout, None, docker=docker, layer_sizes=layer_sizes, seed=seed * 100 + n, platform=p
        )
        for n, p in enumerate(platforms, start=1)
    ]
    children = tuple(
        Descriptor(i.descriptor.media_type, i.descriptor.digest, i.descriptor.size, p)
        for i, p in zip(images, platforms, strict=True)
    )
    index_type = DOCKER_LIST if docker else OCI_INDEX
    index = layout.add_json(
        {
            "schemaVersion": 2,
            "mediaType": index_type,
            "manifests": [child.to_json() for child in children],
        },
        index_type,
    )
    layout.tag(tag, index)
    return BuiltImage(tag, index, tuple(b for i in images for b in i.blobs), children)


def write_dir_transport(layout: OciLayout, image: BuiltImage, dest: Path) -> Path:
    """``image`` as a skopeo ``dir:`` directory, hard-linking the layout's blobs.

    skopeo 1.9.3 ignores index.json entries with Docker media types, so Docker-format images
    are pushed from this view instead of from ``oci:``.
    """
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    (dest / "version").write_text("Directory Transport Version: 1.1\n")
    shutil.copyfile(layout.blob_path(image.descriptor.digest), dest / "manifest.json")
    for child in image.children:
        hex_digest = child.digest.split(":", 1)[1]
        shutil.copyfile(layout.blob_path(child.digest), dest / f"{hex_digest}.manifest.json")
    for blob in image.blobs:
        os.link(layout.blob_path(blob.digest), dest / blob.digest.split(":", 1)[1])
    return dest


def _creds_args(flag: str, creds: tuple[str, str] | None) -> list[str]:
    return [flag, f"{creds[0]}:{creds[1]}"] if creds else []


def push(
    layout: OciLayout,
    image: BuiltImage,
    registry: Registry,
    name: str,
    *,
    creds: tuple[str, str] | None = None,
) -> PushedImage:
    """Copy ``image`` to ``registry`` as ``name:<tag>`` byte for byte, and check what it stored."""
    dest = f"docker://{registry.host}/{name}:{image.tag}"
    if image.descriptor.media_type in (DOCKER_MANIFEST, DOCKER_LIST):
        dir_view = layout.root.with_name(f"{layout.root.name}.dir")
        source = f"dir:{write_dir_transport(layout, image, dir_view)}"
    else:
        source = f"oci:{layout.root}:{image.tag}"
    run(
        [
            "skopeo",
            "copy",
            "--quiet",
            "--preserve-digests",
            "--multi-arch=all",
            "--dest-tls-verify=false",
            *_creds_args("--dest-creds", creds),
            source,
            dest,
        ]
    )
    stored = inspect_raw(dest, creds=creds)
    expected = layout.blob_path(image.descriptor.digest).read_bytes()
    if stored != expected:
        raise AssertionError(f"{dest} stored different manifest bytes:\n{stored!r}\n{expected!r}")
    return PushedImage(
        name=name,
        tag=image.tag,
        manifest_digest=image.descriptor.digest,
        media_type=image.descriptor.media_type,
        blob_digests=[blob.digest for blob in image.blobs],
        total_size=sum(d.size for d in (image.descriptor, *image.children, *image.blobs)),
        platforms={"/".join(c.platform): c.digest for c in image.children if c.platform},
    )


def push_image(
    registry: Registry,
    workdir: Path,
    name: str,
    tag: str,
    *,
    docker: bool = False,
    multi_arch: bool = False,
    layer_sizes: Sequence[int] = (MiB, 256 * 1024),
    seed: int = 0,
    creds: tuple[str, str] | None = None,
) -> PushedImage:
    """Build one image in ``workdir`` (e.g. ``layer_sizes=[64 * MiB]``) and push it."""
    layout = OciLayout(workdir / f"layout-{name.replace('/', '_')}-{tag}")
    build = build_index if multi_arch else build_image
    image = build(layout, tag, docker=docker, layer_sizes=layer_sizes, seed=seed)
    return push(layout, image, registry, name, creds=creds)


def seed_registry(
    registry: Registry, workdir: Path, *, creds: tuple[str, str] | None = None
) -> dict[str, PushedImage]:
    """Push the standard set, keyed by "name:tag"; each image has its own, disjoint blobs."""
    specs: list[tuple[str, str, bool, bool]] = [
        ("library/docker-img", "latest", True, False),
        ("oci/oci-img", "v1", False, False),
        ("multi/oci-index", "latest", False, True),
        ("multi/docker-list", "latest", True, True),
    ]
    pushed = {}
    for seed, (name, tag, docker, multi_arch) in enumerate(specs, start=1):
        image = push_image(
            registry,
            workdir,
            name,
            tag,
            docker=docker,
            multi_arch=multi_arch,
            seed=seed,
            creds=creds,
        )
        pushed[image.ref] = image
    return pushed


def inspect_raw(
    ref: str, *, tls_verify: bool = False, creds: tuple[str, str] | None = None
) -> bytes:
    """The manifest bytes skopeo gets for ``ref`` (a ``docker://`` or other transport ref)."""
    args = ["skopeo", "inspect", "--raw", f"--tls-verify={str(tls_verify).lower()}"]
    return run_bytes([*args, *_creds_args("--creds", creds), ref])


def skopeo_pull(
    src_ref: str,
    dest_dir: Path,
    *,
    tls_verify: bool = False,
    creds: tuple[str, str] | None = None,
    all_images: bool = False,
    extra_args: Iterable[str] = (),
) -> None:
    """``skopeo copy --preserve-digests SRC dir:DEST`` (``--all`` for every platform)."""
    if dest_dir.exists():
        shutil.rmtree(dest_dir)
    run(
        [
            "skopeo",
            "copy",
            "--quiet",
            "--preserve-digests",
            f"--src-tls-verify={str(tls_verify).lower()}",
            *_creds_args("--src-creds", creds),
            *(["--all"] if all_images else []),
            *extra_args,
            src_ref,
            f"dir:{dest_dir}",
        ]
    )


def diff_dirs(left: Path, right: Path) -> list[str]:
    """Relative paths that are missing on one side or differ in content; [] if identical."""
    differences: list[str] = []

    def walk(cmp: filecmp.dircmp[str], prefix: str) -> None:
        differences.extend(os.path.join(prefix, n) for n in cmp.left_only + cmp.right_only)
        _, mismatch, errors = filecmp.cmpfiles(cmp.left, cmp.right, cmp.common_files, shallow=False)
        differences.extend(os.path.join(prefix, n) for n in mismatch + errors)
        differences.extend(os.path.join(prefix, n) for n in cmp.common_funny)
        for name, sub in cmp.subdirs.items():
            walk(sub, os.path.join(prefix, name))

    walk(filecmp.dircmp(left, right), "")
    return sorted(differences)


def assert_same_pulls(left: Path, right: Path) -> None:
    """Fail unless two ``dir:`` pulls contain exactly the same files with the same bytes."""
    differences = diff_dirs(left, right)
    if differences:
        raise AssertionError(f"{left} and {right} differ: {differences}")
