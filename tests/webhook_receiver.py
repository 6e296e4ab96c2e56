"""A real HTTP receiver for webhook tests: a threaded http.server on a free port that records
every request and answers with the statuses it is given (then 200)."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict:
        return json.loads(self.body)

    def verified(self, secret: str) -> dict:
        """The payload, once the Standard Webhooks library accepts its signature."""
        return Webhook(secret).verify(self.body, self.headers)


class Receiver:
    def __init__(self, statuses: list[int] | None = None, port: int = 0) -> None:
        self.received: list[Received] = []
        self.changed = threading.Condition()
        self.statuses = list(statuses or [])
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with receiver.changed:
                    receiver.received.append(
                        Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    receiver.changed.notify_all()
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def wait_for(self, predicate, timeout: float = 30.0) -> list[Received]:
        with self.changed:
            assert self.changed.wait_for(lambda: predicate(self.received), timeout), (
                f"receiver timeout; got {len(self.received)} requests"
            )
            return list(self.received)

    def wait_count(self, n: int, timeout: float = 30.0) -> list[Received]:
        return self.wait_for(lambda got: len(got) >= n, timeout)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
