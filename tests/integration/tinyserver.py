"""A tiny HTTP server on loopback whose answers a test scripts: honest, lying or hostile API servers.

The handler gets the request's path and parsed query and writes the whole response itself through the
`Reply` it is given (status, headers, body in chunks, pauses), so a test can send what no well-behaved
server would: bad headers, cut or endless bodies, one byte at a time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class Reply:
    """Writes one response to the client."""

    def __init__(self, handler: BaseHTTPRequestHandler) -> None:
        self._handler = handler

    def send(self, status: int, body: bytes, headers: dict[str, str] | None = None,
             chunks: Iterator[bytes] | None = None) -> None:
        """Status line, headers (Content-Length from `body` unless given), then `body` or the chunks."""
        h = self._handler
        h.send_response(status)
        headers = {"Content-Type": "application/json", **(headers or {})}
        if chunks is None:
            headers.setdefault("Content-Length", str(len(body)))
        for name, value in headers.items():
            h.send_header(name, value)
        h.end_headers()
        try:
            if chunks is None:
                h.wfile.write(body)
            else:
                for chunk in chunks:
                    h.wfile.write(chunk)
                    h.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up, as it should with some of these answers


Handler = Callable[[str, dict[str, list[str]], Reply], None]


class TinyServer:
    """Serves `handler` on 127.0.0.1; `requests` lists (path, query) of every request."""

    def __init__(self, handler: Handler) -> None:
        self.requests: list[tuple[str, dict[str, list[str]]]] = []
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = parse_qs(parts.query, keep_blank_values=True)
                server.requests.append((parts.path, query))
                handler(parts.path, query, Reply(self))

            def log_message(self, *args: Any) -> None:
                pass

        class _Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client hanging up on a hostile answer is expected, not news for stderr

        self._http = _Server(("127.0.0.1", 0), _Handler)
        self._http.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._http.server_address[1]}/client/v4"
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    def __enter__(self) -> TinyServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.shutdown()
        self._http.server_close()


@contextmanager
def tiny_server(handler: Handler) -> Iterator[TinyServer]:
    """A running TinyServer for the length of the block."""
    with TinyServer(handler) as server:
        yield server


def slowly(data: bytes, every_s: float) -> Iterator[bytes]:
    """`data` one byte at a time, `every_s` seconds apart (a server trickling its answer)."""
    for i in range(len(data)):
        time.sleep(every_s)
        yield data[i:i + 1]
