"""Bearer tokens from a registry's token realm, cached per scope and identity until they expire."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

from regcache.errors import CLIENT_CHALLENGE, Denied, Unauthorized, UpstreamUnavailable
from regcache.singleflight import SingleFlight
from regcache.upstream.challenge import Challenge
from regcache.upstream.credentials import Credentials

DEFAULT_LIFETIME = 60.0
# A token is renewed this long before it expires, so a request never leaves with a stale one.
EXPIRY_MARGIN = 5.0


@dataclass(frozen=True)
class _Token:
    value: str
    expires: float


class TokenCache:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        timeout: aiohttp.ClientTimeout,
        on_fetch: Callable[[], None],
    ) -> None:
        self._session = session
        self._timeout = timeout
        self._on_fetch = on_fetch
        self._tokens: dict[tuple[str, str, str, str], _Token] = {}
        self._flights: SingleFlight[tuple[str, str, str, str], _Token] = SingleFlight()

    async def token(self, challenge: Challenge, scope: str, credentials: Credentials | None) -> str:
        realm = challenge.realm
        if not realm:
            raise Unauthorized("the upstream's Bearer challenge names no realm")
        service = challenge.params.get("service", "")
        identity = credentials.identity if credentials else ""
        key = (realm, service, scope, identity)
        cached = self._tokens.get(key)
        if cached is not None and cached.expires > time.monotonic():
            return cached.value
        token = await self._flights.run(
            key, lambda: self._fetch(realm, service, scope, credentials)
        )
        self._tokens[key] = token
        return token.value

    def forget(self, challenge: Challenge, scope: str, credentials: Credentials | None) -> None:
        identity = credentials.identity if credentials else ""
        realm, service = challenge.realm or "", challenge.params.get("service", "")
        self._tokens.pop((realm, service, scope, identity), None)

    async def _fetch(
        self, realm: str, service: str, scope: str, credentials: Credentials | None
    ) -> _Token:
        params = {k: v for k, v in (("service", service), ("scope", scope)) if v}
        headers = {"Authorization": credentials.basic_header()} if credentials else {}
        self._on_fetch()
        try:
            async with self._session.get(
                realm, params=params, headers=headers, timeout=self._timeout
            ) as resp:
                body = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UpstreamUnavailable(f"token service unreachable: {type(exc).__name__}") from None
        if status == 401:
            raise Unauthorized("the upstream refused these credentials", headers=CLIENT_CHALLENGE)
        if status == 403:
            raise Denied("the upstream denied access")
        if status != 200:
            raise UpstreamUnavailable(f"token service answered {status}")
        try:
            doc = json.loads(body)
            value = doc.get("token") or doc.get("access_token")
            lifetime = float(doc.get("expires_in") or DEFAULT_LIFETIME)
        except (ValueError, AttributeError, TypeError):
            value = None
        if not isinstance(value, str) or not value:
            raise UpstreamUnavailable("token service answered without a token")
        expires = time.monotonic() + max(lifetime - EXPIRY_MARGIN, 1.0)
        return _Token(value, expires)
