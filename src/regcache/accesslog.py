"""One line per request: who asked for what, the answer, and where its bytes came from.

The fields also travel as `access` on the record, which the JSON log format writes out.

Request headers are never logged, so credentials and tokens cannot appear here.
"""

from __future__ import annotations

import logging

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

log = logging.getLogger("regcache.access")


def fields(request: BaseRequest, response: StreamResponse, time: float) -> dict[str, object]:
    return {
        "remote": request.remote or "-",
        "method": request.method,
        "path": request.rel_url.path,
        "status": response.status,
        "bytes": response.content_length if response.content_length is not None else 0,
        "cache": response.headers.get("X-Cache", "-"),
        "duration": round(time, 6),
    }


class AccessLogger(AbstractAccessLogger):
    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        entry = fields(request, response, time)
        self.logger.info(
            '%s "%s %s" %d %d %s %.3fs',
            entry["remote"],
            entry["method"],
            entry["path"],
            entry["status"],
            entry["bytes"],
            entry["cache"],
            time,
            extra={"access": entry},
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)
