"""One line per request: who asked for what, the answer, and where its bytes came from.

Request headers are never logged, so credentials and tokens cannot appear here.
"""

from __future__ import annotations

import logging

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

log = logging.getLogger("regcache.access")


class AccessLogger(AbstractAccessLogger):
    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        self.logger.info(
            '%s "%s %s" %d %d %s %.3fs',
            request.remote or "-",
            request.method,
            request.rel_url.path,
            response.status,
            response.content_length if response.content_length is not None else 0,
            response.headers.get("X-Cache", "-"),
            time,
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)
