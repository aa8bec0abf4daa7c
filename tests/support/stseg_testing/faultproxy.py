"""A fault-injecting HTTP proxy for tests: sits in front of a real S3 server and breaks chosen requests.

Each request from the client is read whole (headers and body, `Content-Length` or chunked, answering
`Expect: 100-continue` itself), then a policy picks what happens to it:

- `pass`      forward to the upstream server and relay its reply;
- `reset`     close the connection without any reply (a dropped connection);
- `truncate`  forward, relay the reply's headers and half its body (or, for a reply without a body,
              part of its status line), then close (a drop mid-response);
- `500`/`503` answer an S3 error (`InternalError` / `SlowDown`) without forwarding;
- `slow`      forward, but wait `slow_s` seconds before relaying (past the client's read timeout when
              `slow_s` exceeds it).

Policies are deterministic: `seeded(seed, rates)` draws actions from a seeded RNG in request order,
`schedule([...])` plays a fixed list then passes, `always(action)`; any of them may be restricted to
requests whose method/path match. `counts` tells a test how many faults really happened.
"""

from __future__ import annotations

import random
import socket
import socketserver
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

ACTIONS = ("pass", "reset", "truncate", "500", "503", "slow")

_ERRORS = {
    "500": ("500 Internal Server Error", "InternalError", "We encountered an internal error. Please try again."),
    "503": ("503 Slow Down", "SlowDown", "Please reduce your request rate."),
}


@dataclass(frozen=True)
class Request:
    """What a policy sees: the method, the path with query, and the headers (lower-case names)."""

    method: str
    path: str
    headers: dict[str, str]


Policy = Callable[[Request], str]


def always(action: str, when: Callable[[Request], bool] | None = None) -> Policy:
    _check(action)
    return lambda req: action if when is None or when(req) else "pass"


def schedule(actions: list[str], when: Callable[[Request], bool] | None = None) -> Policy:
    """The given actions for the first matching requests, in order, then `pass`."""
    for a in actions:
        _check(a)
    pending = list(actions)
    lock = threading.Lock()

    def pick(req: Request) -> str:
        if when is not None and not when(req):
            return "pass"
        with lock:
            return pending.pop(0) if pending else "pass"

    return pick


def seeded(seed: int, rates: dict[str, float], when: Callable[[Request], bool] | None = None) -> Policy:
    """Each matching request gets a fault with the given probability, drawn from `random.Random(seed)`."""
    for a in rates:
        _check(a)
    rng = random.Random(seed)
    lock = threading.Lock()

    def pick(req: Request) -> str:
        if when is not None and not when(req):
            return "pass"
        with lock:
            u = rng.random()
        for action, rate in rates.items():
            if u < rate:
                return action
            u -= rate
        return "pass"

    return pick


def _check(action: str) -> None:
    if action not in ACTIONS:
        raise ValueError(f"unknown fault {action!r}; known: {', '.join(ACTIONS)}")


class _Closed(Exception):
    pass


def _read_until(sock: socket.socket, buf: bytearray, marker: bytes) -> bytes:
    while True:
        idx = buf.find(marker)
        if idx >= 0:
            out = bytes(buf[: idx + len(marker)])
            del buf[: idx + len(marker)]
            return out
        chunk = sock.recv(65536)
        if not chunk:
            raise _Closed
        buf.extend(chunk)


def _read_exact(sock: socket.socket, buf: bytearray, n: int) -> bytes:
    while len(buf) < n:
        chunk = sock.recv(max(65536, n - len(buf)))
        if not chunk:
            raise _Closed
        buf.extend(chunk)
    out = bytes(buf[:n])
    del buf[:n]
    return out


def _read_chunked(sock: socket.socket, buf: bytearray) -> bytes:
    """The raw bytes of a chunked body, trailers included (aws-chunked bodies are valid chunked bodies)."""
    raw = bytearray()
    while True:
        line = _read_until(sock, buf, b"\r\n")
        raw += line
        size = int(line.split(b";")[0].strip(), 16)
        if size == 0:
            break
        raw += _read_exact(sock, buf, size + 2)
    while True:  # trailers, then the empty line
        line = _read_until(sock, buf, b"\r\n")
        raw += line
        if line == b"\r\n":
            return bytes(raw)


def _parse_head(head: bytes) -> tuple[str, list[tuple[str, str]]]:
    lines = head.decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
    return lines[0], headers


