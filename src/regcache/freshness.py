"""How long a cached tag is trusted before the upstream is asked again.

Rules are tried in order and the first whose pattern matches the tag gives the time to live;
a tag no rule matches gets the default. A TTL of 0 means: always revalidate.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from dataclasses import dataclass

SEMVER = re.compile(r"v?\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.-]+)?")
# Named patterns a rule may use instead of a glob.
NAMED = {"semver": SEMVER}


@dataclass(frozen=True, slots=True)
class TagRule:
    pattern: str
    ttl: float

    def matches(self, tag: str) -> bool:
        named = NAMED.get(self.pattern)
        if named is not None:
            return named.fullmatch(tag) is not None
        return fnmatch.fnmatchcase(tag, self.pattern)


@dataclass(frozen=True)
class FreshnessPolicy:
    default_ttl: float = 0.0
    rules: Sequence[TagRule] = ()

    def ttl_for(self, tag: str) -> float:
        for rule in self.rules:
            if rule.matches(tag):
                return rule.ttl
        return self.default_ttl

    def is_fresh(self, tag: str, fetched_at: float, now: float) -> bool:
        ttl = self.ttl_for(tag)
        return ttl > 0 and 0 <= now - fetched_at < ttl


def parse_rules(value: object) -> tuple[TagRule, ...]:
    """`[{pattern = "semver", ttl = 86400}, {pattern = "latest", ttl = 0}]` (TOML or JSON)."""
    if isinstance(value, str):
        import json

        value = json.loads(value)
    if not isinstance(value, list):
        raise ValueError("tag rules must be a list of {pattern, ttl} tables")
    rules = []
    for entry in value:
        if not isinstance(entry, dict) or set(entry) != {"pattern", "ttl"}:
            raise ValueError("each tag rule has exactly a pattern and a ttl")
        ttl = float(entry["ttl"])
        if ttl < 0:
            raise ValueError("a tag rule's ttl must not be negative")
        rules.append(TagRule(str(entry["pattern"]), ttl))
    return tuple(rules)
