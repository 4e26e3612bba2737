"""The load generators: curl for blobs, skopeo for pulls, wrk for small requests.

Every call is bounded in time; a client that fails or fetches the wrong size raises ClientError.
"""

from __future__ import annotations

import http.client
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from bench.procs import ProcessError, run

CURL_FORMAT = "%{http_code} %{size_download} %{time_starttransfer} %{time_total}\\n"


class ClientError(RuntimeError):
    """A benchmark client failed or got a wrong answer."""


@dataclass(frozen=True)
class Fetch:
    status: int
    size: int
    ttfb: float
    seconds: float


def _curl_argv(url: str, headers: dict[str, str] | None) -> list[str]:
    argv = ["curl", "-sS", "-o", "/dev/null", "-w", CURL_FORMAT]
    for key, value in (headers or {}).items():
        argv += ["-H", f"{key}: {value}"]
    return [*argv, url]


def _parse_curl(text: str) -> Fetch:
    status, size, ttfb, total = text.split()
    return Fetch(int(status), int(size), float(ttfb), float(total))


def fetch(url: str, *, headers: dict[str, str] | None = None, timeout: float = 300) -> Fetch:
    """One GET with curl, the body thrown away."""
    return _parse_curl(run(_curl_argv(url, headers), timeout=timeout))


def fetch_many(url: str, clients: int, expect_size: int, *, timeout: float = 300) -> float:
    """`clients` concurrent GETs of `url`; returns the wall time until the last one finished."""
    argv = _curl_argv(url, None)
    start = time.perf_counter()
    procs = [
        subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
        for _ in range(clients)
    ]
    outputs: list[bytes] = []
    try:
        deadline = start + timeout
        for proc in procs:
            out, _ = proc.communicate(timeout=max(deadline - time.perf_counter(), 0.1))
            outputs.append(out)
        elapsed = time.perf_counter() - start
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for proc, out in zip(procs, outputs, strict=True):
        result = _parse_curl(out.decode())
        if proc.returncode != 0 or result.status != 200 or result.size != expect_size:
            raise ClientError(f"GET {url}: status {result.status}, {result.size} bytes")
    return elapsed


def skopeo_pull_argv(host: str, name: str, tag: str, dest: Path) -> list[str]:
    return [
        "skopeo",
        "--insecure-policy",
        "copy",
        "--quiet",
        "--retry-times",
        "0",
        "--src-tls-verify=false",
        f"docker://{host}/{name}:{tag}",
        f"dir:{dest}",
    ]


def pull_many(host: str, name: str, tag: str, dests: list[Path], *, timeout: float = 600) -> float:
    """One skopeo pull into each of `dests`, all at once; returns the wall time of the slowest."""
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            skopeo_pull_argv(host, name, tag, dest),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for dest in dests
    ]
    errors: list[str] = []
    try:
        deadline = start + timeout
        for proc in procs:
            _, err = proc.communicate(timeout=max(deadline - time.perf_counter(), 0.1))
            if proc.returncode != 0:
                errors.append(err.decode(errors="replace")[-1500:])
        elapsed = time.perf_counter() - start
    except subprocess.TimeoutExpired:
        raise ClientError(f"skopeo pulls from {host} took more than {timeout:.0f} s") from None
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for dest in dests:
            shutil.rmtree(dest, ignore_errors=True)
    if errors:
        raise ClientError(f"{len(errors)} skopeo pull(s) from {host} failed:\n{errors[0]}")
    return elapsed


@dataclass(frozen=True)
class WrkResult:
    requests_per_second: float
    p99_ms: float
    requests: int
    bad: int
    """Non-2xx answers plus socket errors."""


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def wrk(
    url: str,
    *,
    headers: dict[str, str],
    threads: int,
    connections: int,
    seconds: float,
) -> WrkResult:
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(seconds, 1):.0f}s", "--latency"]
    for key, value in headers.items():
        argv += ["-H", f"{key}: {value}"]
    argv.append(url)
    try:
        text = run(argv, timeout=seconds + 60)
    except ProcessError as exc:
        raise ClientError(str(exc)) from None
    return parse_wrk(text)


def parse_wrk(text: str) -> WrkResult:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.MULTILINE)
    total = re.search(r"(\d+) requests in", text)
    if rps is None or p99 is None or total is None:
        raise ClientError(f"cannot read wrk's output:\n{text}")
    bad = 0
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    if non2xx:
        bad += int(non2xx[1])
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    if sockets:
        bad += sum(int(sockets[i]) for i in range(1, 5))
    return WrkResult(float(rps[1]), float(p99[1]) * _UNITS[p99[2]], int(total[1]), bad)


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes


def get(host: str, path: str, headers: dict[str, str], *, timeout: float = 30) -> Answer:
    """A small GET (a manifest), read whole."""
    hostname, port = host.rsplit(":", 1)
    conn = http.client.HTTPConnection(hostname, int(port), timeout=timeout)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        body = response.read()
        return Answer(response.status, response.getheader("Content-Type", ""), body)
    except OSError as exc:
        raise ClientError(f"GET {host}{path}: {exc}") from None
    finally:
        conn.close()
