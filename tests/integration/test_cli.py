"""The `regcache` command's start-up: clear messages for each configuration mistake."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "regcache", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_each_mistake_is_named_and_the_exit_code_is_2(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = run(
        "serve",
        "--upstream", "ftp://nowhere",
        "--listen", "localhost",
        "--cache-size", "lots",
        "--cache-dir", str(blocker / "cache"),
    )  # fmt: skip
    assert result.returncode == 2
    for fragment in ("upstream.url", "listen", "cache_size"):
        assert fragment in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_certificate_and_unwritable_cache_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = run(
        "serve", "--tls-dir", str(tmp_path / "none"), "--cache-dir", str(blocker / "cache")
    )
    assert result.returncode == 2
    assert "TLS certificate" in result.stderr
    assert "cache directory" in result.stderr


def test_unknown_key_in_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "regcache.toml"
    config.write_text('cache_sise = "1GB"\n')
    result = run("serve", "--config", str(config), "--cache-dir", str(tmp_path / "c"))
    assert result.returncode == 2
    assert "unknown setting 'cache_sise'" in result.stderr


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("regcache ")


def test_a_taken_port_is_an_error_before_any_listening_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run(
            "serve", "--listen", "127.0.0.1:0", "--admin-listen", f"127.0.0.1:{port}",
            "--cache-dir", str(tmp_path / "cache"), "--upstream", "http://127.0.0.1:9",
        )  # fmt: skip
    assert result.returncode == 1
    assert "address already in use" in result.stderr
    assert "listening on" not in result.stderr


WITHOUT_CLUSTER_CLIENTS = """
import importlib.abc, sys

class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("redis", "aiobotocore", "botocore"):
            raise ImportError(f"{name} is not installed")
        return None

sys.meta_path.insert(0, Missing())
from regcache.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_the_default_install_serves_without_the_cluster_clients(tmp_path: Path) -> None:
    """`pip install regcache` has no Redis or S3 client: the default setup must not need them."""
    process = subprocess.Popen(
        [sys.executable, "-c", WITHOUT_CLUSTER_CLIENTS, "serve", "--listen", "127.0.0.1:0",
         "--admin-listen", "127.0.0.1:0", "--cache-dir", str(tmp_path / "cache"),
         "--upstream", "http://127.0.0.1:9"],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stderr is not None
    with process.stderr:
        try:
            first = process.stderr.readline()
            assert first.startswith("regcache listening on http://127.0.0.1:"), first
        finally:
            process.terminate()
            process.wait(30)
    assert process.returncode == 0
