"""A TCP proxy in front of kube-apiserver that withholds the answers on chosen connections.

kube-apiserver speaks only TLS, so this proxy cannot read the requests; it does not need to.
It forwards every byte from the client to the API server, so each request arrives and is
applied. On the next `hold(count)` connections it stops forwarding the API server's bytes to
the client once the client has begun its first request (its second TLS 1.3 application-data
record: the first is the client's Finished), so the client hears nothing back and times out
though its write happened: the hard case for a client that retries. Other connections (those
opened before, the watch streams, and every one after the held ones) pass untouched.

`held()` says how many connections were held so far, so a test can check the fault happened;
`requests_quiet_for()` how long no client has sent a byte on any connection still open: once
that exceeds a client's keep-alive, its pool has no idle connection left (watch streams send
nothing after their request), so its next requests open new connections.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

APPLICATION_DATA = 0x17
#: The client's application-data record at which its answers begin to be withheld.
REQUEST_RECORD = 2


class _Records:
    """Counts the client's TLS records of one type as its bytes stream past (records split
    across reads are handled: only the 5-byte headers are parsed)."""

    def __init__(self) -> None:
        self._buffer = b""
        self._skip = 0
        self.application_data = 0

    def feed(self, data: bytes) -> None:
        data = self._buffer + data
        self._buffer = b""
        position = 0
        while position < len(data):
            if self._skip:
                step = min(self._skip, len(data) - position)
                self._skip -= step
                position += step
                continue
            if len(data) - position < 5:
                self._buffer = data[position:]
                return
            kind = data[position]
            length = int.from_bytes(data[position + 3 : position + 5], "big")
            if kind == APPLICATION_DATA:
                self.application_data += 1
            position += 5
            self._skip = length


class StallProxy:
    """See the module docstring; `start()` serves it from threads of the calling process."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 443)
        self._lock = threading.Lock()
        self._to_hold = 0
        self._held = 0
        self._last_sent: dict[threading.Event, float] = {}  # open pair -> last client byte
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> StallProxy:
        listener = socket.create_server(("127.0.0.1", 0))
        self._listener = listener
        self.port = listener.getsockname()[1]
        threading.Thread(target=self._accept, name="stall-accept", daemon=True).start()
        return self

    def hold(self, count: int) -> None:
        """Withhold the answers on the next `count` connections (added to any still pending)."""
        with self._lock:
            self._to_hold += count

    def held(self) -> int:
        with self._lock:
            return self._held

    def requests_quiet_for(self) -> float:
        with self._lock:
            last = max(self._last_sent.values(), default=0.0)
        return time.monotonic() - last

    def stop(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            with self._lock:
                hold = self._to_hold > 0
                if hold:
                    self._to_hold -= 1
                self._sockets.update((client, server))
            trigger = threading.Event()
            closed = threading.Event()
            records = _Records()
            with self._lock:
                self._last_sent[closed] = time.monotonic()

            def client_bytes(
                data: bytes,
                records: _Records = records,
                ev: threading.Event = trigger,
                pair: threading.Event = closed,
                hold: bool = hold,
            ) -> None:
                with self._lock:
                    if pair in self._last_sent:
                        self._last_sent[pair] = time.monotonic()
                if not hold:
                    return
                records.feed(data)
                if records.application_data >= REQUEST_RECORD and not ev.is_set():
                    ev.set()
                    with self._lock:
                        self._held += 1

            threading.Thread(
                target=self._pump,
                args=(client, server, client_bytes, None, closed),
                daemon=True,
            ).start()
            threading.Thread(
                target=self._pump,
                args=(server, client, None, trigger if hold else None, closed),
                daemon=True,
            ).start()

    def _pump(
        self,
        source: socket.socket,
        target: socket.socket,
        observe: Callable[[bytes], None] | None,
        withhold: threading.Event | None,
        closed: threading.Event,
    ) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if observe is not None:
                    observe(data)
                if withhold is not None and withhold.is_set():
                    continue  # swallowed: the client never hears the answer
                target.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                if not closed.is_set():  # the first of the pair's two pumps to end
                    closed.set()
                    self._last_sent.pop(closed, None)
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    sock.close()
                with self._lock:
                    self._sockets.discard(sock)
