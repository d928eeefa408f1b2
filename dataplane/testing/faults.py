"""A fault-injecting HTTP reverse proxy: a test double for faults, not a fake backend.

A real server cannot be made to throttle or drop a connection on demand, so tests put
:class:`FaultProxy` between a client and a real endpoint (moto's S3 server, say). It is a
real HTTP server on 127.0.0.1 (threaded ``http.server``, a free port): every request it
does not fault is forwarded unchanged to the upstream server and the answer relayed back;
the requests its :class:`FaultRule` selects are answered with a fault instead::

    with moto_s3_server() as s3, FaultProxy(s3.endpoint_url) as proxy:
        store = open_store("s3://bucket", s3_options(proxy.endpoint_url))
        proxy.reset(FaultRule(SLOW_DOWN, first=2))
        store.put("key", b"v")    # the first two PUTs get 503 SlowDown, the third works
        assert proxy.requests == 3

Faults: ``SLOW_DOWN`` (503 with S3's ``SlowDown`` XML error), ``INTERNAL_ERROR`` (500
``InternalError``), ``ACCESS_DENIED`` (403 ``AccessDenied``, a permanent error), ``DROP``
(the connection is closed without an answer) and ``CORRUPT_BODY`` (one byte of the
request body is flipped and the request forwarded: damage in transit, which emulators
do not detect the way S3 does with ``Content-MD5``). ``before_forward`` runs a callback
just before a chosen request is forwarded, which turns a race into a deterministic test.
Only the standard library is used.
"""

from __future__ import annotations

import http.client
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Final
from urllib.parse import urlsplit

__all__ = [
    "ACCESS_DENIED",
    "CORRUPT_BODY",
    "DROP",
    "INTERNAL_ERROR",
    "SLOW_DOWN",
    "Fault",
    "FaultProxy",
    "FaultRule",
]


@dataclass(frozen=True)
class Fault:
    """What a faulted request gets: an S3-style error answer, (``status`` 0) a drop, or
    (``corrupts_body``) forwarding with one byte of its body flipped."""

    status: int
    code: str = ""
    message: str = ""
    corrupts_body: bool = False

    @property
    def drops_connection(self) -> bool:
        return self.status == 0 and not self.corrupts_body

    def body(self, request_id: int) -> bytes:
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{self.code}</Code><Message>{self.message}</Message>"
            f"<RequestId>fault-proxy-{request_id}</RequestId></Error>"
        ).encode()


SLOW_DOWN: Final = Fault(503, "SlowDown", "Please reduce your request rate.")
INTERNAL_ERROR: Final = Fault(500, "InternalError", "We encountered an internal error.")
ACCESS_DENIED: Final = Fault(403, "AccessDenied", "Access Denied")
DROP: Final = Fault(0)
CORRUPT_BODY: Final = Fault(0, corrupts_body=True)


@dataclass(frozen=True)
class FaultRule:
    """Which requests (numbered from 1) get ``fault``: the first ``first`` of them, every
    ``every``-th one, or all of them (``always``). The default rule faults nothing."""

    fault: Fault = SLOW_DOWN
    first: int = 0
    every: int = 0
    always: bool = False

    def applies(self, number: int) -> bool:
        return (self.always or number <= self.first
                or (self.every > 0 and number % self.every == 0))


_HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
    "trailer", "transfer-encoding", "upgrade", "expect", "content-length",
})
_SET_BY_PROXY = frozenset({"date", "server"})


class FaultProxy:
    """A reverse proxy to ``upstream_url`` that faults the requests ``rule`` selects.

    ``requests`` counts every request received, ``faulted`` those answered with a fault,
    and ``log`` lists them (``"GET /bucket/key -> fault 503 SlowDown"``); :meth:`reset`
    clears all three and may install a new rule. Use it as a context manager, or
    call :meth:`start` and :meth:`stop`.
    """

    def __init__(self, upstream_url: str, rule: FaultRule | None = None):
        upstream = urlsplit(upstream_url)
        self.upstream_host = upstream.hostname or "127.0.0.1"
        self.upstream_port = upstream.port or 80
        self.rule = rule or FaultRule()
        self.requests = 0
        self.faulted = 0
        self.log: list[str] = []
        #: Called as ``before_forward(number, "GET /path")`` before a request goes upstream:
        #: a test uses it to change the upstream state at an exact point (a race on demand).
        self.before_forward: Callable[[int, str], None] | None = None
        self._lock = threading.Lock()
        self._server = _ProxyServer(self)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="fault-proxy")

    @property
    def endpoint_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def reset(self, rule: FaultRule | None = None) -> None:
        with self._lock:
            self.requests = self.faulted = 0
            self.log.clear()
            if rule is not None:
                self.rule = rule

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()

    def _admit(self, request_line: str, has_body: bool) -> tuple[int, Fault | None]:
        """Number and log the request; return the fault it gets, if any (a request
        without a body has none to corrupt)."""
        with self._lock:
            self.requests += 1
            number = self.requests
            fault = self.rule.fault if self.rule.applies(number) else None
            if fault is not None and fault.corrupts_body and not has_body:
                fault = None
            self.faulted += fault is not None
            outcome = ("forwarded" if fault is None else "dropped" if fault.drops_connection
                       else "forwarded corrupted" if fault.corrupts_body
                       else f"fault {fault.status} {fault.code}")
            self.log.append(f"{request_line} -> {outcome}")
            return number, fault


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, proxy: FaultProxy):
        self.proxy = proxy
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the clients expect
    server: _ProxyServer

    def do_GET(self) -> None:
        self._handle()

    do_HEAD = do_PUT = do_POST = do_DELETE = do_GET

    def log_message(self, format: str, *args: object) -> None:
        """Silence the per-request log."""

    def _handle(self) -> None:
        body = self._read_body()
        number, fault = self.server.proxy._admit(f"{self.command} {self.path}", bool(body))
        if fault is not None and fault.corrupts_body:
            body = body[:len(body) // 2] + bytes([body[len(body) // 2] ^ 0xFF]) \
                + body[len(body) // 2 + 1:]
            fault = None
        if fault is None:
            if self.server.proxy.before_forward is not None:
                self.server.proxy.before_forward(number, f"{self.command} {self.path}")
            self._forward(body)
        elif fault.drops_connection:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        else:
            self._answer(fault.status, fault.body(number), {"Content-Type": "application/xml"})

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int(self.rfile.readline().split(b";")[0], 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            parts.append(self.rfile.read(size))
            self.rfile.readline()

    def _forward(self, body: bytes) -> None:
        proxy = self.server.proxy
        upstream = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port,
                                              timeout=60)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            if body or self.command in ("PUT", "POST"):
                headers["Content-Length"] = str(len(body))
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            data = response.read()
            relayed = {k: v for k, v in response.getheaders()
                       if k.lower() not in _HOP_BY_HOP | _SET_BY_PROXY}
            length = response.getheader("Content-Length") if self.command == "HEAD" else None
            self._answer(response.status, data, relayed, length)
        finally:
            upstream.close()

    def _answer(self, status: int, body: bytes, headers: dict[str, str],
                length: str | None = None) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", length if length is not None else str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
