from __future__ import annotations

from regcache.upstream.challenge import parse_challenge
from regcache.upstream.credentials import Credentials


def test_bearer_challenge() -> None:
    challenge = parse_challenge(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/alpine:pull"'
    )
    assert challenge is not None
    assert challenge.scheme == "bearer"
    assert challenge.realm == "https://auth.docker.io/token"
    assert challenge.params["scope"] == "repository:library/alpine:pull"


def test_basic_challenge_and_escapes() -> None:
    challenge = parse_challenge('Basic realm="a \\"quoted\\" realm", charset=UTF-8')
    assert challenge is not None
    assert challenge.scheme == "basic"
    assert challenge.realm == 'a "quoted" realm'
    assert challenge.params["charset"] == "UTF-8"


def test_empty_header() -> None:
    assert parse_challenge("") is None


def test_credentials_roundtrip_and_repr() -> None:
    credentials = Credentials("user", "p:ss")
    assert Credentials.from_basic_header(credentials.basic_header()) == credentials
    assert "p:ss" not in repr(credentials)
    assert Credentials.from_basic_header("Bearer abc") is None
    assert Credentials.from_basic_header("Basic !!!") is None
