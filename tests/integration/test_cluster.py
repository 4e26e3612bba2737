"""Two regcache nodes sharing a real object store (SeaweedFS, S3 API) and Redis."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from tests.conftest import StartRegcache
from tests.support.http import connect, request
from tests.support.images import MiB, PushedImage, assert_same_pulls, push_image, skopeo_pull
from tests.support.process import wait_for
from tests.support.redis_server import RedisServer
from tests.support.regcache import Regcache
from tests.support.registry import Registry
from tests.support.relay import Fault, Relay
from tests.support.seaweedfs import SeaweedFS

LOCK_TTL = 3


@pytest.fixture(scope="module")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    with SeaweedFS(tmp_path_factory.mktemp("seaweed")) as server:
        yield server


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="module")
def image(upstream: Registry, tmp_path_factory: pytest.TempPathFactory) -> PushedImage:
    return push_image(
        upstream, tmp_path_factory.mktemp("cluster"), "cluster/app", "v1",
        layer_sizes=[12 * MiB, 256 * 1024], seed=1101,
    )  # fmt: skip


@dataclass
class Nodes:
    a: Regcache
    b: Regcache
    env: dict[str, str]


def cluster_env(seaweed: SeaweedFS, redis_server: RedisServer) -> dict[str, str]:
    """One cluster's settings: its own bucket prefix and Redis prefix, shared by its nodes."""
    name = uuid.uuid4().hex[:8]
    return {
        "REGCACHE_UPSTREAM_NAME": "origin",
        "REGCACHE_STORAGE_BACKEND": "s3",
        "REGCACHE_STORAGE_S3_BUCKET": "regcache-cluster",
        "REGCACHE_STORAGE_S3_PREFIX": f"c-{name}",
        "REGCACHE_STORAGE_S3_ENDPOINT": seaweed.endpoint_url,
        "REGCACHE_STORAGE_S3_ACCESS_KEY": seaweed.access_key,
        "REGCACHE_STORAGE_S3_SECRET_KEY": seaweed.secret_key,
        "REGCACHE_INDEX_BACKEND": "redis",
        "REGCACHE_INDEX_REDIS_URL": redis_server.url,
        "REGCACHE_INDEX_REDIS_PREFIX": f"c-{name}:",
        "REGCACHE_CLUSTER_LOCK_TTL": str(LOCK_TTL),
    }


@pytest.fixture
def nodes(
    seaweed: SeaweedFS, redis_server: RedisServer, relay: Relay, start: StartRegcache,
    tmp_path: Path,
) -> Nodes:  # fmt: skip
    env = cluster_env(seaweed, redis_server)
    a = start(relay.url, cache_dir=tmp_path / "node-a", env=env)
    b = start(relay.url, cache_dir=tmp_path / "node-b", env=env)
    return Nodes(a, b, env)


def blob_fetches(relay: Relay) -> Counter[str]:
    return Counter(r.path.rsplit("/", 1)[1] for r in relay.blob_requests)


def test_node_b_serves_warm_what_node_a_pulled_cold(
    image: PushedImage, upstream: Registry, nodes: Nodes, relay: Relay, tmp_path: Path
) -> None:
    skopeo_pull(f"docker://{upstream.host}/{image.ref}", tmp_path / "direct")
    skopeo_pull(f"docker://{nodes.a.host}/{image.ref}", tmp_path / "a")
    fetched = len(relay.blob_requests)
    skopeo_pull(f"docker://{nodes.b.host}/{image.ref}", tmp_path / "b")
    assert_same_pulls(tmp_path / "direct", tmp_path / "a")
    assert_same_pulls(tmp_path / "direct", tmp_path / "b")
    assert len(relay.blob_requests) == fetched, "node B fetched no blob upstream"
    assert list((nodes.b.cache_dir / "blobs").glob("**/*")) == [], "the store is shared, not B's"


def test_ten_clients_on_two_nodes_fetch_each_blob_once(
    image: PushedImage, upstream: Registry, nodes: Nodes, relay: Relay, tmp_path: Path
) -> None:
    skopeo_pull(f"docker://{upstream.host}/{image.ref}", tmp_path / "direct")

    def pull(number: int) -> Path:
        node = nodes.a if number % 2 else nodes.b
        dest = tmp_path / f"client-{number}"
        skopeo_pull(f"docker://{node.host}/{image.ref}", dest)
        return dest

    with ThreadPoolExecutor(10) as pool:
        pulled = list(pool.map(pull, range(10)))
    for dest in pulled:
        assert_same_pulls(tmp_path / "direct", dest)
    fetches = blob_fetches(relay)
    assert {digest: fetches[digest] for digest in image.blob_digests} == {
        digest: 1 for digest in image.blob_digests
    }


def test_a_node_killed_mid_download_is_taken_over_after_the_lock_expires(
    image: PushedImage, nodes: Nodes, relay: Relay
) -> None:
    layer = image.blob_digests[1]
    path = f"/v2/{image.name}/blobs/{layer}"
    relay.reset(Fault(stall_after=MiB, times=1))
    threading.Thread(target=lambda: _get_quietly(nodes.a, path), daemon=True).start()
    assert relay.stalled.wait(30)
    bodies: list[bytes] = []
    waiter = threading.Thread(target=lambda: bodies.append(_get(nodes.b, path)))
    waiter.start()  # B finds A's lock and waits
    nodes.a.kill()
    relay.release_stall()
    waiter.join(120)
    assert [hashlib.sha256(body).hexdigest() for body in bodies] == [layer[7:]]
    assert blob_fetches(relay)[layer] == 2, "A's download, then B's after the lock expired"
    nodes.b.settle()
    again = request(nodes.b.url, "GET", path)
    assert again.headers["X-Cache"] == "HIT"


