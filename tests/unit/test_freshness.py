from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from regcache.freshness import FreshnessPolicy, TagRule, parse_rules

tags = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,20}", fullmatch=True)
ttls = st.floats(min_value=0, max_value=1e6, allow_nan=False)


@given(tag=tags, fetched=st.floats(0, 1e9), age=st.floats(0, 1e7))
def test_ttl_zero_always_revalidates(tag: str, fetched: float, age: float) -> None:
    assert not FreshnessPolicy(0.0).is_fresh(tag, fetched, fetched + age)


@given(tag=tags, ttl=st.integers(0, 10**6), age=st.integers(0, 2 * 10**6))
def test_fresh_exactly_within_the_ttl(tag: str, ttl: int, age: int) -> None:
    policy = FreshnessPolicy(ttl)
    assert policy.is_fresh(tag, 1000.0, 1000.0 + age) == (ttl > 0 and age < ttl)


@given(tag=tags, ttl=ttls)
def test_a_clock_that_went_back_is_not_fresh(tag: str, ttl: float) -> None:
    assert not FreshnessPolicy(ttl).is_fresh(tag, 1000.0, 999.0)


@given(tag=tags, first=ttls, second=ttls, default=ttls)
def test_the_first_matching_rule_wins(
    tag: str, first: float, second: float, default: float
) -> None:
    policy = FreshnessPolicy(default, (TagRule("*", first), TagRule(tag, second)))
    assert policy.ttl_for(tag) == first


@pytest.mark.parametrize(
    ("tag", "expected"),
    [("1.2.3", 86400), ("v10.0.1", 86400), ("1.2.3-alpine", 86400), ("latest", 0),
     ("1.2", 300), ("main", 300)],
)  # fmt: skip
def test_semver_tags_trusted_longer_than_latest(tag: str, expected: float) -> None:
    policy = FreshnessPolicy(
        300, parse_rules([{"pattern": "semver", "ttl": 86400}, {"pattern": "latest", "ttl": 0}])
    )
    assert policy.ttl_for(tag) == expected


def test_rules_from_json_and_their_mistakes() -> None:
    assert parse_rules('[{"pattern": "v*", "ttl": 5}]') == (TagRule("v*", 5.0),)
    for bad in ('{"pattern": "x"}', '[{"pattern": "x"}]', '[{"pattern": "x", "ttl": -1}]'):
        with pytest.raises(ValueError):
            parse_rules(bad)
