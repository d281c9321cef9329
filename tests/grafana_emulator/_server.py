"""The HTTP side of the emulator: a threaded HTTP/1.1 server that hands each request to the emulator."""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from . import GrafanaEmulator


@dataclass
class Reply:
    """What to answer: status and JSON payload, extra headers, or drop the connection (status 0)."""

    status: int
    payload: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False


class EmulatorHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that tracks open connections so stop() can close idle keep-alive sockets."""

    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, emulator: GrafanaEmulator) -> None:
        self.emulator = emulator
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet about clients that went away (timeouts, dropped connections, stop())."""
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):
            return
        super().handle_error(request, client_address)

    def track(self, sock: socket.socket, *, add: bool) -> None:
        """Register (add=True) or forget an accepted connection."""
        with self._connections_lock:
            if add:
                self._connections.add(sock)
            else:
                self._connections.discard(sock)

    def close_connections(self) -> None:
        """Shut down every open connection so the handler threads blocked on reads return."""
        with self._connections_lock:
            socks = list(self._connections)
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "grafana-emulator"
    sys_version = ""
    disable_nagle_algorithm = True
    timeout = 120
    server: EmulatorHTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, add=True)
        if self.server.emulator.stopping:
            # Accepted just as stop() began: close now, or server_close() would wait for our read timeout.
            self.connection.shutdown(socket.SHUT_RDWR)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _dispatch(self) -> None:
        body = self._read_body()
        reply = self.server.emulator._handle(self.command, self.path, self.headers, body)
        if reply.drop:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        phrase = HTTPStatus(reply.status).phrase if reply.status in HTTPStatus._value2member_map_ else "Unknown"
        lines = [
            f"HTTP/1.1 {reply.status} {phrase}",
            f"Date: {formatdate(usegmt=True)}",
            "Content-Type: application/json",
            f"Content-Length: {len(reply.payload)}",
        ]
        lines.extend(f"{k}: {v}" for k, v in reply.headers.items())
        if self.close_connection:
            lines.append("Connection: close")
        # One write for head and body: no Nagle/delayed-ACK stalls on keep-alive connections.
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + reply.payload)
