from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from regcache.errors import RangeInvalid
from regcache.ranges import ByteRange, parse_range


def test_no_header_means_whole_blob() -> None:
    assert parse_range(None, 10) is None


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-0", ByteRange(0, 1)),
        ("bytes=2-", ByteRange(2, 10)),
        ("bytes=2-100", ByteRange(2, 10)),
        ("bytes=-3", ByteRange(7, 10)),
        ("bytes=-30", ByteRange(0, 10)),
        ("bytes=0-1, 4-5", None),
    ],
)
def test_ranges(header: str, expected: ByteRange | None) -> None:
    assert parse_range(header, 10) == expected


@pytest.mark.parametrize(
    "header", ["bytes=10-", "bytes=11-20", "bytes=-0", "items=0-1", "bytes=x-1"]
)
def test_unsatisfiable_or_malformed_is_416_with_size(header: str) -> None:
    with pytest.raises(RangeInvalid) as caught:
        parse_range(header, 10)
    assert caught.value.status == 416
    assert caught.value.headers["Content-Range"] == "bytes */10"


@given(size=st.integers(1, 10_000), start=st.integers(0, 20_000), length=st.integers(0, 20_000))
def test_satisfiable_ranges_stay_inside_the_blob(size: int, start: int, length: int) -> None:
    header = f"bytes={start}-{start + length}"
    if start >= size:
        with pytest.raises(RangeInvalid):
            parse_range(header, size)
        return
    span = parse_range(header, size)
    assert span is not None
    assert 0 <= span.start < span.end <= size
    assert span.start == start
    assert span.length == min(length + 1, size - start)
    assert span.content_range(size) == f"bytes {span.start}-{span.end - 1}/{size}"


@given(size=st.integers(0, 10_000), suffix=st.integers(1, 20_000))
def test_suffix_ranges_end_at_the_last_byte(size: int, suffix: int) -> None:
    if size == 0:
        with pytest.raises(RangeInvalid):
            parse_range(f"bytes=-{suffix}", size)
        return
    span = parse_range(f"bytes=-{suffix}", size)
    assert span == ByteRange(max(size - suffix, 0), size)


@given(st.text(max_size=40))
def test_any_header_parses_or_is_a_416(header: str) -> None:
    try:
        span = parse_range(header, 100)
    except RangeInvalid as err:
        assert err.status == 416
        return
    assert span is None or 0 <= span.start < span.end <= 100
