"""The emulator's error answers: Cloudflare's error envelope (or its edge's HTML page) with a status."""

from __future__ import annotations

import json
from collections.abc import Mapping

# Cloudflare error codes seen in public reports; 10001 (bad parameter), 10002 (internal error) and
# 7001 (method) are this emulator's choices where no public code is known.
CODE_BAD_PARAM = 10001
CODE_INTERNAL = 10002
CODE_AUTH = 10000
CODE_MISSING_AUTH = 9106
CODE_NO_ROUTE = 7000
CODE_BAD_ACCOUNT = 7003
CODE_METHOD = 7001
CODE_RATE_LIMIT = 971

_EDGE_PAGE = (
    "<html>\r\n<head><title>{status}</title></head>\r\n<body>\r\n<center><h1>{status}</h1></center>\r\n"
    "<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n"
)


class ApiError(Exception):
    """An answer other than 200: status, Cloudflare error code and message."""

    def __init__(self, status: int, code: int, message: str, headers: Mapping[str, str] | None = None,
                 *, edge_page: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        # Cloudflare's proxy answers some 5xx with an HTML page, not the API envelope.
        self.edge_page = edge_page

    def body(self) -> bytes:
        """The response body: the error envelope, or the edge's HTML page."""
        if self.edge_page:
            return _EDGE_PAGE.format(status=self.message).encode()
        envelope = {"success": False, "errors": [{"code": self.code, "message": self.message}],
                    "messages": [], "result": None}
        return json.dumps(envelope).encode()


def bad_parameter(message: str) -> ApiError:
    """A 400 for a query parameter the API refuses."""
    return ApiError(400, CODE_BAD_PARAM, message)