def test_presigned_redirects_let_the_store_serve_the_bytes(
    image: PushedImage, seaweed: SeaweedFS, redis_server: RedisServer, relay: Relay,
    start: StartRegcache, tmp_path: Path,
) -> None:  # fmt: skip
    env = {**cluster_env(seaweed, redis_server), "REGCACHE_STORAGE_REDIRECT": "true"}
    node = start(relay.url, cache_dir=tmp_path / "node", env=env)
    skopeo_pull(f"docker://{node.host}/{image.ref}", tmp_path / "cold")
    node.settle()
    layer = image.blob_digests[1]
    answer = request(node.url, "GET", f"/v2/{image.name}/blobs/{layer}")
    assert answer.status == 307
    assert answer.headers["Location"].startswith(seaweed.endpoint_url)
    skopeo_pull(f"docker://{node.host}/{image.ref}", tmp_path / "warm")
    assert_same_pulls(tmp_path / "cold", tmp_path / "warm")


def test_redis_or_the_store_down_fails_clearly_and_corrupts_nothing(
    image: PushedImage, seaweed: SeaweedFS, redis_server: RedisServer, relay: Relay,
    start: StartRegcache, tmp_path: Path,
) -> None:  # fmt: skip
    env = cluster_env(seaweed, redis_server)
    node = start(relay.url, cache_dir=tmp_path / "node", env=env)
    skopeo_pull(f"docker://{node.host}/{image.ref}", tmp_path / "before")
    small = f"/v2/{image.name}/blobs/{image.blob_digests[-1]}"

    redis_server.stop()
    try:
        assert request(node.admin_url, "GET", "/readyz").status == 503
        failed = request(node.url, "GET", small)
        assert (failed.status, failed.error_codes()) == (503, ["UNAVAILABLE"])
    finally:
        redis_server.start()
    assert request(node.admin_url, "GET", "/readyz").status == 200

    seaweed.stop()
    try:
        assert request(node.admin_url, "GET", "/readyz").status == 503
        failed = request(node.url, "GET", small)
        assert failed.status == 503
        assert failed.error_codes() == ["UNAVAILABLE"]
    finally:
        seaweed.start()
    skopeo_pull(f"docker://{node.host}/{image.ref}", tmp_path / "after")
    assert_same_pulls(tmp_path / "before", tmp_path / "after")


def _get(node: Regcache, path: str) -> bytes:
    conn = connect(node.url, timeout=120)
    try:
        conn.request("GET", path)
        return conn.getresponse().read()
    finally:
        conn.close()


def _get_quietly(node: Regcache, path: str) -> None:
    with contextlib.suppress(OSError, http.client.HTTPException):
        _get(node, path)  # the node is killed under this client


def test_one_budget_for_the_whole_cluster(
    upstream: Registry, seaweed: SeaweedFS, redis_server: RedisServer, relay: Relay,
    start: StartRegcache, tmp_path: Path,
) -> None:  # fmt: skip
    first = push_image(
        upstream, tmp_path / "x", "cluster/x", "v1", layer_sizes=[3 * MiB], seed=1201
    )
    second = push_image(
        upstream, tmp_path / "y", "cluster/y", "v1", layer_sizes=[3 * MiB], seed=1202
    )
    budget = 5 * MiB
    env = cluster_env(seaweed, redis_server)
    args = ("--cache-size", f"{budget}B")
    a = start(relay.url, cache_dir=tmp_path / "a", env=env, args=args)
    b = start(relay.url, cache_dir=tmp_path / "b", env=env, args=args)
    skopeo_pull(f"docker://{a.host}/{first.ref}", tmp_path / "first")
    skopeo_pull(f"docker://{b.host}/{second.ref}", tmp_path / "second")
    client = redis.Redis.from_url(redis_server.url)
    try:
        total = int(client.get(env["REGCACHE_INDEX_REDIS_PREFIX"] + "total") or 0)
    finally:
        client.close()
    assert 0 < total <= budget
    assert request(b.url, "GET", f"/v2/{second.name}/blobs/{second.blob_digests[-1]}").status == 200


def test_a_local_disk_cache_in_front_of_the_store(
    image: PushedImage, nodes: Nodes, relay: Relay, start: StartRegcache, tmp_path: Path
) -> None:
    skopeo_pull(f"docker://{nodes.a.host}/{image.ref}", tmp_path / "a")
    env = {**nodes.env, "REGCACHE_STORAGE_LOCAL_CACHE_SIZE": "1GB"}
    c = start(relay.url, cache_dir=tmp_path / "node-c", env=env)
    layer = image.blob_digests[1]
    path = f"/v2/{image.name}/blobs/{layer}"
    fetched = len(relay.blob_requests)
    first = request(c.url, "GET", path)
    local = c.cache_dir / "local" / "blobs" / "sha256" / layer[7:9] / layer[7:]
    # Kept once the last chunk went out, verified: just after the client has its bytes.
    wait_for(local.exists, timeout=10, what="the local copy of a blob read whole")
    second = request(c.url, "GET", path)
    assert first.body == second.body
    assert hashlib.sha256(second.body).hexdigest() == layer[7:]
    assert len(relay.blob_requests) == fetched