def _get(headers: list[tuple[str, str]], name: str) -> str | None:
    for k, v in headers:
        if k.lower() == name:
            return v
    return None


class FaultProxy:
    """Listens on 127.0.0.1:<free port>, forwards to `upstream` ("http://host:port") per `policy`."""

    def __init__(self, upstream: str, policy: Policy | None = None, slow_s: float = 2.0) -> None:
        host, _, port = upstream.removeprefix("http://").rstrip("/").partition(":")
        self.upstream = (host, int(port or 80))
        self.policy: Policy = policy or always("pass")
        self.slow_s = slow_s
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                proxy._serve(self.request)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def faults(self) -> int:
        """How many requests were broken on purpose so far."""
        with self._lock:
            return sum(n for a, n in self.counts.items() if a != "pass")

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- one client connection (keep-alive: many requests) -----------------------------------------
    def _serve(self, client: socket.socket) -> None:
        buf = bytearray()
        try:
            while True:
                head = _read_until(client, buf, b"\r\n\r\n")
                start, headers = _parse_head(head)
                method, path, _version = start.split(" ", 2)
                if (_get(headers, "expect") or "").lower() == "100-continue":
                    client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                if (_get(headers, "transfer-encoding") or "").lower() == "chunked":
                    body = _read_chunked(client, buf)
                else:
                    body = _read_exact(client, buf, int(_get(headers, "content-length") or 0))
                request = Request(method, path, {k.lower(): v for k, v in headers})
                action = self.policy(request)
                with self._lock:
                    self.counts[action] += 1
                if not self._answer(client, action, method, start, headers, body):
                    return
        except (_Closed, ConnectionError, OSError):
            return
        finally:
            try:
                client.close()
            except OSError:
                pass

    def _answer(
        self, client: socket.socket, action: str, method: str, start: str, headers: list[tuple[str, str]], body: bytes
    ) -> bool:
        """Carry out `action`; returns whether the client connection stays open."""
        if action == "reset":
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            return False
        if action in _ERRORS:
            status, code, message = _ERRORS[action]
            xml = (
                f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
                f"<Message>{message}</Message></Error>"
            ).encode()
            client.sendall(
                f"HTTP/1.1 {status}\r\nContent-Type: application/xml\r\nContent-Length: {len(xml)}\r\n\r\n".encode()
                + (b"" if method == "HEAD" else xml)
            )
            return True
        status_head, reply_body, keep = self._forward(method, start, headers, body)
        if action == "slow":
            time.sleep(self.slow_s)
        if action == "truncate":
            if reply_body:
                client.sendall(status_head + reply_body[: len(reply_body) // 2])
            else:  # cut inside the status line: http.client takes a cut inside the headers as their end
                client.sendall(status_head[:5])
            return False
        client.sendall(status_head + reply_body)
        return keep

    def _forward(
        self, method: str, start: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[bytes, bytes, bool]:
        """Send the request upstream on a fresh connection; returns (status line + headers, body, keep-alive)."""
        drop = {"expect", "connection", "proxy-connection", "keep-alive"}
        out = [start] + [f"{k}: {v}" for k, v in headers if k.lower() not in drop] + ["Connection: close", "", ""]
        with socket.create_connection(self.upstream, timeout=60) as up:
            up.sendall("\r\n".join(out).encode("latin-1") + body)
            buf = bytearray()
            while True:
                head = _read_until(up, buf, b"\r\n\r\n")
                if not head.split(b" ", 2)[1].startswith(b"1"):  # skip interim 1xx replies
                    break
            status_line, reply_headers = _parse_head(head)
            code = int(status_line.split(" ", 2)[1])
            if method == "HEAD" or code in (204, 304):
                reply = b""
            elif (_get(reply_headers, "transfer-encoding") or "").lower() == "chunked":
                reply = _read_chunked(up, buf)
            elif _get(reply_headers, "content-length") is not None:
                reply = _read_exact(up, buf, int(_get(reply_headers, "content-length")))
            else:  # close-delimited: read to the end and give the client a length instead
                while chunk := up.recv(65536):
                    buf.extend(chunk)
                reply = bytes(buf)
                reply_headers.append(("Content-Length", str(len(reply))))
        kept = [(k, v) for k, v in reply_headers if k.lower() not in ("connection", "keep-alive")]
        lines = [status_line] + [f"{k}: {v}" for k, v in kept] + ["", ""]
        return "\r\n".join(lines).encode("latin-1"), reply, True
