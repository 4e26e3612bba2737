"""How big and how long: the default run, --quick and --smoke."""

from __future__ import annotations

from dataclasses import dataclass

from bench import systems

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

SCENARIOS = ("S1", "S2", "S3", "S4", "S5", "S6", "S7")


@dataclass(frozen=True)
class Profile:
    mode: str
    big_layer: int
    """Payload of the blob of S1 and S7."""
    pull_layers: tuple[int, ...]
    """The image of S2 and S3: one large layer plus small ones."""
    many_layers: tuple[int, ...]
    """The image of S3."""
    slow_layers: tuple[int, ...]
    """The image of S4."""
    runs: dict[str, int]
    s1_clients: tuple[int, ...] = (1, 8)
    s3_clients: tuple[int, ...] = (1, 4, 16)
    wrk_seconds: float = 10.0
    wrk_threads: int = 2
    wrk_connections: int = 64
    link_rate: str = "100mbit"
    link_delay_ms: float = 20.0
    netns: bool = True
    """S4 in network namespaces (else: the loopback relay also limits the rate)."""
    systems: tuple[str, ...] = systems.ALL
    scenarios: tuple[str, ...] = SCENARIOS


DEFAULT = Profile(
    mode="default",
    big_layer=GiB,
    pull_layers=(500 * MiB, 4 * MiB, 1 * MiB, 64 * KiB),
    many_layers=(64 * MiB, 1 * MiB, 64 * KiB),
    slow_layers=(196 * MiB, 3 * MiB, 1 * MiB),
    runs={"S1": 3, "S2": 3, "S3": 2, "S4": 2, "S5": 2, "S7": 3},
)

QUICK = Profile(
    mode="quick",
    big_layer=128 * MiB,
    pull_layers=(48 * MiB, 1 * MiB, 64 * KiB),
    many_layers=(12 * MiB, 64 * KiB),
    slow_layers=(12 * MiB, 1 * MiB),
    runs={"S1": 1, "S2": 2, "S3": 1, "S4": 1, "S5": 1, "S7": 1},
    wrk_seconds=2.0,
)

SMOKE = Profile(
    mode="smoke",
    big_layer=4 * MiB,
    pull_layers=(2 * MiB, 64 * KiB),
    many_layers=(1 * MiB, 16 * KiB),
    slow_layers=(1 * MiB, 16 * KiB),
    runs={"S1": 1, "S2": 1, "S3": 1, "S4": 1, "S5": 1, "S7": 1},
    s1_clients=(1, 2),
    s3_clients=(1, 2),
    wrk_seconds=1.0,
    wrk_connections=8,
    systems=(systems.NGINX_SYS, systems.DIRECT, systems.REGCACHE, systems.DISTRIBUTION),
)

PROFILES = {profile.mode: profile for profile in (DEFAULT, QUICK, SMOKE)}
