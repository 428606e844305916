"""A TCP proxy that can cut a client off its server and let it back, for outage tests.

It forwards bytes unchanged (TLS passes through, so a kubeconfig keeps its CA and token and
only its server address changes). `cut()` closes every open connection and closes each new one
at once, as a network partition seen from the client does; `restore()` lets clients connect
again. The server behind it keeps running, and other clients keep reaching it directly: a test
can change the cluster while one operator cannot see it.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from pathlib import Path

from tests.stack.processes import free_port

BUFFER = 65536


class TcpProxy:
    """127.0.0.1:`port` -> `upstream_host`:`upstream_port`, byte for byte, until cut."""

    def __init__(self, upstream_host: str, upstream_port: int, port: int | None = None) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = port or free_port()
        self._lock = threading.Lock()
        self._open = True
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self.accepted = 0  # connections forwarded so far (tests and logs)

    def start(self) -> TcpProxy:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        self._listener = listener
        threading.Thread(target=self._accept, name="tcpproxy-accept", daemon=True).start()
        return self

    def cut(self) -> None:
        """Close every forwarded connection; connections made until `restore` are closed at once."""
        with self._lock:
            self._open = False
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            _close(sock)

    def restore(self) -> None:
        with self._lock:
            self._open = True

    def stop(self) -> None:
        self.cut()
        if self._listener is not None:
            _close(self._listener)
            self._listener = None

    def _accept(self) -> None:
        listener = self._listener
        while listener is not None:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # stopped
            with self._lock:
                allowed = self._open
            if not allowed:
                _close(client)
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=10)
            except OSError:
                _close(client)
                continue
            server.settimeout(None)
            with self._lock:
                if not self._open:  # cut while connecting
                    _close(client)
                    _close(server)
                    continue
                self._sockets.update((client, server))
                self.accepted += 1
            for source, target in ((client, server), (server, client)):
                threading.Thread(
                    target=self._pump, args=(source, target), name="tcpproxy-pump", daemon=True
                ).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(BUFFER):
                target.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._sockets.discard(source)
                self._sockets.discard(target)
            _close(source)
            _close(target)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


def kubeconfig_through(proxy: TcpProxy, source: Path, target: Path) -> Path:
    """A copy of the kubeconfig `source` at `target` that reaches its server through `proxy`
    (same CA, same credentials: the API server's certificate is valid for 127.0.0.1)."""
    config = json.loads(source.read_text())
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = f"https://127.0.0.1:{proxy.port}"
    target.write_text(json.dumps(config, indent=2))
    target.chmod(0o600)
    return target
