"""The emulated API on a socket: HTTP/1.1 keep-alive, a listen backlog sized for the expected clients,
and a shutdown that ends idle keep-alive connections instead of waiting for them."""

from __future__ import annotations

import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from auditor.testing.api import Api

_IDLE_TIMEOUT = 30  # seconds an idle keep-alive connection stays open
_BACKLOG_SPARE = 16  # room for clients that reconnect (retries) while their old connection closes
HANDLER_THREAD = "auditor-emulator-connection"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the real API: clients reuse connections
    timeout = _IDLE_TIMEOUT
    disable_nagle_algorithm = True  # headers and body go in two writes: without this, 40 ms per request
    server: ApiServer

    def do_GET(self) -> None:
        self._send(*self.server.api.handle(self.path, self.headers))

    def _reject(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)  # drain, so the connection stays usable
        self._send(*self.server.api.reject_method(self.path))

    do_POST = do_PUT = do_PATCH = do_DELETE = _reject

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: tests and the CLI read the request log instead


class ApiServer(ThreadingHTTPServer):
    """One thread per connection; `server_close()` ends every connection, idle or not, and joins its thread."""

    daemon_threads = True  # for the interpreter only: close() joins them, after their sockets are shut
    block_on_close = False  # this class tracks its own handler threads (below)

    def __init__(self, address: tuple[str, int], api: Api, concurrency: int) -> None:
        self.api = api
        # socketserver's default backlog of 5 drops the SYNs of a burst of clients: they wait for a
        # retransmission (1 s, 3 s, ...) and time out under load.
        self.request_queue_size = concurrency + _BACKLOG_SPARE
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self._lock = threading.Lock()
        self._open: dict[socket.socket, threading.Thread] = {}  # connection -> its handler thread
        super().__init__(address, _Handler)

    @property
    def base_url(self) -> str:
        """`http://HOST:PORT/client/v4`."""
        address, port = self.server_address[:2]
        host = address.decode() if isinstance(address, bytes) else address
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}/client/v4"

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(target=self.process_request_thread, args=(request, client_address),
                                  name=HANDLER_THREAD, daemon=True)
        with self._lock:
            self._open[request] = thread
        thread.start()

    def shutdown_request(self, request: Any) -> None:
        with self._lock:
            self._open.pop(request, None)
        super().shutdown_request(request)

    def handlers(self) -> list[threading.Thread]:
        """The threads answering a connection now."""
        with self._lock:
            return list(self._open.values())

    def server_close(self) -> None:
        """Stop listening, end every open connection (idle keep-alive ones too) and wait for its handler."""
        super().server_close()
        with self._lock:
            open_now = list(self._open.items())
        for connection, _ in open_now:
            try:
                # A handler waiting for the next request on this connection reads end-of-file at once.
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by the client or by its handler
        for _, thread in open_now:
            thread.join()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-answer is normal (timeouts, retries, shutdown); anything else gets one line.
        exc = sys.exc_info()[1]
        if not isinstance(exc, ConnectionError | TimeoutError | OSError):
            print(f"auditor emulator: error answering {client_address}: {exc!r}", file=sys.stderr)
