"""A TCP proxy on loopback whose outage a test controls: the database 'goes away' for the
service under test without stopping the database server other tests share."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable


class Proxy:
    def __init__(
        self,
        upstream: tuple[str, int],
        watch: Callable[[], Callable[[bytes], None]] | None = None,
    ) -> None:
        """watch, if given, is called once per connection for a function that is handed
        what the client sends, before it is passed on."""
        self.upstream = upstream
        self.watch = watch
        self.port = 0
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        """Refuse new connections and cut every open one."""
        with self._lock:
            if self._listener is not None:
                # shutdown() wakes the thread blocked in accept(); close() alone would not,
                # and the kernel would keep accepting on the old socket.
                with contextlib.suppress(OSError):
                    self._listener.shutdown(socket.SHUT_RDWR)
                self._listener.close()
                self._listener = None
            for s in self._sockets:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            self._sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._sockets.update((client, server))
            seen = self.watch() if self.watch else None
            for a, b, see in ((client, server, seen), (server, client, None)):
                threading.Thread(target=self._pump, args=(a, b, see), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, see=None) -> None:
        try:
            while data := src.recv(65536):
                if see is not None:
                    see(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)
