"""What a benchmark run found: tables of per-run values, target verdicts, notes."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Table:
    """One metric for several systems; each row holds one value per run."""

    title: str
    unit: str
    higher_is_better: bool
    references: list[str]
    rows: dict[str, list[float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)

    def add(self, system: str, value: float) -> None:
        self.rows.setdefault(system, []).append(value)

    def fail(self, system: str, reason: str) -> None:
        self.failures[system] = reason

    def median(self, system: str) -> float | None:
        values = self.rows.get(system)
        return statistics.median(values) if values else None

    def ratio(self, system: str, reference: str) -> float | None:
        """Median over the reference's median (for times, >1 means slower)."""
        value, base = self.median(system), self.median(reference)
        if value is None or base is None or base == 0:
            return None
        return value / base

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "unit": self.unit,
            "higher_is_better": self.higher_is_better,
            "references": self.references,
            "systems": {
                system: {
                    "values": values,
                    "median": self.median(system),
                    "min": min(values),
                    "max": max(values),
                    "ratios": {ref: self.ratio(system, ref) for ref in self.references},
                }
                for system, values in self.rows.items()
            },
            "failures": self.failures,
            "notes": self.notes,
        }


@dataclass
class Target:
    """One of regcache's targets: met, missed, or not measured (met is None)."""

    scenario: str
    goal: str
    measured: str = "not measured"
    met: bool | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "goal": self.goal,
            "measured": self.measured,
            "met": self.met,
        }


@dataclass
class Scenario:
    key: str
    title: str
    tables: list[Table] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None

    def table(
        self, title: str, unit: str, *, higher_is_better: bool, references: list[str]
    ) -> Table:
        table = Table(title, unit, higher_is_better, references)
        self.tables.append(table)
        return table

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "seconds": round(self.seconds, 1),
            "error": self.error,
            "notes": self.notes,
            "targets": [target.to_json() for target in self.targets],
            "tables": [table.to_json() for table in self.tables],
        }
