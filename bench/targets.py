"""Verdicts on regcache's targets from the tables."""

from __future__ import annotations

from collections.abc import Callable

from bench.results import Table, Target
from bench.systems import REGCACHE


def ratio_text(value: float, unit: str) -> str:
    return f"{value:.3f}{unit}" if abs(value) < 10 else f"{value:.3g}{unit}"


def ratio_target(
    scenario: str,
    goal: str,
    values: list[float | None],
    ok: Callable[[float], bool],
    unit: str = "x",
) -> Target:
    """Met when every value passes `ok`; not measured when any is missing."""
    if not values or any(value is None for value in values):
        return Target(scenario, goal)
    known = [value for value in values if value is not None]
    measured = ", ".join(ratio_text(value, unit) for value in known)
    return Target(scenario, goal, measured, all(ok(value) for value in known))


def exactly_once(scenario: str, goal: str, *tables: Table) -> Target:
    """Met when every run of regcache in `tables` has the value 1.0 (upstream bytes / size)."""
    values = [value for table in tables for value in table.rows.get(REGCACHE, [])]
    if not values or any(REGCACHE in table.failures for table in tables):
        return Target(scenario, goal)
    measured = ", ".join(sorted({f"{value:.4g}x" for value in values}))
    return Target(scenario, goal, measured, all(abs(value - 1.0) < 1e-9 for value in values))
