# SPDX-License-Identifier: MIT
"""HTTP/1.1 clients that count the exact bytes on the wire, for the e2e tests.

TimeGlass stores req_bytes / resp_bytes = every byte of the request / response,
headers included. The tests compute the expected values on the client side:
RawConn (a raw socket: supports pipelining, Connection: close, any header) and
CountingHTTPConnection (the stdlib http.client, keep-alive, with a socket
wrapper that counts bytes sent and received).
"""

import http.client
import io
import socket
import time


class Resp:
    def __init__(self, status, headers, body, nbytes, elapsed):
        self.status = status
        self.headers = headers  # lower-case names
        self.body = body
        self.nbytes = nbytes  # bytes of this response on the wire, headers included
        self.elapsed = elapsed  # seconds, from the start of the send to the end of the read


class RawConn:
    """One TCP connection; requests are raw bytes, responses parsed and counted."""

    def __init__(self, port, host="127.0.0.1", timeout=30):
        self.host, self.port = host, port
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.eof = False
        self.t_sent = None

    @staticmethod
    def build(method, target, headers=(), body=b"", host="127.0.0.1"):
        head = f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n"
        for k, v in headers:
            head += f"{k}: {v}\r\n"
        if body or method in ("POST", "PUT"):
            head += f"Content-Length: {len(body)}\r\n"
        return head.encode("latin-1") + b"\r\n" + body

    def send(self, data):
        """Send raw bytes; returns how many were sent (all of them)."""
        self.t_sent = time.monotonic()
        self.sock.sendall(data)
        return len(data)

    def _fill(self):
        chunk = self.sock.recv(262144)
        if not chunk:
            self.eof = True
            raise ConnectionError("connection closed by the server mid-response")
        self.buf += chunk

    def _take_line(self, consumed):
        while True:
            i = self.buf.find(b"\r\n", consumed[0])
            if i >= 0:
                line = self.buf[consumed[0] : i]
                consumed[0] = i + 2
                return line
            self._fill()

    def _take(self, consumed, n):
        while len(self.buf) < consumed[0] + n:
            self._fill()
        data = self.buf[consumed[0] : consumed[0] + n]
        consumed[0] += n
        return data

    def read_response(self, method="GET"):
        """Read exactly one response (Content-Length, chunked, or until EOF)."""
        consumed = [0]
        status_line = self._take_line(consumed)
        status = int(status_line.split()[1])
        headers = {}
        while True:
            line = self._take_line(consumed)
            if not line:
                break
            k, _, v = line.decode("latin-1").partition(":")
            headers[k.strip().lower()] = v.strip()
        body = b""
        if method == "HEAD" or status in (204, 304) or status < 200:
            pass
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(self._take_line(consumed).split(b";")[0], 16)
                if size == 0:
                    while self._take_line(consumed):  # trailers, then the empty line
                        pass
                    break
                parts.append(self._take(consumed, size))
                self._take(consumed, 2)
            body = b"".join(parts)
        elif "content-length" in headers:
            body = self._take(consumed, int(headers["content-length"]))
        else:  # until EOF
            try:
                while True:
                    self._fill()
            except ConnectionError:
                pass
            body = self.buf[consumed[0] :]
            consumed[0] = len(self.buf)
        n = consumed[0]
        self.buf = self.buf[n:]
        return Resp(status, headers, body, n, time.monotonic() - self.t_sent)

    def request(self, method, target, headers=(), body=b""):
        """Send one request and read its response: returns (bytes sent, Resp)."""
        sent = self.send(self.build(method, target, headers, body))
        return sent, self.read_response(method)

    def close(self):
        self.sock.close()


class _CountingRaw(io.RawIOBase):
    def __init__(self, owner):
        self.owner = owner

    def readable(self):
        return True

    def readinto(self, b):
        n = self.owner._s.recv_into(b)
        self.owner.received += n
        return n


class _CountingSocket:
    def __init__(self, s):
        self._s = s
        self.sent = 0
        self.received = 0

    def sendall(self, data):
        self.sent += len(memoryview(data).cast("B"))
        return self._s.sendall(data)

    def makefile(self, mode="rb", *args, **kwargs):
        assert "b" in mode and "r" in mode, mode
        return io.BufferedReader(_CountingRaw(self))

    def __getattr__(self, name):
        return getattr(self._s, name)


class CountingHTTPConnection(http.client.HTTPConnection):
    """http.client on keep-alive, counting the bytes of each exchange.

    Only one request is in flight at a time, so the bytes received between two
    requests are exactly one response."""

    def connect(self):
        super().connect()
        self.sock = _CountingSocket(self.sock)

    def exchange(self, method, target, body=None, headers=None):
        """One request/response: returns (bytes sent, Resp)."""
        if self.sock is None:
            self.connect()
        s0, r0 = self.sock.sent, self.sock.received
        t0 = time.monotonic()
        self.request(method, target, body=body, headers=headers or {})
        r = self.getresponse()
        data = r.read()
        elapsed = time.monotonic() - t0
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        return self.sock.sent - s0, Resp(r.status, hdrs, data, self.sock.received - r0, elapsed)
